#!/usr/bin/env bash
# `make check-package`: the distribution build. Builds the Debian packages (debian/) twice
# with `dpkg-buildpackage -us -uc -b`, offline from the cargo cache, from two copies of
# this tree in different directories, and checks:
#  - lintian: no error and no warning (its whole output is in the log);
#  - the symbols check (dpkg-gensymbols, level 4) passes on debian/libkvm1.symbols and
#    fails on a symbols file that misses an export or names one too many;
#  - what each package holds: the installed kvmrun has no RUNPATH, the .so is stripped
#    (its debug info is in libkvm1-dbgsym), and a program built against the unpacked
#    libkvm-dev through pkg-config runs its guest, shared and -static;
#  - reproducibility: the two builds' libkvm.so, libkvm.a and every .deb are
#    byte-identical;
#  - README's promise: after a default `make install` (PREFIX /usr/local, no DESTDIR,
#    which runs ldconfig) a program built with `cc app.c $(pkg-config --cflags --libs
#    libkvm)` starts; `make uninstall` then removes it all. Skipped, saying so, when a
#    libkvm is already installed there or when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
fail() { echo "FAIL: $*"; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
debversion=$(dpkg-parsechangelog -S Version)
[ "${debversion%-*}" = "$version" ] || fail "debian/changelog is at $debversion, Cargo.toml at $version"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

work=$(mktemp -d /tmp/libkvm-package.XXXXXX)
# Kept when a check fails, for a look at the builds and their logs.
trap 'if [ $? = 0 ]; then rm -rf "$work"; else echo "(the builds and their logs are in $work)"; fi' EXIT

# A copy of the tree as a fresh checkout with the working tree's changes would be:
# tracked and new files, nothing ignored (no target/, no build/).
copy() {
  mkdir -p "$1"
  if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$src" ls-files -co --exclude-standard -z | tar -C "$src" -c --null -T - | tar -x -C "$1"
  else
    tar -C "$src" -c --exclude=./target --exclude=./build --exclude=./.tools . | tar -x -C "$1"
  fi
}

# The pkg.libkvm.rustup profile: the Rust toolchain on PATH (rustup's) instead of
# Debian's cargo and rustc, which Build-Depends names otherwise.
build() {
  local dir=$1 t=$SECONDS
  echo "== dpkg-buildpackage -us -uc -b in $dir"
  if ! (cd "$dir" && CARGO_NET_OFFLINE=true DEB_BUILD_PROFILES=pkg.libkvm.rustup \
        dpkg-buildpackage -us -uc -b) > "$dir/../build.log" 2>&1; then
    tail -n 40 "$dir/../build.log"; fail "dpkg-buildpackage failed in $dir (log above)"
  fi
  grep -q 'dpkg-gensymbols.*-c4\|dh_makeshlibs -- -c4' "$dir/../build.log" || fail "the build did not check the symbols at level 4"
  echo "   built in $((SECONDS - t)) s: $(cd "$dir/.." && ls ./*.deb | tr '\n' ' ')"
}

a=$work/a/libkvm-$version
b=$work/b/another/place/libkvm
copy "$a"
copy "$b"
build "$a"
build "$b"

echo "== lintian"
changes=$work/a/libkvm_${debversion}_$arch.changes
# As root, lintian warns and exits 2 unless told --allow-root. Overridden tags are shown
# (O:, each with the reason debian/*.lintian-overrides gives); with --show-overrides,
# --fail-on would count them too, so the verdict is read from the output.
[ "$(id -u)" = 0 ] && allow_root=--allow-root || allow_root=
set +e
lintian $allow_root --display-info --display-experimental --pedantic --show-overrides --fail-on none "$changes" \
  2>&1 | tee "$work/lintian.log"
status=${PIPESTATUS[0]}
set -e
[ "$status" = 0 ] || fail "lintian failed (exit $status)"
grep -q '^[EW]:' "$work/lintian.log" && fail "lintian found errors or warnings (above)"
echo "   lintian: $(grep -c '^E:' "$work/lintian.log" || true) errors, $(grep -c '^W:' "$work/lintian.log" || true) warnings, $(grep -c '^[IPX]:' "$work/lintian.log" || true) notes, $(grep -c '^O:' "$work/lintian.log" || true) overridden"

echo "== symbols check level 4"
so=$a/debian/libkvm1/usr/lib/$multiarch/libkvm.so.$version
gensymbols() { (cd "$a" && dpkg-gensymbols -c4 -plibkvm1 -Pdebian/libkvm1 -e"$so" -I"$1" -O"$work/out.symbols") >"$work/gensymbols.log" 2>&1; }
gensymbols debian/libkvm1.symbols || { cat "$work/gensymbols.log"; fail "dpkg-gensymbols -c4 fails on debian/libkvm1.symbols"; }
grep -v ' kvm_run@' "$a/debian/libkvm1.symbols" > "$work/missing.symbols"
gensymbols "$work/missing.symbols" && fail "dpkg-gensymbols -c4 accepted a symbols file without kvm_run"
{ cat "$a/debian/libkvm1.symbols"; echo " kvm_no_such_function@LIBKVM_1.0 1.0.0"; } > "$work/extra.symbols"
gensymbols "$work/extra.symbols" && fail "dpkg-gensymbols -c4 accepted a symbols file naming a function that does not exist"
echo "   debian/libkvm1.symbols passes; a missing and a vanished symbol each fail the build"

echo "== package contents"
debs=$work/a
for p in libkvm1 libkvm-dev kvmrun libkvm1-dbgsym kvmrun-dbgsym; do
  [ -f "$debs/${p}_${debversion}_$arch.deb" ] || fail "no package $p"
done
root=$work/root
for p in libkvm1 libkvm-dev kvmrun; do dpkg-deb -x "$debs/${p}_${debversion}_$arch.deb" "$root"; done
lib=$root/usr/lib/$multiarch
# (Outputs go to files before grep -q: with pipefail, a writer cut off by grep fails.)
readelf -d "$root/usr/bin/kvmrun" > "$work/dyn"
if grep -E 'RUNPATH|RPATH' "$work/dyn"; then fail "packaged kvmrun has a RUNPATH"; fi
readelf -SW "$lib/libkvm.so.$version" > "$work/sections"
grep -q ' \.debug_info ' "$work/sections" && fail "packaged libkvm.so keeps its debug info"
dpkg-deb -c "$debs/libkvm1-dbgsym_${debversion}_$arch.deb" > "$work/dbgsym"
grep -q '\.debug$' "$work/dbgsym" || fail "libkvm1-dbgsym holds no debug file"
dpkg-deb -f "$debs/kvmrun_${debversion}_$arch.deb" Depends > "$work/depends"
grep -q "libkvm1 (>= $version)" "$work/depends" || fail "kvmrun does not depend on libkvm1 (>= $version): $(cat "$work/depends")"
export PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root
cc -Wall -Werror -o "$work/hello" "$src/examples/hello.c" "$src/examples/hello-guest.S" $(pkg-config --cflags --libs libkvm)
LD_LIBRARY_PATH=$lib "$work/hello" > "$work/out" || fail "hello built against libkvm-dev failed"
grep -q '^guest halted' "$work/out" || fail "hello built against libkvm-dev did not run its guest"
cc -static -o "$work/hello-static" "$src/examples/hello.c" "$src/examples/hello-guest.S" $(pkg-config --static --cflags --libs libkvm)
"$work/hello-static" > "$work/out" || fail "hello built -static against libkvm-dev failed"
grep -q '^guest halted' "$work/out" || fail "hello built -static against libkvm-dev did not run its guest"
LD_LIBRARY_PATH=$lib "$root/usr/bin/kvmrun" -h >/dev/null || fail "packaged kvmrun -h failed"
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
echo "   packaged kvmrun has no RUNPATH; libkvm.so stripped, debug info in libkvm1-dbgsym; hello built against libkvm-dev ran (shared and -static)"

echo "== reproducible: two builds in $a and $b"
for f in build/libkvm.so.$version build/libkvm.a build/inst/kvmrun; do
  cmp "$a/$f" "$b/$f" || fail "$f differs between the two builds"
done
(cd "$work/a" && ls ./*.deb) | while read -r d; do
  if ! cmp -s "$work/a/$d" "$work/b/another/place/$d"; then
    mkdir -p "$work/x/a" "$work/x/b"
    dpkg-deb -R "$work/a/$d" "$work/x/a"; dpkg-deb -R "$work/b/another/place/$d" "$work/x/b"
    diff -r "$work/x/a" "$work/x/b" | head -20
    fail "$d differs between the two builds"
  fi
done
echo "   libkvm.so.$version, libkvm.a, kvmrun and every .deb are byte-identical"

echo "== default make install (PREFIX=/usr/local, no DESTDIR)"
if [ "$(id -u)" != 0 ]; then
  echo "   skipped: not root"
elif ls /usr/local/lib/libkvm.* /usr/local/include/libkvm.h >/dev/null 2>&1; then
  echo "   skipped: a libkvm is installed in /usr/local already; not touching it"
else
  (cd "$a" && make -s install) > "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "make install"; }
  grep -q '^ldconfig$' "$work/install.log" || { (cd "$a" && make -s uninstall) >/dev/null 2>&1; fail "make install did not run ldconfig"; }
  rc=0
  cc -o "$work/app" "$src/examples/hello.c" "$src/examples/hello-guest.S" $(pkg-config --cflags --libs libkvm) \
    && "$work/app" > "$work/app.out" 2>&1 || rc=$?
  (cd "$a" && make -s uninstall) >/dev/null
  [ $rc = 0 ] && grep -q '^guest halted' "$work/app.out" || fail "README's program did not start after make install: $(cat "$work/app.out" 2>/dev/null)"
  ls /usr/local/lib/libkvm.* /usr/local/include/libkvm.h /usr/local/bin/kvmrun 2>/dev/null && fail "make uninstall left files"
  ldconfig -p > "$work/cache"
  grep -q '/usr/local/lib/libkvm' "$work/cache" && fail "the ldconfig cache still names /usr/local/lib/libkvm after make uninstall"
  echo "   README's program started after make install (ldconfig ran); make uninstall removed everything"
fi
echo "check-package: packages built twice, lintian clean, symbols checked, contents checked, builds reproducible"
