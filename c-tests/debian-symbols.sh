# debian/libkvm1.symbols lists exactly the exports of src/libkvm.map, each at its symbol version with the release of its node (LIBKVM_X.Y: X.Y.0), so that the package build's dpkg-gensymbols check (level 4) fails only on a real ABI change.
# A function added to the version script must be added there too; this test prints the
# lines to add or remove.
set -eu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The version script, node by node: "name node" for every function, then each node itself.
awk '
  /^[[:space:]]*LIBKVM_[0-9]+\.[0-9]+[[:space:]]*\{/ { node = $1; sub(/\{.*/, "", node); nodes[node] = 1; next }
  /^[[:space:]]*kvm_[A-Za-z0-9_]*;/ { name = $1; sub(/;.*/, "", name); print " " name "@" node " " substr(node, 8) ".0" }
  END { for (n in nodes) print " " n "@" n " " substr(n, 8) ".0" }
' src/libkvm.map | sort > "$tmp/want"
[ -s "$tmp/want" ] || { echo "no function found in src/libkvm.map"; exit 1; }
f=debian/libkvm1.symbols
head -n 1 "$f" | grep -qx 'libkvm.so.1 libkvm1 #MINVER#' || { echo "$f: first line is not 'libkvm.so.1 libkvm1 #MINVER#'"; exit 1; }
grep -q '^\* Build-Depends-Package: libkvm-dev$' "$f" || { echo "$f: no '* Build-Depends-Package: libkvm-dev'"; exit 1; }
grep '^ ' "$f" | sort > "$tmp/have"
if ! diff -u "$tmp/have" "$tmp/want" > "$tmp/diff"; then
  echo "$f does not match src/libkvm.map: lines to add (+) and remove (-):"
  grep '^[-+] ' "$tmp/diff"
  exit 1
fi
echo "$f: the $(grep -c '^ kvm_' "$tmp/want") exported functions and their version nodes, as src/libkvm.map has them"
