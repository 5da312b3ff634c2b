# `make install` into a DESTDIR gives a library, header, man pages and libkvm.pc with which
# a C program and a C++ program built only with `pkg-config --cflags --libs libkvm` link
# and run (and see the version libkvm.pc names), and the example (examples/hello.c and its
# guest) links with -Wl,--no-undefined and runs; `make uninstall` removes exactly what was
# installed. Nothing from the source tree is on the include or library path.
set -eu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
${MAKE:-make} -s install DESTDIR="$dest" PREFIX=/opt/libkvm-test >/dev/null
lib=$dest/opt/libkvm-test/lib
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
for f in "libkvm.so.$version" "libkvm.so.${version%%.*}" libkvm.so libkvm.a pkgconfig/libkvm.pc; do
  [ -e "$lib/$f" ] || { echo "missing $lib/$f"; exit 1; }
done
[ -f "$dest/opt/libkvm-test/include/libkvm.h" ] || { echo "header not installed"; exit 1; }
ls "$dest/opt/libkvm-test/share/man/man3/"kvm_run.3 >/dev/null
cat > "$tmp/consumer.c" <<'C'
#include <libkvm.h>
#include <stdio.h>
int main(void)
{
	int v = kvm_get_api_version();
	if (v == -1) { perror("kvm_get_api_version"); return 77; }
	int vm = kvm_create_vm();
	if (vm < 0 || kvm_set_memory_region(vm, 0, 0, 0, 4096) != 0 || kvm_destroy_vm(vm) != 0)
		return 1;
	printf("api %d\n", v);
	return v == 12 ? 0 : 1;
}
C
export PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
flags=$(pkg-config --cflags --libs libkvm)
echo "pkg-config: $flags"
${CC:-cc} -Wall -Werror -o "$tmp/consumer" "$tmp/consumer.c" $flags
LD_LIBRARY_PATH=$lib "$tmp/consumer"
# C++: the installed header compiles as C++11 and links from C++ (extern "C").
cat > "$tmp/consumer.cc" <<'CXX'
#include <libkvm.h>
#include <cstdio>
#include <cstdlib>
#include <vector>
static_assert(LIBKVM_VERSION == LIBKVM_VERSION_MAJOR * 10000 + LIBKVM_VERSION_MINOR * 100 + LIBKVM_VERSION_PATCH,
	      "LIBKVM_VERSION");
int main(int argc, char **argv)
{
	int lib = kvm_get_library_version();
	std::printf("library %d.%d.%d\n", lib / 10000, lib / 100 % 100, lib % 100);
	if (argc < 2 || lib != std::atoi(argv[1]) || lib != LIBKVM_VERSION)
		return 1;
	if (kvm_get_api_version() != 12)
		return 77;
	std::vector<int> vms;
	for (int i = 0; i < 2; i++)
		vms.push_back(kvm_create_vm());
	for (int vm : vms)
		if (vm < 0 || kvm_set_memory_region(vm, 0, 0, 0x100000, 4096) != 0 ||
		    kvm_guest_memory(vm, 0x100000, 4096) == nullptr || kvm_destroy_vm(vm) != 0)
			return 1;
	return 0;
}
CXX
${CXX:-c++} -std=c++11 -Wall -Wextra -Werror -pedantic -o "$tmp/consumer-cxx" "$tmp/consumer.cc" $flags
# The version libkvm.pc carries, as kvm_get_library_version() encodes it.
pcv=$(pkg-config --modversion libkvm)
IFS=. read -r ma mi pa <<< "$pcv"
LD_LIBRARY_PATH=$lib "$tmp/consumer-cxx" $((ma * 10000 + mi * 100 + pa))

# The example links with --no-undefined (and every symbol libkvm.so itself needs resolves
# from its own dependencies) and greets.
${CC:-cc} -Wall -Werror -Wl,--no-undefined -Wl,--no-allow-shlib-undefined -o "$tmp/hello" \
  examples/hello.c examples/hello-guest.S $flags
LD_LIBRARY_PATH=$lib "$tmp/hello" > "$tmp/hello.out"
grep -q '^Hello from a libkvm guest' "$tmp/hello.out" && grep -q '^guest halted' "$tmp/hello.out" \
  || { echo "the example did not greet:"; cat "$tmp/hello.out"; exit 1; }
# And the example's binary needs the installed soname, nothing from the build tree.
readelf -d "$tmp/hello" | grep -q 'NEEDED.*\[libkvm.so.'"$ma"'\]' || { echo "hello does not need libkvm.so.$ma"; exit 1; }

# Static linking with Libs.private works too, fully static (c-tests/static-archive.sh
# checks the archive itself and more static consumers).
${CC:-cc} -static -o "$tmp/consumer-static" "$tmp/consumer.c" $(pkg-config --static --cflags --libs libkvm)
"$tmp/consumer-static" >/dev/null
${MAKE:-make} -s uninstall DESTDIR="$dest" PREFIX=/opt/libkvm-test >/dev/null
left=$(find "$dest" -type f -o -type l)
[ -z "$left" ] || { echo "left after uninstall:"; echo "$left"; exit 1; }
echo "installed libkvm $pcv; a C program (shared and static), a C++ program and the example (--no-undefined) built through pkg-config and ran; uninstalled cleanly"
