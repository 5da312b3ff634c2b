#!/usr/bin/env bash
# The ABI baseline of libkvm.so: abi/libkvm.abi, libabigail's description of the built
# library (every exported function with its symbol version, parameter and return types,
# and the full layout of every struct they reach).
#
#   abi/abi.sh check    (make check, through c-tests/invariants/abi.sh) compares the built library
#                       with the baseline: any difference fails.
#   abi/abi.sh record   (make abi-baseline) rewrites the baseline from the built library,
#                       but refuses a change that a released version node forbids.
#
# Which version nodes are released follows from Cargo.toml's version MAJOR.MINOR.PATCH:
# while PATCH is 0, node LIBKVM_MAJOR.MINOR is the one being developed ("open"): functions
# may be added to it, and changed or removed while it is unreleased. Every other node is
# released: its functions never change or go away, and nothing is added to it. Right after
# a release the version moves on to the next minor (1.0.0 released -> 1.1.0), which closes
# the node just released; a patch release (1.0.1) has no open node. See CONTRIBUTING.md.
#
# The types come from the DWARF of the crate's own code (Cargo.toml gives the libkvm
# package full debug info in the release profile; with line tables only, libabigail sees
# no parameters at all). The header is generated from the same Rust signatures by cbindgen,
# so this is also the ABI of include/libkvm.h; c-tests/invariants/surface.sh checks that both name
# the same functions.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
baseline=abi/libkvm.abi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
IFS=. read -r major minor patch <<< "$version"
so=build/libkvm.so.$version
open_node=""
[ "$patch" = 0 ] && open_node=LIBKVM_$major.$minor

command -v abidw >/dev/null && command -v abidiff >/dev/null \
  || { echo "abidw/abidiff not found: install the Debian package abigail-tools (make deps)"; exit 1; }
[ -f "$so" ] || { echo "$so not built (make)"; exit 1; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# The description of the built library. Locations are left out and type ids are hashes, so
# that the committed file changes only where the ABI does; translation units that
# contribute nothing (the dependencies', named by toolchain paths) are dropped.
abidw --no-corpus-path --no-comp-dir-path --no-show-locs --type-id-style hash "$so" \
  | perl -0777 -pe 's{^  <abi-instr [^\n]*>\n  </abi-instr>\n}{}mg' > "$tmp/current.abi"
grep -q '<parameter ' "$tmp/current.abi" \
  || { echo "$so has no parameter types in its debug info (is [profile.release.package.libkvm] debug = 2 gone?)"; exit 1; }

# "name version" of each exported function of an ABI description.
symbols() { perl -ne "print \"\$1 \$2\\n\" if /<elf-symbol name='([^']+)' version='([^']*)'/" "$1" | sort; }
soname() { sed -n "1s/.* soname='\([^']*\)'.*/\1/p" "$1"; }
node_of() { awk -v s="$1" '$1 == s { print $2 }' "$tmp/base.syms" "$tmp/cur.syms" | head -n 1; }
is_open() { [ -n "$open_node" ] && [ "$1" = "$open_node" ]; }

if [ ! -f "$baseline" ] || [ "$(soname "$baseline")" != "$(soname "$tmp/current.abi")" ]; then
  if [ "$mode" = record ]; then
    [ -f "$baseline" ] && echo "new soname $(soname "$tmp/current.abi") (was $(soname "$baseline")): a new library, recorded afresh"
    cp "$tmp/current.abi" "$baseline"
    echo "recorded $baseline: $(symbols "$baseline" | wc -l) functions"
    exit 0
  fi
  if [ -f "$baseline" ]; then
    echo "$baseline describes $(soname "$baseline"), the library is $(soname "$tmp/current.abi"): run make abi-baseline"
  else
    echo "no ABI baseline $baseline: run make abi-baseline and commit it"
  fi
  exit 1
fi

symbols "$baseline" > "$tmp/base.syms"
symbols "$tmp/current.abi" > "$tmp/cur.syms"

# Every node the library uses belongs to this major version and is not newer than the
# version being built.
bad_nodes=$(awk '{ print $2 }' "$tmp/cur.syms" | sort -u | while read -r n; do
  if [[ ! $n =~ ^LIBKVM_([0-9]+)\.([0-9]+)$ ]] || [ "${BASH_REMATCH[1]}" != "$major" ] \
     || [ "${BASH_REMATCH[2]}" -gt "$minor" ]; then echo "$n"; fi
done)

# Differences, one per line: "removed|added|changed name node" or "moved name old new".
join -a1 -a2 -e - -o 0,1.2,2.2 "$tmp/base.syms" "$tmp/cur.syms" | while read -r name old new; do
  if [ "$new" = - ]; then echo "removed $name $old"
  elif [ "$old" = - ]; then echo "added $name $new"
  elif [ "$old" != "$new" ]; then echo "moved $name $old $new"
  fi
done > "$tmp/changes"

# Types: abidiff names each function whose parameters, return type or any struct reached
# from them changed. Its exit code is nonzero for any difference, additions included.
rc=0
abidiff --no-show-locs "$baseline" "$tmp/current.abi" > "$tmp/abidiff" 2>&1 || rc=$?
if [ $((rc & 3)) -ne 0 ]; then echo "abidiff failed (exit $rc):"; cat "$tmp/abidiff"; exit 1; fi
perl -ne "print \"\$1\\n\" if /^\s+\[C\] '[^']*?([A-Za-z_][A-Za-z0-9_]*)\(/" "$tmp/abidiff" | sort -u \
  | while read -r name; do echo "changed $name $(node_of "$name")"; done >> "$tmp/changes"
# Anything abidiff reports that the lines above do not account for (an [A]/[D] function is
# in the symbol lists already) is a change of its own.
if [ $rc -ne 0 ] && [ ! -s "$tmp/changes" ]; then echo "unexplained - -" >> "$tmp/changes"; fi

# Which changes the open node allows; everything else breaks a released node.
if [ -n "$open_node" ]; then where="the open node $open_node"
else where="a new node LIBKVM_$major.$((minor + 1)) with version $major.$((minor + 1)).0"; fi
forbidden=0
while read -r kind name node new; do
  case $kind in
    added)   is_open "$node" && continue
             why="added to $node, which is released: new functions go into $where (CONTRIBUTING.md)" ;;
    removed|changed) is_open "$node" && continue
             why="$kind, but $node is released: its functions never change or go away" ;;
    moved)   is_open "$node" && is_open "$new" && continue
             why="moved from $node to $new: a released function keeps its version node" ;;
    *)       why="abidiff reports a change that no function accounts for (below)" ;;
  esac
  echo "FORBIDDEN: $name: $why"
  forbidden=1
