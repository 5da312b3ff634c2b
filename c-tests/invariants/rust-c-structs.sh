# The library and its callers agree on the kernel's structs: libkvm.so is built with
# kvm-bindings (Rust, generated from some kernel's headers), a C caller with this system's
# <linux/kvm.h>. For every struct a prototype of include/libkvm.h names, and the named
# structs inside them, the size and the offset of every member both know are equal: the
# C side from a probe built with the header, the Rust side from the library's own debug
# info (the same abidw view as abi/libkvm.abi).
set -eu
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
so=build/libkvm.so.$version
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

echo '#include <libkvm.h>' > "$tmp/h.c"
${CC:-cc} -Iinclude -fsyntax-only -aux-info "$tmp/aux" "$tmp/h.c"
grep -E '^/\* [^ ]*include/libkvm\.h:' "$tmp/aux" | perl -ne 'print "$1 $2\n" while /\b(struct|union) ([A-Za-z_]\w*)/g' | sort -u > "$tmp/roots"
{ echo '#include <libkvm.h>'; awk '{ printf "%s %s libkvm_probe_%d;\n", $1, $2, NR }' "$tmp/roots"; } > "$tmp/probe.c"
${CC:-cc} -g -O0 -shared -fPIC -Iinclude -o "$tmp/probe.so" "$tmp/probe.c"
abidw --no-corpus-path --no-comp-dir-path "$tmp/probe.so" > "$tmp/c.abi"
abidw --no-corpus-path --no-comp-dir-path --no-show-locs "$so" > "$tmp/rust.abi"
perl c-tests/invariants/struct-paths.pl "$tmp/c.abi" '^kvm_' | sort > "$tmp/c"
perl c-tests/invariants/struct-paths.pl "$tmp/rust.abi" '^kvm_' | sort > "$tmp/rust"

# Facts both sides have ("struct<TAB>path" keys), with differing values.
join -t$'\t' <(awk -F'\t' '{ print $1 ":" $2 "\t" $3 }' "$tmp/c" | sort) \
             <(awk -F'\t' '{ print $1 ":" $2 "\t" $3 }' "$tmp/rust" | sort) > "$tmp/both"
awk -F'\t' '$2 != $3 { print "  " $1 ": " $2 " bits in <linux/kvm.h>, " $3 " in kvm-bindings" }' "$tmp/both" > "$tmp/diff"
structs=$(cut -f1 "$tmp/rust" | sort -u | join - <(cut -f1 "$tmp/c" | sort -u) | wc -l)
if [ -s "$tmp/diff" ]; then
  echo "the library's structs (kvm-bindings) and the header's (<linux/kvm.h>) differ:"; cat "$tmp/diff"; exit 1
fi
[ "$structs" -gt 0 ] || { echo "no struct found on both sides"; exit 1; }
# Structs a prototype names must be on both sides.
missing=$(sed 's/^[a-z]* //' "$tmp/roots" | while read -r s; do
  grep -q "^$s	sizeof	" "$tmp/rust" || echo "$s"; done)
[ -z "$missing" ] || { echo "structs of the prototypes missing from the library's debug info: $missing"; exit 1; }
echo "$structs structs, $(wc -l < "$tmp/both") sizes and member offsets: kvm-bindings and <linux/kvm.h> agree"
only() { comm "$1" <(cut -f1,2 "$tmp/c") <(cut -f1,2 "$tmp/rust") | sed 's/\t/./' | tr '\n' ' '; }
echo "members only the kernel headers have: $(only -23)"
echo "members only kvm-bindings has (a newer kernel's): $(only -13)"
