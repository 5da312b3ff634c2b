# kvmrun boots the test kernels of c-tests/kernels (multiboot handover, the interrupt
# hardware at handover, IRQ 11 and sti; hlt, devices, SMP bring-up, a flat a.out-kludge
# image, each way a guest can end) and the demo kernel, and refuses bad command lines and
# bad kernels with a message and its documented status.
set -u
cd "$(dirname "$0")/../.."
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then echo "SKIP: /dev/kvm is not usable here"; exit 77; fi
K=build/c-tests/kernels
KVMRUN=build/kvmrun
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
failed=0 passed=0

# expect NAME STATUS [PATTERN...] -- ARGS...: kvmrun ARGS exits with STATUS, its output
# (stdout and stderr) has every PATTERN, and a guest that passes printed no FAIL line.
expect() {
  local name=$1 want=$2 pats=() p ok=1
  shift 2
  while [ "$1" != "--" ]; do pats+=("$1"); shift; done
  shift
  timeout -k 5 60 "$KVMRUN" "$@" > "$tmp/out" 2> "$tmp/err"
  local st=$?
  [ "$st" -eq "$want" ] || { echo "FAIL $name: status $st, expected $want"; ok=0; }
  for p in "${pats[@]}"; do
    cat "$tmp/out" "$tmp/err" | grep -qF -- "$p" || { echo "FAIL $name: no '$p' in the output"; ok=0; }
  done
  if grep -q '^FAIL' "$tmp/out"; then echo "FAIL $name: the guest reports failures"; ok=0; fi
  if [ $ok -eq 1 ]; then
    passed=$((passed + 1)); echo "ok $name (status $st)"
  else
    failed=$((failed + 1))
    echo "  command: kvmrun $*"; sed 's/^/  stdout: /' "$tmp/out" | tail -n 25; sed 's/^/  stderr: /' "$tmp/err" | tail -n 25
  fi
}

# ---- guests -------------------------------------------------------------------------
printf 'module 0\n' > "$tmp/mod,0"
printf 'module 1\n' > "$tmp/mod1"
expect "multiboot handover, 2 modules, -m 64" 1 "0 failure(s)" "module 1 command line" -- \
  -m 64 -append "hello world mem=64 mods=2" -initrd "$tmp/mod,,0 arg0,$tmp/mod1 arg1" -kernel $K/boot.elf
expect "multiboot handover, -m 4G: RAM above 4 GiB" 1 "0 failure(s)" "ok mmap: 512 MiB above 4 GiB" -- \
  -m 4G -append "hello world mem=4096" $K/boot.elf
# The interrupt hardware as QEMU's BIOS hands it over (both kernels pass under
# qemu-system-x86_64 -M pc -device pc-testdev -device isa-debug-exit,iobase=0xf4,iosize=4).
expect "PICs, ELCR, PIT, LAPIC LINT0/1, IOAPIC at handover" 1 "0 failure(s)" "ok master PIC mask 0xb8" -- \
  $K/irqstate.elf
expect "IRQ 11 raised, then sti; hlt: the PIT wakes it, IRQ 11 once opened" 1 "0 failure(s)" \
  "ok the PIT's IRQ 0 (vector 0x08) woke it" "ok IRQ 11 unmasked: sti; hlt takes slave PIC vector 0x73" -- \
  -t 20 $K/irq11.elf
expect "devices, 3 vcpus" 1 "0 failure(s)" "UART: this line went through THR" "ok PIT -> IOAPIC pin 2" -- \
  -m 256 -smp 3 -t 30 -append "mem=256 cpus=3" $K/devices.elf
for n in 1 2 5 16; do
  expect "SMP bring-up, -smp $n" 1 "0 failure(s)" "ok APs 1-$((n - 1)) all reported" -- \
    -smp $n -t 30 -append "cpus=$n" $K/smp.elf
done
expect "flat image with the a.out kludge" 67 "kludge: flat image loaded" -- $K/kludge.bin
expect "demo kernel, 3 vcpus" 1 "vcpu 2: hello from APIC ID 2" "783 primes below 6000 (right)" -- \
  -smp 3 -t 60 build/examples/demo-kernel.elf

