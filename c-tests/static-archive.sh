# The installed libkvm.a is one small object whose only global symbols are exactly the exports, with no LLVM bitcode and no debug info; nm reads it; gcc -static, gcc -flto -static and clang -flto -static programs linked through `pkg-config --static` run a guest, and an internal panic unwinds in a static program.
# libkvm.pc's Libs.private is rustc's list of what the Rust runtime needs
# (--print native-static-libs) without -lgcc_s, which the compiler driver provides.
set -eu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
dest=$tmp/dest
${MAKE:-make} -s install DESTDIR="$dest" PREFIX=/usr LIBDIR=/usr/lib/static-test >/dev/null
a=$dest/usr/lib/static-test/libkvm.a
export PKG_CONFIG_PATH=$dest/usr/lib/static-test/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest

# One member, under 2 MB.
members=$(ar t "$a")
[ "$(echo "$members" | wc -l)" = 1 ] || fail "libkvm.a has $(echo "$members" | wc -l) members: $members"
size=$(stat -c %s "$a")
echo "libkvm.a: $size bytes, one member ($members)"
[ "$size" -lt $((2 * 1024 * 1024)) ] || fail "libkvm.a is $size bytes, not under 2 MB"

# No bitcode, no debug info, no section group left to clash with a consumer's.
sections=$(readelf -SW "$a" | sed -n 's/^ *\[ *[0-9]*\] \([^ ]*\) .*/\1/p')
bad=$(echo "$sections" | grep -E '^\.(llvmbc|llvmcmd|debug_|zdebug_|gnu\.lto_)' | sort -u || true)
[ -z "$bad" ] || fail "libkvm.a has sections $bad"
readelf -gW "$a" | grep -q 'COMDAT group' && fail "libkvm.a has section groups"

# nm (binutils, with the LLVM plugin installed alongside clang) reads it without a word on
# stderr, and the defined global symbols are exactly the functions of src/libkvm.map.
nm "$a" > "$tmp/nm" 2> "$tmp/nm.err" || fail "nm failed: $(head -3 "$tmp/nm.err")"
[ ! -s "$tmp/nm.err" ] || fail "nm said: $(sort -u "$tmp/nm.err" | head -3)"
sed -n 's/^[[:space:]]*\(kvm_[A-Za-z0-9_]*\);.*/\1/p' src/libkvm.map | sort > "$tmp/exports"
awk 'NF == 3 && $2 ~ /^[A-TV-Z]$/ { print $3 }' "$tmp/nm" | sort > "$tmp/globals"
diff -u "$tmp/exports" "$tmp/globals" > "$tmp/diff" || fail "global symbols of libkvm.a differ from src/libkvm.map: $(grep '^[-+][^-+]' "$tmp/diff" | head -20 | tr '\n' ' ')"
echo "global symbols: exactly the $(wc -l < "$tmp/exports") exports; $(awk 'NF == 2 && $1 == "U"' "$tmp/nm" | wc -l) undefined (C library and unwinder)"

# Libs.private is what rustc says a staticlib needs, less -lgcc_s.
echo 'fn main() {}' > "$tmp/empty.rs"
native=$(${RUSTC:-rustc} --crate-type staticlib --print native-static-libs -o "$tmp/empty.a" "$tmp/empty.rs" 2>&1 |
  sed -n 's/^note: native-static-libs: //p')
[ -n "$native" ] || fail "rustc printed no native-static-libs"
want=$(echo "$native" | tr ' ' '\n' | grep -vx -- -lgcc_s | tr '\n' ' ' | sed 's/ $//')
private=$(sed -n 's/^Libs.private: //p' "$PKG_CONFIG_PATH/libkvm.pc")
[ "$private" = "$want" ] || fail "Libs.private is '$private'; rustc --print native-static-libs says '$native'"
echo "Libs.private: $private (rustc: $native)"

# Static programs through pkg-config: the example runs its guest.
cflags=$(pkg-config --cflags libkvm)
libs=$(pkg-config --static --libs libkvm)
echo "pkg-config --static --libs libkvm: $libs"
greets() {
  "$1" > "$tmp/out" 2>&1 || fail "$1 exited $?: $(tail -3 "$tmp/out")"
  grep -q '^Hello from a libkvm guest' "$tmp/out" && grep -q '^guest halted' "$tmp/out" || fail "$1 did not greet: $(cat "$tmp/out")"
}
static_ok() {
  readelf -d "$1" 2>/dev/null | grep -q NEEDED && fail "$1 is not static: $(readelf -d "$1" | grep NEEDED)"
  return 0
}
${CC:-cc} -static -O2 $cflags -o "$tmp/hello-static" examples/hello.c examples/hello-guest.S $libs
static_ok "$tmp/hello-static"; greets "$tmp/hello-static"
${CC:-cc} -static -O2 -Wl,--gc-sections $cflags -o "$tmp/hello-gc" examples/hello.c examples/hello-guest.S $libs
static_ok "$tmp/hello-gc"; greets "$tmp/hello-gc"
# What glibc alone weighs in a static stdio program, for comparison.
${CC:-cc} -static -O2 -Wl,--gc-sections -o "$tmp/empty-static" -x c - <<'C'
#include <stdio.h>
#include <string.h>
#include <errno.h>
int main(int argc, char **argv) { fprintf(stderr, "%s", strerror(errno)); printf("%d %s\n", argc, argv[0]); return 0; }
C
echo "static consumer with --gc-sections: $(stat -c %s "$tmp/hello-gc") bytes; a static stdio program: $(stat -c %s "$tmp/empty-static") bytes"
${CC:-cc} -static -O2 -flto $cflags -o "$tmp/hello-gcc-lto" examples/hello.c examples/hello-guest.S $libs
static_ok "$tmp/hello-gcc-lto"; greets "$tmp/hello-gcc-lto"
command -v clang >/dev/null || { echo "clang missing (make check installs it)"; exit 77; }
clang -static -O2 -flto $cflags -o "$tmp/hello-clang-lto" examples/hello.c examples/hello-guest.S $libs
static_ok "$tmp/hello-clang-lto"; greets "$tmp/hello-clang-lto"

# A panic inside libkvm (LIBKVM_TEST_PANIC, src/error.rs) unwinds to the C boundary in a
# static program too (libgcc_eh's unwinder, the archive's .eh_frame): ENOTRECOVERABLE.
cat > "$tmp/panic.c" <<'C'
#include <libkvm.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
	int vm = kvm_create_vm();
	if (vm < 0) { perror("kvm_create_vm"); return 1; }
	char fd[16];
	snprintf(fd, sizeof(fd), "%d", vm);
	setenv("LIBKVM_TEST_PANIC", fd, 1);
	int r = kvm_set_memory_region(vm, 0, 0, 0, 4096);
	printf("kvm_set_memory_region: %d, %s\n", r, r ? (errno == ENOTRECOVERABLE ? "ENOTRECOVERABLE" : "other errno") : "no error");
	return r == -1 && errno == ENOTRECOVERABLE ? 0 : 1;
}
C
${CC:-cc} -static -O2 $cflags -o "$tmp/panic" "$tmp/panic.c" $libs
"$tmp/panic" 2> "$tmp/panic.err" || fail "a panic in a static program: $(cat "$tmp/panic.err")"
[ ! -s "$tmp/panic.err" ] || fail "the panic printed: $(head -3 "$tmp/panic.err")"
echo "gcc -static, gcc -flto -static and clang -flto -static programs ran the guest; a panic unwound to ENOTRECOVERABLE"
