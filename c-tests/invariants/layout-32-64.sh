# The structs that cross libkvm's boundary are identical for 32- and 64-bit callers (seed
# 002): every struct and union named in a prototype of include/libkvm.h or defined by it
# (and every named one inside those) has the same size, alignment and member offsets with
# gcc -m32 as with -m64, and no parameter or return type (nor the pointee of a pointer
# parameter) changes size, except the ones listed below with the reason it does not matter
# for the kernel interface. The types come from the header itself (gcc -aux-info), the
# member lists from the x86-64 debug info (abidw), the values from the x86-64 compiler; the
# check is C11 _Static_assert, compiled with -m32.
set -eu
cc=${CC:-cc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# What may differ, and why. "param FUNCTION:N" (N = parameter number, 0 = return type);
# "layout struct NAME MEMBER" (a member and all under it, * = the whole struct).
cat > "$tmp/exceptions" <<'EOF'
param kvm_check_extension:2 passed by value as the argument of the KVM_CHECK_EXTENSION ioctl, which the kernel takes in the caller's own width; KVM_CAP_* numbers are small
param kvm_vm_ioctl:2 ioctl(2)'s own request type; request numbers are 32-bit values
param kvm_vcpu_ioctl:1 ioctl(2)'s own request type; request numbers are 32-bit values
param kvm_system_ioctl:1 ioctl(2)'s own request type; request numbers are 32-bit values
layout struct kvm_run riscv_sbi the kernel's RISC-V exit (unsigned long members); never produced on x86
layout struct kvm_run riscv_csr the kernel's RISC-V exit (unsigned long members); never produced on x86
layout struct kvm_xen_exit * the kernel's KVM_EXIT_XEN data (Xen HVM emulation, enabled only through KVM_CAP_XEN_HVM, for which libkvm has no call of its own): the kernel's own struct puts its union at 8 on x86-64 and at 4 on i386; libkvm passes struct kvm_run unchanged and cannot fix it
EOF
# A size_t or ssize_t anywhere is a length of the caller's own memory in the caller's own
# ABI: libkvm never hands it to the kernel inside a struct.
size_t_params() { perl -ne '
  next unless /extern (.*?)\b([A-Za-z_]\w*) \((.*)\);$/;
  my ($r, $f, @p) = ($1, $2, split /, /, $3);
  for my $i (0 .. $#p) { print "param $f:", $i + 1, " a length of the caller'"'"'s memory (size_t), never passed to the kernel inside a struct\n" if $p[$i] =~ /\bs?size_t\b/ }
  print "param $f:0 a length of the caller'"'"'s memory (size_t)\n" if $r =~ /\bs?size_t\b/;' "$1"; }

echo '#include <libkvm.h>' > "$tmp/h.c"
for m in 64 32; do
  if ! $cc -m$m -Iinclude -fsyntax-only -aux-info "$tmp/aux$m" "$tmp/h.c" 2> "$tmp/err"; then
    echo "libkvm.h does not compile with -m$m (is gcc-multilib installed?):"; cat "$tmp/err"; exit 1
  fi
  grep -E '^/\* [^ ]*include/libkvm\.h:' "$tmp/aux$m" | sed 's|^/\* [^ ]* \*/|/* */|' > "$tmp/protos$m"
done
if ! cmp -s "$tmp/protos64" "$tmp/protos32"; then
  echo "the prototypes of libkvm.h read differently with -m32:"; diff "$tmp/protos64" "$tmp/protos32"; exit 1
fi
size_t_params "$tmp/protos64" >> "$tmp/exceptions"

# A probe with one variable of each struct and union a prototype names, built for x86-64
# with debug info for all types (so that those libkvm.h defines are there too), gives
# abidw the member lists.
perl -ne 'print "$1 $2\n" while /\b(struct|union) ([A-Za-z_]\w*)/g' "$tmp/protos64" | sort -u > "$tmp/roots"
{ echo '#include <libkvm.h>'; awk '{ printf "%s %s libkvm_probe_%d;\n", $1, $2, NR }' "$tmp/roots"; } > "$tmp/probe.c"
$cc -m64 -g -O0 -fno-eliminate-unused-debug-types -shared -fPIC -Iinclude -o "$tmp/probe64.so" "$tmp/probe.c"
abidw --load-all-types --no-corpus-path --no-comp-dir-path "$tmp/probe64.so" > "$tmp/probe64.abi"
perl c-tests/invariants/layout.pl "$tmp/probe64.abi" "$tmp/protos64" "$tmp/exceptions" > "$tmp/printer.c"
$cc -m64 -std=gnu11 -Wall -Werror -Iinclude -o "$tmp/printer64" "$tmp/printer.c"
"$tmp/printer64" > "$tmp/asserts.c"
"$tmp/printer64" values > "$tmp/values64"
# The same program built for i386 shows its values, where this machine runs i386 code.
i386=0
if $cc -m32 -std=gnu11 -Iinclude -o "$tmp/printer32" "$tmp/printer.c" 2>/dev/null && "$tmp/printer32" values > "$tmp/values32" 2>/dev/null; then
  i386=1
fi
value32() { [ $i386 = 1 ] && awk -F'\t' -v k="$1" '$1 == k { print ", " $2 " on i386" }' "$tmp/values32"; }

# The assertions hold for x86-64 (where they were made: this checks the generator) and for i386.
fail=0
for m in 64 32; do
  if ! $cc -m$m -std=gnu11 -Iinclude -fsyntax-only "$tmp/asserts.c" 2> "$tmp/err$m"; then
    echo "-m$m: the layout differs from x86-64's:"
    sed -n 's/.*static assertion failed: "\(.*\) is \([0-9]*\) on x86-64"$/\1\t\2/p' "$tmp/err$m" | sort -u > "$tmp/failed"
    while IFS=$'\t' read -r what v; do echo "  $what is $v on x86-64$(value32 "$what")"; done < "$tmp/failed"
    grep 'error:' "$tmp/err$m" | grep -v 'static assertion failed' | sed 's/^[^ ]* error: /  error: /' | sort -u | head -n 20
    fail=1
  fi
done
[ $fail = 0 ] || exit 1

types=$(sed -n 's/^_Static_assert(sizeof(\(\(struct\|union\) [A-Za-z0-9_]*\)).*/\1/p' "$tmp/asserts.c")
echo "-m32 and -m64 agree on $(echo "$types" | wc -l) structs and unions: $(echo $types | sed 's/ \(struct\|union\) /, \1 /g')"
echo "  $(grep -c '^_Static_assert(offsetof' "$tmp/asserts.c") member offsets, $(grep -c '^_Static_assert(sizeof([^su]' "$tmp/asserts.c") sizes of parameters, return values and pointees"
n_bf=$(grep -c '^/\* bit-field' "$tmp/asserts.c" || true)
[ "$n_bf" = 0 ] || echo "  $n_bf bit-fields (no offsetof; covered by their neighbours and the struct size)"
if [ $i386 = 1 ]; then
  a4=$(join -t$'\t' <(grep $': _Alignof\t8$' "$tmp/values64" | sort) <(grep $': _Alignof\t4$' "$tmp/values32" | sort) | cut -f1 | sed 's/: _Alignof$//')
  [ -z "$a4" ] || echo "  aligned to 8 on x86-64 and to 4 on i386 (the i386 psABI; no offset or size changes): $(echo "$a4" | wc -l) kernel structs"
fi
echo "allowed to differ (with the values that do, where this machine runs i386 code):"
awk -F'\t' '$3 ~ /^allowed: / { print $1 "\t" $2 "\t" substr($3, 10) }' "$tmp/values64" | while IFS=$'\t' read -r what v why; do
  v32=$(value32 "$what")
  [ "$v32" = ", $v on i386" ] && v32=same
  printf '%s\t%s\n' "$why" "$what: $v on x86-64$v32"
done | awk -F'\t' '{ if (!($1 in n)) order[++k] = $1; n[$1] += 0; if ($2 !~ /same$/ && ++n[$1] <= 3) ex[$1] = ex[$1] "\n    " $2 }
  END { for (i = 1; i <= k; i++) { r = order[i]; print "  " r ex[r] (n[r] > 3 ? "\n    ... (" n[r] " values differ)" : "") } }'
exit 0
