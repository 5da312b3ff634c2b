# Every man page is complete and renders cleanly. A section-3 page: .TH with its own name
# and section and the libkvm version that introduced its functions ("libkvm 1.0"), NAME
# listing only functions of include/libkvm.h, SYNOPSIS with #include <libkvm.h>,
# DESCRIPTION, RETURN VALUE, ERRORS, VERSIONS naming the symbol version (src/libkvm.map) of
# each of its functions, SEE ALSO. libkvm.7: NAME, SYNOPSIS, DESCRIPTION, VERSIONS, SEE
# ALSO. Redirect pages hold only `.so man3/<page>.3`. Every page and redirect renders
# without a warning through `groff -ww -z -man` and, where man-db is installed, `man -l`.
# (c-tests/invariants/surface.sh checks that the pages and the functions match one to one.)
set -eu
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
IFS=. read -r major minor _ <<< "$version"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
problem() { echo "$page: $*"; fail=1; }

perl abi/map.pl src/libkvm.map | awk '$1 == "sym" { print $2, $3 }' > "$tmp/nodes"
echo '#include <libkvm.h>' > "$tmp/h.c"
${CC:-cc} -Iinclude -fsyntax-only -aux-info "$tmp/aux" "$tmp/h.c"
grep "^/\* [^ ]*include/libkvm\.h:" "$tmp/aux" | sed -E 's/.*[ *]([A-Za-z_][A-Za-z0-9_]*) \(.*/\1/' | sort -u > "$tmp/functions"

# The text of section $2 of page $1 (up to the next .SH).
section() { awk -v s="$2" '/^\.SH / { on = ($0 == ".SH " s || $0 == ".SH \"" s "\"") ; next } on' "$1"; }

pages=0 redirects=0
for page in man/man3/*.3 man/man7/*.7; do
  [ -e "$page" ] || continue
  sec=${page##*.}
  name=$(basename "$page" ".$sec")
  if head -n 1 "$page" | grep -q '^\.so '; then
    redirects=$((redirects + 1))
    [ "$(grep -cv '^$' "$page")" = 1 ] || problem "a redirect page holds only its .so line"
    [ -f "man/$(sed -n '1s/^\.so *//p' "$page")" ] || problem "redirects to a page that does not exist"
  else
    pages=$((pages + 1))
    th=$(grep -m1 '^\.TH ' "$page" || true)
    if [ -z "$th" ]; then problem "no .TH line"; th=".TH"; fi
    eval "set -- ${th#.TH}"  # the words of .TH, quotes honoured
    [ "${1:-}" = "$name" ] || problem ".TH names '${1:-}', not $name"
    [ "${2:-}" = "$sec" ] || problem ".TH gives section '${2:-}', not $sec"
    [[ ${3:-} =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || problem ".TH date '${3:-}' is not YYYY-MM-DD"
    th_version=""
    if [[ ${4:-} =~ ^libkvm\ ([0-9]+)\.([0-9]+)$ ]]; then
      th_version=${4#libkvm }
      { [ "${BASH_REMATCH[1]}" = "$major" ] && [ "${BASH_REMATCH[2]}" -le "$minor" ]; } \
        || problem ".TH names '${4}', not a version of libkvm $major.0 ... $major.$minor"
    else
      problem ".TH does not name a libkvm version (\"libkvm X.Y\"), but '${4:-}'"
    fi
    if [ "$sec" = 3 ]; then
      required=("NAME" "SYNOPSIS" "DESCRIPTION" "RETURN VALUE" "ERRORS" "VERSIONS" "SEE ALSO")
    else
      required=("NAME" "SYNOPSIS" "DESCRIPTION" "VERSIONS" "SEE ALSO")
    fi
    for s in "${required[@]}"; do
      grep -qE "^\.SH \"?$s\"?\$" "$page" || problem "no $s section"
    done
    section "$page" SYNOPSIS | grep -q '#include <libkvm.h>' || problem "SYNOPSIS lacks #include <libkvm.h>"
    if [ "$sec" = 3 ]; then
      # The functions the page documents: the names before "\-" in NAME.
      section "$page" NAME | sed -n 's/ *\\-.*//p' | tr ',' '\n' | sed 's/^ *//; s/ *$//; s/^\\%//' | grep . > "$tmp/documented" || true
      [ -s "$tmp/documented" ] || problem "NAME lists no function (\"name, name \\- what they do\")"
      oldest=""
      while read -r fn; do
        if ! grep -qx "$fn" "$tmp/functions"; then problem "NAME lists $fn, which include/libkvm.h does not declare"; continue; fi
        node=$(awk -v f="$fn" '$1 == f { print $2 }' "$tmp/nodes")
        [ -n "$node" ] || continue  # surface.sh reports it
        section "$page" VERSIONS | grep -q "${node//./\\.}" || problem "VERSIONS does not name $node, the symbol version of $fn"
        v=${node#LIBKVM_}
        if [ -z "$oldest" ] || [ "${v#*.}" -lt "${oldest#*.}" ]; then oldest=$v; fi
      done < "$tmp/documented"
      [ -z "$oldest" ] || [ -z "$th_version" ] || [ "$th_version" = "$oldest" ] \
        || problem ".TH names libkvm $th_version, but its functions came with libkvm $oldest"
    fi
  fi
  # Rendering: from man/, where `.so man3/...` resolves.
  out=$(cd man && groff -ww -z -man "${page#man/}" 2>&1) || true
  [ -z "$out" ] || { problem "groff -ww -z -man warns:"; echo "$out" | sed 's/^/    /'; }
  if command -v man >/dev/null; then
    out=$(cd man && MANWIDTH=80 man --warnings=w -l "${page#man/}" 2>&1 >/dev/null) || true
    [ -z "$out" ] || { problem "man -l warns:"; echo "$out" | sed 's/^/    /'; }
  fi
done
[ $fail -eq 0 ] || exit 1
echo "$pages pages and $redirects redirects complete; groff -ww$(command -v man >/dev/null && echo ' and man -l') render them without a warning"
