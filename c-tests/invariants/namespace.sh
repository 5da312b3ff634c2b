# Every macro and identifier include/libkvm.h adds beyond the system headers it includes begins with LIBKVM_, libkvm_ or kvm_, and a program's own VERSION (autotools' config.h) survives it.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for tool in gcc clang g++ clang++ perl; do
  command -v "$tool" > /dev/null || { echo "$tool not installed (make deps deps-fuzz)"; exit 1; }
done
ours='^(LIBKVM_|libkvm_|kvm_)'

# The reference: exactly the system headers libkvm.h includes, in its order, read from
# the header itself so that a new include is compared too. What they bring is theirs.
grep -q '^#include <' include/libkvm.h || { echo "no #include <...> found in include/libkvm.h"; exit 1; }
if grep -E '^[[:space:]]*#[[:space:]]*include' include/libkvm.h | grep -vq '^#include <'; then
  echo "include/libkvm.h includes something other than a <system header>:"
  grep -E '^[[:space:]]*#[[:space:]]*include' include/libkvm.h | grep -v '^#include <'
  exit 1
fi
# A header of libkvm's own would be libkvm's names, not the system's: none is expected.
if grep -q '^#include <libkvm' include/libkvm.h; then
  echo "include/libkvm.h includes a libkvm header, which this check would count as a system one"
  exit 1
fi
grep '^#include <' include/libkvm.h > "$tmp/sys.c"
echo '#include <libkvm.h>' > "$tmp/kvm.c"
cp "$tmp/sys.c" "$tmp/sys.cc"; cp "$tmp/kvm.c" "$tmp/kvm.cc"

fail=0 mode_fail=0
bad() { echo "$1"; fail=1; mode_fail=1; }

# Macros: every #define that preprocessing libkvm.h leaves beyond the system headers' own,
# in C and C++, strict and GNU modes. A system macro that libkvm.h undefines or changes
# shows up on the other side of the comparison and fails too.
macros() { # compiler args..., source last
  "$@" -Iinclude -dM -E | LC_ALL=C sort
}
for mode in "gcc -std=c99 -x c" "gcc -std=c17 -pedantic -x c" "gcc -std=gnu11 -x c" \
            "clang -std=c11 -x c" "g++ -std=c++11" "clang++ -std=c++17"; do
  ext=c mode_fail=0; case $mode in g++*|clang++*) ext=cc ;; esac
  # $mode is a command line, split into words on purpose.
  macros $mode "$tmp/sys.$ext" > "$tmp/m.sys"
  macros $mode "$tmp/kvm.$ext" > "$tmp/m.kvm"
  LC_ALL=C comm -13 "$tmp/m.sys" "$tmp/m.kvm" | sed -E 's/^#define ([A-Za-z_0-9]+).*/\1/' > "$tmp/added"
  LC_ALL=C comm -23 "$tmp/m.sys" "$tmp/m.kvm" > "$tmp/removed"
  n=$(wc -l < "$tmp/added")
  [ "$n" -gt 0 ] || bad "$mode: no macro from libkvm.h found at all (LIBKVM_H, LIBKVM_VERSION...): the check is broken"
  while read -r name; do
    [[ $name =~ $ours ]] || bad "$mode: libkvm.h defines macro $name, outside libkvm's namespace"
  done < "$tmp/added"
  while read -r line; do bad "$mode: libkvm.h undefines or changes a system header's macro: $line"; done < "$tmp/removed"
  [ $mode_fail -eq 1 ] || echo "$mode: $n macros added, all in libkvm's namespace"
done

# Identifiers: every named declaration at file scope in clang's syntax tree — functions,
# variables, typedefs, struct/union/enum tags (nested ones too: in C they are file scope),
# enum constants, C++ namespaces and classes — counted, so that a redeclaration of a
# system header's function counts as well. Parameters and members have no file scope
# and are not looked at.
decls() { # compiler args..., source last
  if ! "$@" -Iinclude -fsyntax-only -Xclang -ast-dump=json > "$tmp/ast.json" 2> "$tmp/err"; then
    bad "$*: does not compile:"; head -10 "$tmp/err"; return
  fi
  perl -MJSON::PP -e '
    local $/; my $tu = JSON::PP->new->decode(<STDIN>);
    my %into = map { $_ => 1 } qw(TranslationUnitDecl LinkageSpecDecl NamespaceDecl
                                  RecordDecl CXXRecordDecl EnumDecl);
    my %skip = map { $_ => 1 } qw(ParmVarDecl FieldDecl IndirectFieldDecl);
    sub walk {
      my ($n) = @_;
      return if $n->{isImplicit};
      my $k = $n->{kind} // "";
      print "$k $n->{name}\n" if $k =~ /Decl$/ && !$skip{$k} && defined $n->{name} && $n->{name} ne "";
      if ($into{$k}) { walk($_) for @{ $n->{inner} // [] } }
    }
    walk($tu);' < "$tmp/ast.json" | LC_ALL=C sort
}
for mode in "clang -std=c99 -pedantic -x c" "clang -std=gnu11 -x c" "clang++ -std=c++17"; do
  ext=c mode_fail=0; case $mode in clang++*) ext=cc ;; esac
  decls $mode "$tmp/sys.$ext" > "$tmp/d.sys"
  decls $mode "$tmp/kvm.$ext" > "$tmp/d.kvm"
  LC_ALL=C comm -13 "$tmp/d.sys" "$tmp/d.kvm" > "$tmp/added"
  n=$(grep -c '^FunctionDecl kvm_' "$tmp/added" || true)
  [ "$n" -ge 50 ] || bad "$mode: only $n kvm_* functions found in libkvm.h: the check is broken"
  while read -r kind name; do
    [[ $name =~ $ours ]] || bad "$mode: libkvm.h declares $kind $name, outside libkvm's namespace"
  done < "$tmp/added"
  [ $mode_fail -eq 1 ] || echo "$mode: $(wc -l < "$tmp/added") declarations added, all in libkvm's namespace"
done

# An autotools program: config.h defines VERSION, before or after libkvm.h, and the
# program prints it. gcc -Werror stopped at '"VERSION" redefined'; clang warned, and the
# program then passed libkvm's integer VERSION to %s.
for where in before after; do
  {
    [ $where = before ] && echo '#define VERSION "2.1"'
    echo '#include <libkvm.h>'
    [ $where = after ] && echo '#define VERSION "2.1"'
    echo '#include <stdio.h>'
    echo 'int main(void) { printf("%s %d\n", VERSION, LIBKVM_VERSION > 0); return 0; }'
  } > "$tmp/config_$where.c"
  for cc in gcc clang; do
    if ! out=$($cc -std=gnu11 -Wall -Wextra -Werror -Iinclude -o "$tmp/prog" "$tmp/config_$where.c" 2>&1); then
      bad "$cc: VERSION defined $where libkvm.h: does not compile:"; echo "$out" | head -10
    elif [ "$("$tmp/prog")" != "2.1 1" ]; then
      bad "$cc: VERSION defined $where libkvm.h: the program prints '$("$tmp/prog")', not '2.1 1'"
    fi
  done
done

[ $fail -eq 0 ] || exit 1
echo "libkvm.h adds only LIBKVM_*, libkvm_* and kvm_* names, and leaves a program's VERSION alone"
