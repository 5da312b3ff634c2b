# GNU install conventions: `make install` keeps debug info in libkvm.so and kvmrun, `make install-strip` strips them with $(STRIP) through $(INSTALL); the installed kvmrun has no RUNPATH; CPPFLAGS, CFLAGS and LDFLAGS reach the library link, kvmrun, the tests and the example; a default install (no DESTDIR) ends with ldconfig; no build path is recorded in libkvm.so or libkvm.a.
set -eu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
make=${MAKE:-make}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
has_debug() { readelf -SW "$1" | grep -q ' \.debug_info '; }
has_symtab() { readelf -SW "$1" | grep -q ' \.symtab '; }

# install: as built, debug info and symbol table kept; no RUNPATH in kvmrun.
$make -s install DESTDIR="$tmp/keep" PREFIX=/usr >/dev/null
so=$tmp/keep/usr/lib/libkvm.so.$version run=$tmp/keep/usr/bin/kvmrun
has_debug "$so" || fail "make install stripped the debug info of libkvm.so"
has_debug "$run" || fail "make install stripped the debug info of kvmrun"
if readelf -d "$run" | grep -E 'RUNPATH|RPATH'; then fail "the installed kvmrun has a RUNPATH"; fi
readelf -d build/kvmrun | grep -q RUNPATH || fail "the build tree's kvmrun lost its RUNPATH (the tests run it from there)"
echo "make install: libkvm.so and kvmrun keep their debug info; kvmrun has no RUNPATH"

# install-strip: stripped by $(STRIP), installed by $(INSTALL) (wrappers that log).
for tool in strip install; do
  printf '#!/bin/sh\necho "$0 $*" >> %s/log\nexec %s "$@"\n' "$tmp" "$(command -v $tool)" > "$tmp/my-$tool"
  chmod +x "$tmp/my-$tool"
done
$make -s install-strip DESTDIR="$tmp/strip" PREFIX=/usr STRIP="$tmp/my-strip" INSTALL="$tmp/my-install" >/dev/null
so=$tmp/strip/usr/lib/libkvm.so.$version run=$tmp/strip/usr/bin/kvmrun
for f in "$so" "$run"; do
  has_debug "$f" && fail "make install-strip left debug info in $f"
  has_symtab "$f" && fail "make install-strip left the symbol table in $f"
done
grep -q "my-install .*-s --strip-program=$tmp/my-strip .*libkvm.so.$version" "$tmp/log" || fail "install-strip did not strip libkvm.so with STRIP through INSTALL: $(cat "$tmp/log")"
grep -q "my-install .*kvmrun" "$tmp/log" || fail "kvmrun was not installed through INSTALL"
readelf --dyn-syms -W "$so" | grep -q ' kvm_run@@LIBKVM_1.0' || fail "stripping lost the exports"
LD_LIBRARY_PATH=$tmp/strip/usr/lib "$run" -h >/dev/null || fail "the stripped kvmrun does not start"
echo "make install-strip: stripped (no .debug_info, no .symtab) with STRIP, through INSTALL; exports intact"

# ldconfig after an install into the running system (DESTDIR empty), as libtool --finish
# does; not for a DESTDIR install (the package manager's business). Only root can.
printf '#!/bin/sh\necho "ldconfig $*" >> %s/ldconfig.log\n' "$tmp" > "$tmp/ldconfig"; chmod +x "$tmp/ldconfig"
$make -s install PREFIX="$tmp/prefix" LDCONFIG="$tmp/ldconfig" >/dev/null
$make -s install DESTDIR="$tmp/dest2" PREFIX=/usr LDCONFIG="$tmp/ldconfig" >/dev/null
$make -s uninstall PREFIX="$tmp/prefix" LDCONFIG="$tmp/ldconfig" >/dev/null
calls=$(cat "$tmp/ldconfig.log" 2>/dev/null | wc -l)
if [ "$(id -u)" = 0 ]; then
  [ "$calls" = 2 ] || fail "ldconfig ran $calls times, not once after install and once after uninstall with DESTDIR empty"
  echo "ldconfig: run after the DESTDIR-less install and uninstall, not after the DESTDIR install"
else
  [ "$calls" = 0 ] || fail "ldconfig ran as non-root"
fi

# The user's flags reach every host program: a build in a separate build directory with
# probes that leave a mark: a chosen build ID from LDFLAGS, stack canaries from CFLAGS
# (-fstack-protector-all: __stack_chk_fail is called), fortified calls from CPPFLAGS
# (-D_FORTIFY_SOURCE=2: __*_chk).
b=build/flags-probe
rm -rf "$b"
probe_id=0x1bad5eed
$make -s B="$b" CPPFLAGS="-D_FORTIFY_SOURCE=2" CFLAGS="-O2 -g -fstack-protector-all" \
  LDFLAGS="-Wl,--build-id=$probe_id" "$b/libkvm.so.$version" "$b/inst/kvmrun" "$b/kvmrun" \
  "$b/c-tests/library_version" "$b/examples/hello" >/dev/null
for f in "$b/libkvm.so.$version" "$b/inst/kvmrun" "$b/kvmrun" "$b/c-tests/library_version" "$b/examples/hello"; do
  readelf -n "$f" | grep -q "Build ID: ${probe_id#0x}\$" || fail "LDFLAGS did not reach the link of $f"
done
for f in "$b/inst/kvmrun" "$b/c-tests/library_version" "$b/examples/hello"; do
  readelf --dyn-syms -W "$f" | grep -q ' __stack_chk_fail' || fail "CFLAGS did not reach $f"
  readelf --dyn-syms -W "$f" | grep -qE ' __[a-z]+_chk@' || fail "CPPFLAGS did not reach $f"
done
rm -rf "$b"
echo "CPPFLAGS, CFLAGS, LDFLAGS: reached libkvm.so, kvmrun (both), a test and the example"

# No build path in the library (--remap-path-prefix): neither this tree nor the cargo home
# (registry sources) appears in libkvm.so or libkvm.a. (.ci/check-package.sh compares two
# builds in different directories byte for byte.)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
for f in "build/libkvm.so.$version" build/libkvm.a; do
  strings -a "$f" > "$tmp/strings"
  if grep -F -e "$PWD" -e "$cargo_home" "$tmp/strings" | head -3 | grep .; then fail "$f names build paths (above)"; fi
done
echo "no build path in libkvm.so or libkvm.a"
