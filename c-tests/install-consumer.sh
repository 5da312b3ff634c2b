# `make install` into a DESTDIR gives a library, header, man pages and libkvm.pc with which
# a C program built only with `pkg-config --cflags --libs libkvm` links and runs;
# `make uninstall` removes exactly what was installed.
set -eu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
${MAKE:-make} -s install DESTDIR="$dest" PREFIX=/opt/libkvm-test >/dev/null
lib=$dest/opt/libkvm-test/lib
for f in libkvm.so.1.0.0 libkvm.so.1 libkvm.so libkvm.a pkgconfig/libkvm.pc; do
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
# Static linking with Libs.private works too.
${CC:-cc} -o "$tmp/consumer-static" "$tmp/consumer.c" $(pkg-config --cflags libkvm) \
  "$lib/libkvm.a" $(pkg-config --libs-only-other --static libkvm) $(pkg-config --static --libs-only-l libkvm | sed 's/-lkvm//')
"$tmp/consumer-static" >/dev/null
${MAKE:-make} -s uninstall DESTDIR="$dest" PREFIX=/opt/libkvm-test >/dev/null
left=$(find "$dest" -type f -o -type l)
[ -z "$left" ] || { echo "left after uninstall:"; echo "$left"; exit 1; }
echo "installed, consumed through pkg-config (shared and static), uninstalled cleanly"