done < "$tmp/changes" > "$tmp/verdict"
for n in $bad_nodes; do
  echo "FORBIDDEN: node $n does not fit version $version: nodes run from LIBKVM_$major.0 to LIBKVM_$major.$minor" >> "$tmp/verdict"
  forbidden=1
done

show() {
  [ ! -s "$tmp/verdict" ] || cat "$tmp/verdict"
  if [ -s "$tmp/changes" ]; then
    echo "symbol changes against $baseline (open node: ${open_node:-none, $version is a patch release}):"
    sed 's/^/  /' "$tmp/changes"
  fi
  if [ $rc -ne 0 ]; then echo "abidiff $baseline <built library> (exit $rc):"; sed 's/^/  /' "$tmp/abidiff"; fi
}

case $mode in
  check)
    if [ $rc -eq 0 ] && [ ! -s "$tmp/changes" ] && [ ! -s "$tmp/verdict" ]; then
      echo "ABI of $so matches $baseline: $(wc -l < "$tmp/cur.syms") functions, open node ${open_node:-none}"
      exit 0
    fi
    show
    if [ $forbidden -eq 0 ]; then
      echo "The library differs from the ABI baseline in ways the open node $open_node allows:"
      echo "if they are intended, run make abi-baseline and commit abi/libkvm.abi."
    else
      echo "The library breaks the ABI of a released version node."
    fi
    exit 1 ;;
  record)
    if [ $forbidden -ne 0 ]; then
      show
      echo "not recording: a released version node would change"
      exit 1
    fi
    if [ $rc -eq 0 ] && [ ! -s "$tmp/changes" ] && cmp -s "$tmp/current.abi" "$baseline"; then
      echo "$baseline is up to date"; exit 0
    fi
    [ ! -s "$tmp/changes" ] || { echo "recording:"; sed 's/^/  /' "$tmp/changes"; }
    cp "$tmp/current.abi" "$baseline"
    echo "recorded $baseline: $(wc -l < "$tmp/cur.syms") functions"
    exit 0 ;;
  *) echo "usage: $0 check|record"; exit 2 ;;
esac
