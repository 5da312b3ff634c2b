# libkvm.so exports exactly the functions of the header, each at @@LIBKVM_1.0 or a later
# node of src/libkvm.map, and carries the soname libkvm.so.1.
set -eu
so=build/libkvm.so.1.0.0
readelf -d "$so" | grep -q 'Library soname: \[libkvm.so.1\]' || { echo "soname is not libkvm.so.1"; exit 1; }
[ "$(readlink build/libkvm.so.1)" = libkvm.so.1.0.0 ] && [ "$(readlink build/libkvm.so)" = libkvm.so.1 ] \
  || { echo "library links are wrong"; exit 1; }
exported=$(readelf --dyn-syms -W "$so" | awk '$5 == "GLOBAL" && $7 != "UND" && $7 != "ABS" { print $8 }' | sort)
bad=$(echo "$exported" | grep -v '^kvm_[a-z0-9_]*@@LIBKVM_1\.[0-9]*$' || true)
[ -z "$bad" ] || { echo "exported without a LIBKVM version, or not kvm_*:"; echo "$bad"; exit 1; }
names=$(echo "$exported" | sed 's/@@.*//' | sort)
header=$(grep -E '^[a-z].*\bkvm_[a-z0-9_]+\(' include/libkvm.h | grep -oE '\bkvm_[a-z0-9_]+\(' | tr -d '(' | sort -u)
if [ "$names" != "$header" ]; then
  echo "exported symbols and header functions differ:"; diff <(echo "$names") <(echo "$header"); exit 1
fi
echo "$(echo "$names" | wc -l) functions exported, all versioned"