# ---- how guests end -----------------------------------------------------------------
expect "isa-debug-exit 5" 11 -- -append "exit=5" $K/exits.elf
expect "isa-debug-exit 16-bit 300" 89 -- -append "exit16=300" $K/exits.elf
expect "triple fault" 8 "triple fault (KVM_EXIT_SHUTDOWN)" "rip " "cr0 " -- -append triple $K/exits.elf
expect "emulation failure" 10 "KVM_EXIT_INTERNAL_ERROR" "rip 00000000ff000000" -- -append mmio-exec $K/exits.elf
expect "timeout while halted" 14 "timed out after 0.3 seconds" -- -t 0.3 -append hlt $K/exits.elf
expect "timeout while spinning, APs waiting for SIPI" 14 "timed out" -- -smp 3 -t 0.3 -append spin $K/exits.elf

# ---- -stats: KVM's own counts ---------------------------------------------------------
# check NAME CONDITION...: one more result, from a test of the files expect left.
check() {
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok $name"
  else failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/  stderr: /' "$tmp/err" | tail -n 12; fi
}
# The column of $2 in row $1 of the -stats table (the row whose first word is $1).
stat_of() { awk -v row="$1" -v col="$2" '$1 == "vcpu" { for (i = 1; i <= NF; i++) if ($i == col) c = i }
  c && $1 == row { print $c; exit }' "$tmp/err"; }
# Each byte the kernel writes to the UART is an `out`, an exit of its vcpu, and so is its
# isa-debug-exit: KVM counts at least that many (more: its MMIO, page faults, interrupts).
expect "-stats, 1 vcpu" 11 "kvmrun: exits by kind (KVM's statistics, 1 vcpu):" -- -stats -append "exit=5" $K/exits.elf
bytes=$(wc -c < "$tmp/out") exits=$(stat_of 0 exits)
check "-stats: vcpu 0 had $exits exits, at least the $bytes UART bytes + 1" [ "${exits:-0}" -ge $((bytes + 1)) ]
expect "-stats, 3 vcpus" 1 "0 failure(s)" "kvmrun: exits by kind (KVM's statistics, 3 vcpus):" -- \
  -stats -m 256 -smp 3 -t 30 -append "mem=256 cpus=3" $K/devices.elf
bytes=$(wc -c < "$tmp/out") sum=$(( $(stat_of 0 exits) + $(stat_of 1 exits) + $(stat_of 2 exits) ))
check "-stats: total $(stat_of total exits) exits = the vcpus' $sum, at least the $bytes UART bytes" \
  [ "$(stat_of total exits)" -eq "$sum" ] && [ "$sum" -ge "$bytes" ]

# ---- command line and kernel files ----------------------------------------------------
expect "-h" 0 "usage: kvmrun" "Exit status" -- -h
expect "no kernel" 2 "no kernel given" -- -m 64
expect "missing kernel" 4 "cannot open kernel $tmp/none: No such file" -- "$tmp/none"
expect "directory as kernel" 4 "is not a regular file" -- -kernel "$tmp"
printf 'just text\n' > "$tmp/text"
expect "text file" 4 "is not a multiboot kernel" -- "$tmp/text"
: > "$tmp/empty"
expect "empty file" 4 "is not a multiboot kernel" -- "$tmp/empty"
expect "64-bit program without a header" 4 "is not a multiboot kernel" -- "$(type -P true)"
printf '.section .text\n.globl _start\n_start:\n.align 4\n.long 0x1badb002, 3, -(0x1badb002 + 3)\nhlt\n' > "$tmp/mb64.S"
if ${CC:-cc} -c -o "$tmp/mb64.o" "$tmp/mb64.S" && ${CC:-cc} -nostdlib -static -o "$tmp/mb64" "$tmp/mb64.o"; then
  expect "64-bit ELF with a multiboot header" 4 "is a 64-bit ELF file" -- "$tmp/mb64"
else
  echo "FAIL could not build a 64-bit ELF"; failed=$((failed + 1))
fi
cp $K/boot.elf "$tmp/badph.elf"
printf '\x00\xff\xff\xff' | dd of="$tmp/badph.elf" bs=1 seek=28 conv=notrunc status=none # e_phoff
expect "ELF program headers outside the file" 4 "malformed ELF program headers" -- "$tmp/badph.elf"
cp $K/boot.elf "$tmp/badseg.elf"
printf '\xff\xff\xff\x7f' | dd of="$tmp/badseg.elf" bs=1 seek=$((52 + 4)) conv=notrunc status=none # p_offset
expect "ELF segment outside the file" 4 "malformed ELF segment" -- "$tmp/badseg.elf"
cp $K/kludge.bin "$tmp/flags.bin"
printf '\x08\x00\x01\x00\xf6\x4f\x51\xe4' | dd of="$tmp/flags.bin" bs=1 seek=4 conv=notrunc status=none # flag 3
expect "multiboot flags kvmrun lacks" 4 "asks for multiboot features kvmrun does not provide (flags 0x8)" -- "$tmp/flags.bin"
expect "kernel above the RAM" 4 "outside the guest's RAM" -- -m 2 $K/kludge.bin
expect "missing module" 4 "cannot open module $tmp/none" -- -initrd "$tmp/mod1,$tmp/none x" $K/boot.elf
expect "module without a name" 2 "module 1 has no file name" -- -initrd "" $K/boot.elf
expect "-m 0" 2 "too small" -- -m 0 $K/boot.elf
expect "-m 1M" 2 "too small" -- -m 1M $K/boot.elf
expect "-m abc" 2 "is not a size" -- -m abc $K/boot.elf
expect "-m 64X" 2 "is not a size" -- -m 64X $K/boot.elf
expect "-m 2000T" 2 "too large" -- -m 2000T $K/boot.elf
expect "-m 4097K" 2 "multiple of 4K" -- -m 4097K $K/boot.elf
expect "-smp 0" 2 "between 1 and 255" -- -smp 0 $K/boot.elf
expect "-smp 256" 2 "between 1 and 255" -- -smp 256 $K/boot.elf
expect "-smp two" 2 "is not a number of vcpus" -- -smp two $K/boot.elf
expect "-t 0" 2 "is not a number of seconds" -- -t 0 $K/boot.elf
expect "-t soon" 2 "is not a number of seconds" -- -t soon $K/boot.elf
expect "unknown option" 2 "unknown option '-bogus'" "Try 'kvmrun -h'" -- -bogus $K/boot.elf
expect "option without its value" 2 "option '-m' needs a value" -- -kernel $K/boot.elf -m
expect "two kernels" 2 "two kernels" -- -kernel $K/boot.elf $K/smp.elf
expect "stray argument" 2 "unexpected argument" -- $K/boot.elf -m 64 $K/smp.elf

# ---- installed kvmrun and its man page ------------------------------------------------
if command -v groff > /dev/null; then
  w=$(groff -ww -z -man man/man1/kvmrun.1 2>&1)
  if [ -z "$w" ]; then passed=$((passed + 1)); echo "ok kvmrun.1 is clean for groff"
  else failed=$((failed + 1)); echo "FAIL groff warns about kvmrun.1:"; echo "$w"; fi
fi
dest=$tmp/dest
${MAKE:-make} -s install DESTDIR="$dest" PREFIX=/opt/kvmrun-test > /dev/null
if [ -x "$dest/opt/kvmrun-test/bin/kvmrun" ] && [ -f "$dest/opt/kvmrun-test/share/man/man1/kvmrun.1" ] &&
   LD_LIBRARY_PATH=$dest/opt/kvmrun-test/lib "$dest/opt/kvmrun-test/bin/kvmrun" -h | grep -q "usage: kvmrun" &&
   ! readelf -d "$dest/opt/kvmrun-test/bin/kvmrun" | grep -qE 'RUNPATH|RPATH'; then
  passed=$((passed + 1)); echo "ok make install: bin/kvmrun (no RUNPATH: libkvm from the dynamic linker's path) and man1/kvmrun.1"
else
  failed=$((failed + 1)); echo "FAIL make install: kvmrun or its man page missing or not working"
fi
${MAKE:-make} -s uninstall DESTDIR="$dest" PREFIX=/opt/kvmrun-test > /dev/null
left=$(find "$dest" -type f -o -type l)
if [ -z "$left" ]; then passed=$((passed + 1)); echo "ok make uninstall removes kvmrun and its man page"
else failed=$((failed + 1)); echo "FAIL left after uninstall:"; echo "$left"; fi

echo "kvmrun: $passed passed, $failed failed"
[ $failed -eq 0 ]
