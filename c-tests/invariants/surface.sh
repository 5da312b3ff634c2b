# One truth for the surface: the functions libkvm.so exports, the functions include/libkvm.h
# declares, the symbols src/libkvm.map lists and the man pages in man/man3 agree in every
# direction, every export carries the version node the map gives it, and the library has
# the soname libkvm.so.<major> with its links.
set -eu
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
major=${version%%.*}
so=build/libkvm.so.$version
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
problem() { echo "$*"; fail=1; }

readelf -d "$so" | grep -q "Library soname: \[libkvm.so.$major\]" || problem "soname is not libkvm.so.$major"
[ "$(readlink "build/libkvm.so.$major")" = "libkvm.so.$version" ] && [ "$(readlink build/libkvm.so)" = "libkvm.so.$major" ] \
  || problem "library links are wrong"

# 1. Exports: every defined global dynamic symbol, as "name version".
# (An ABS symbol named like a node is the version definition itself, not an export.)
readelf --dyn-syms -W "$so" | awk '$5 == "GLOBAL" && $7 != "UND" && !($7 == "ABS" && $8 ~ /^LIBKVM_[0-9.]*$/) { print $8 }' \
  | sort > "$tmp/exports-raw"
grep -v '^kvm_[a-z0-9_]*@@LIBKVM_[0-9]*\.[0-9]*$' "$tmp/exports-raw" > "$tmp/bad" || true
if [ -s "$tmp/bad" ]; then
  problem "exported, but not a kvm_* function at a default LIBKVM_x.y version:"; sed 's/^/  /' "$tmp/bad"
fi
sed 's/@@/ /' "$tmp/exports-raw" | sort > "$tmp/exports-versioned"
cut -d' ' -f1 "$tmp/exports-versioned" | sort -u > "$tmp/exports"

# 2. Header: what the compiler sees declared in include/libkvm.h (gcc -aux-info lists every
# function declaration with the file it comes from), so doc comments never count.
printf '#include <libkvm.h>\n' > "$tmp/h.c"
${CC:-cc} -Iinclude -fsyntax-only -aux-info "$tmp/aux" "$tmp/h.c"
grep "^/\* [^ ]*include/libkvm\.h:" "$tmp/aux" | sed -E 's/.*[ *]([A-Za-z_][A-Za-z0-9_]*) \(.*/\1/' | sort > "$tmp/header"
[ "$(sort -u "$tmp/header" | wc -l)" = "$(wc -l < "$tmp/header")" ] || problem "include/libkvm.h declares a function twice"
sort -u -o "$tmp/header" "$tmp/header"

# 3. Version script.
perl abi/map.pl src/libkvm.map > "$tmp/map-all" || fail=1
awk '$1 == "sym" { print $2, $3 }' "$tmp/map-all" | sort > "$tmp/map-versioned"
cut -d' ' -f1 "$tmp/map-versioned" | sort -u > "$tmp/map"

# 4. Man pages: man/man3/<name>.3, a page or a `.so` redirect.
ls man/man3 | sed -n 's/\.3$//p' | sort > "$tmp/man"

compare() { # compare <what A> <file A> <what B> <file B>
  local only
  only=$(comm -23 "$2" "$4")
  [ -z "$only" ] || { problem "in $1 but not in $3:"; echo "$only" | sed 's/^/  /'; }
  only=$(comm -13 "$2" "$4")
  [ -z "$only" ] || { problem "in $3 but not in $1:"; echo "$only" | sed 's/^/  /'; }
}
compare "the exports of $so" "$tmp/exports" "include/libkvm.h" "$tmp/header"
compare "the exports of $so" "$tmp/exports" "src/libkvm.map" "$tmp/map"
compare "include/libkvm.h" "$tmp/header" "src/libkvm.map" "$tmp/map"
compare "the functions of include/libkvm.h" "$tmp/header" "man/man3 (<name>.3 files)" "$tmp/man"

# The version of each export is the node the map puts it in.
join "$tmp/exports-versioned" "$tmp/map-versioned" | awk '$2 != $3 { print "  " $1 ": exported at " $2 ", but src/libkvm.map has it in " $3 }' > "$tmp/vdiff"
[ ! -s "$tmp/vdiff" ] || { problem "symbol versions differ from src/libkvm.map:"; cat "$tmp/vdiff"; }

# A redirect page points at a page that exists and documents the function.
for page in man/man3/*.3; do
  name=$(basename "$page" .3)
  target=$page
  if head -n 1 "$page" | grep -q '^\.so '; then
    [ "$(wc -l < "$page")" = 1 ] || problem "$page: a redirect page holds only its .so line"
    target=man/$(head -n 1 "$page" | sed 's/^\.so *//')
    [ -f "$target" ] || { problem "$page redirects to $target, which does not exist"; continue; }
    if head -n 1 "$target" | grep -q '^\.so '; then problem "$page redirects to $target, itself a redirect"; continue; fi
  fi
  # NAME lists the function; SYNOPSIS has its prototype.
  sed -n '/^\.SH NAME/,/^\.SH/p' "$target" | grep -qw -- "$name" \
    || problem "$page: $target does not name $name in its NAME section"
  sed -n '/^\.SH SYNOPSIS/,/^\.SH/p' "$target" | grep -q -- "[ *]$name(" \
    || problem "$page: $target has no prototype of $name in its SYNOPSIS"
done

[ $fail -eq 0 ] || exit 1
echo "$(wc -l < "$tmp/exports") functions: exported, declared in the header, in src/libkvm.map at their node, with a man page"
