# include/libkvm.h is what cbindgen generates now, and compiles alone (no -D) with gcc and clang in every strict ISO C mode from C99 on (C99, C11, C17, C2x) and as C++11 and later.
set -eu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"${CBINDGEN:-cbindgen}" --quiet --config cbindgen.toml --crate libkvm --output "$tmp/libkvm.h"
if ! cmp -s "$tmp/libkvm.h" include/libkvm.h; then
  echo "include/libkvm.h differs from what cbindgen generates: run 'make header' and commit it"
  diff -u include/libkvm.h "$tmp/libkvm.h" | head -40
  exit 1
fi
# clang comes with make check's dependencies (make deps-fuzz); without it half the matrix
# would go unchecked, so its absence is a failure, not a skip.
for tool in gcc clang g++ clang++; do
  command -v "$tool" > /dev/null || { echo "$tool not installed (make deps deps-fuzz)"; exit 1; }
done

# The program uses what the header promises, sigset_t included, so that a header which
# merely parses is not enough. The second one includes a system header first: a
# feature-test macro defined inside libkvm.h would then come too late.
cat > "$tmp/alone.c" << 'EOF'
#include <libkvm.h>
int main(void)
{
    struct kvm_regs r;
    const sigset_t *mask = NULL;
    (void)r;
    return kvm_set_signal_mask(mask) + LIBKVM_VERSION - LIBKVM_VERSION;
}
EOF
{ echo '#include <stdio.h>'; cat "$tmp/alone.c"; } > "$tmp/after.c"
cp "$tmp/alone.c" "$tmp/alone.cc"; cp "$tmp/after.c" "$tmp/after.cc"

fail=0 n=0
try() { # compiler, flags...; the remaining sources are the ones to compile
  local out
  n=$((n + 1))
  if ! out=$("$@" -Wall -Wextra -Werror -Iinclude -c -o "$tmp/o" 2>&1); then
    echo "FAILED: $*"; echo "$out" | head -20; fail=1
  fi
}
for cc in gcc clang; do
  for std in c99 c11 c17 c2x gnu99 gnu11; do
    for pedantic in "" -pedantic; do
      for src in alone after; do
        try $cc -std=$std $pedantic -x c "$tmp/$src.c"
      done
    done
  done
done
for cxx in g++ clang++; do
  for std in c++11 c++14 c++17 c++20 c++2b; do
    for pedantic in "" -pedantic; do
      for src in alone after; do
        try $cxx -std=$std $pedantic "$tmp/$src.cc"
      done
    done
  done
done
[ $fail -eq 0 ] || exit 1
echo "header matches cbindgen and compiles alone in $n modes (gcc, clang: C99/C11/C17/C2x strict and GNU, C++11 to C++2b)"
