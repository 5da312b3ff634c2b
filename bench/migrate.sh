#!/bin/bash
# make bench-migrate: kvmrun's live migration and restore beside QEMU 7.2's, on this
# machine, with the same multiboot kernel (c-tests/kernels/migrate.c) and memory size.
# Medians of 3 (BENCH_RUNS). Not part of make check. See BENCHMARKS.md.
#   memory-heavy guest, 128 MiB: 1 MiB rewritten per 10 ms PIT tick (passes paced)
#   hot guest, 128 MiB: 100 MiB rewritten at native speed in ring 3 (nowait)
#   (kvmrun each with the dirty bitmap, and with -dirty-ring of the host's largest ring)
#   restore, 2 vcpus, 512 MiB: from the start of kvmrun -restore (fork + exec) to the
#     guest's first instruction (kvmrun -v prints when it lets the vcpus run); QEMU:
#     from the start of qemu -incoming "exec:cat FILE" to `info status` running
set -u
cd "$(dirname "$0")/.."
RUNS=${BENCH_RUNS:-3}
QEMU_INSTALL="apt-get install -y --allow-downgrades qemu-system-x86 qemu-utils=1:7.2+dfsg-7+deb12u18+b2"
QEMU=qemu-system-x86_64
if ! $QEMU --version 2> /dev/null | grep -q "version 7\.2"; then
  echo "bench-migrate: QEMU 7.2 is not installed; installing it: $QEMU_INSTALL"
  if [ "$(id -u)" -ne 0 ] || ! $QEMU_INSTALL > /dev/null; then
    echo "bench-migrate: could not install QEMU 7.2. Install it with:"; echo "  $QEMU_INSTALL"; exit 1
  fi
fi
K=build/c-tests/kernels/migrate.elf
KVMRUN=build/kvmrun
[ -x $KVMRUN ] && [ -f $K ] || { echo "bench-migrate: build first (make all tests)"; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null; done; wait 2> /dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
port=$((30000 + $$ % 20000))
HEAVY="kb=1024 passes=100000000"
HOT="kb=102400 passes=100000000 nowait"

now() { perl -MTime::HiRes=clock_gettime,CLOCK_MONOTONIC -e 'printf "%.6f\n", clock_gettime(CLOCK_MONOTONIC)'; }
# stamped COMMAND...: runs COMMAND, printing "start T" (CLOCK_MONOTONIC) on stderr just before its exec
stamped() { perl -MTime::HiRes=clock_gettime,CLOCK_MONOTONIC -e 'printf STDERR "start %.9f\n", clock_gettime(CLOCK_MONOTONIC); exec @ARGV or die' "$@"; }
# hmp SOCKET COMMAND: QEMU's human monitor's answer to COMMAND
hmp() {
  perl -MIO::Socket::UNIX -e '
    my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or exit 1; my $b = "";
    sub upto { while ($b !~ /\(qemu\) $/) { my $r = sysread($s, $b, 4096, length $b); last unless $r } }
    upto(); $b = ""; print $s "$ARGV[1]\n"; upto(); $b =~ s/\e\[[0-9;]*[A-Za-z]//g; $b =~ s/\r//g; print $b' "$@"
}
# mon SOCKET COMMAND: kvmrun's monitor
mon() {
  perl -MIO::Socket::UNIX -e '
    my $s = IO::Socket::UNIX->new(Peer => shift @ARGV) or exit 1;
    for my $c (@ARGV) { print $s "$c\n"; while (<$s>) { print; last if /^(OK|ERR)/ } }' "$@"
}
wait_file() { # FILE PATTERN SECONDS
  local i
  for i in $(seq $((${3} * 20))); do grep -q "$2" "$1" 2> /dev/null && return 0; sleep 0.05; done
  return 1
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
qemu_args() { # MEM SMP APPEND SOCK SERIAL: the arguments into QA
  QA=(-M pc -accel kvm -m "$1" -smp "$2" -kernel $K -append "$3" -nodefaults -display none
    -device isa-debug-exit,iobase=0xf4,iosize=4 -serial "file:$5" -monitor "unix:$4,server=on,wait=off")
}

# qemu_migrate APPEND LIMIT_S: one QEMU migration; prints "total downtime bytes" or "none"
qemu_migrate() {
  local p=$((port++))
  qemu_args 128 1 "$1" "$tmp/qd.sock" "$tmp/qd.serial"
  $QEMU "${QA[@]}" -incoming "tcp:127.0.0.1:$p" 2> /dev/null &
  local dpid=$!; pids+=("$dpid")
  rm -f "$tmp/qs.serial"
  qemu_args 128 1 "$1" "$tmp/qs.sock" "$tmp/qs.serial"
  $QEMU "${QA[@]}" 2> /dev/null &
  local spid=$!; pids+=("$spid")
  wait_file "$tmp/qs.serial" "^migtest:" 60 || { echo none; kill -9 $spid $dpid; return; }
  sleep 1
  hmp "$tmp/qs.sock" "migrate -d tcp:127.0.0.1:$p" > /dev/null
  local end i info=""
  end=$(perl -e "print time + $2")
  while [ "$(date +%s)" -lt "$end" ]; do
    info=$(hmp "$tmp/qs.sock" "info migrate")
    echo "$info" | grep -qE "Migration status: (completed|failed)" && break
    sleep 0.02
  done
  if echo "$info" | grep -q "Migration status: completed"; then
    local t d kb
    t=$(echo "$info" | sed -n 's/^total time: \([0-9]*\) ms.*/\1/p')
    d=$(echo "$info" | sed -n 's/^downtime: \([0-9]*\) ms.*/\1/p')
    kb=$(echo "$info" | sed -n 's/^transferred ram: \([0-9]*\) kbytes.*/\1/p')
    echo "$t $d $((kb * 1024))"
  else
    echo none
  fi
  kill -9 $spid $dpid 2> /dev/null; wait $spid $dpid 2> /dev/null
  rm -f "$tmp"/q?.serial
}

# kvmrun_migrate APPEND [SOURCE OPTIONS...]: one kvmrun migration; prints "total downtime
# bytes downtime-until-the-last-byte throttled"
kvmrun_migrate() {
  local p=$((port++)) app=$1; shift
  $KVMRUN -m 128 -incoming "tcp:127.0.0.1:$p" > /dev/null 2>&1 &
  local dpid=$!; pids+=("$dpid")
  $KVMRUN -m 128 -append "$app" "$@" -monitor "unix:$tmp/ks.sock" $K > "$tmp/ks.out" 2> "$tmp/ks.err" &
  local spid=$!; pids+=("$spid")
  wait_file "$tmp/ks.out" "^migtest:" 10 || { echo none; kill -9 $spid $dpid; return; }
  sleep 1
  mon "$tmp/ks.sock" "migrate tcp:127.0.0.1:$p" > /dev/null
  wait $spid
  local line
  line=$(grep "^migration:" "$tmp/ks.err")
  kill -9 $dpid 2> /dev/null; wait $dpid 2> /dev/null
  echo "$line" | sed -n 's/^migration: completed in \([0-9]*\) ms, downtime \([0-9.]*\) ms, \([0-9]*\) bytes sent (\([0-9.]*\) ms.*/\1 \2 \3 \4/p' |
    sed "s/\$/ $(echo "$line" | grep -q throttling && echo throttled || echo -)/"
  echo "$line" | grep -q completed || echo none
  rm -f "$tmp/ks.out"
}

report() { # NAME FILE: medians of "total downtime bytes [downtime-to-last-byte]"
  local name=$1 f=$2 n d4
  n=$(grep -vc none "$f")
  if [ "$n" -eq 0 ]; then printf "%-44s did not complete (%s runs)\n" "$name" "$(wc -l < "$f")"; return; fi
  d4=$(grep -v none "$f" | awk 'NF >= 4 { print $4 }' | median)
  printf "%-44s total %6s ms  downtime %6s ms%s  sent %10s bytes  (median of %d%s)\n" "$name" \
    "$(grep -v none "$f" | cut -d' ' -f1 | median)" "$(grep -v none "$f" | cut -d' ' -f2 | median)" \
    "$([ "$d4" != "-" ] && echo " ($d4 ms to the last byte)")" \
    "$(grep -v none "$f" | cut -d' ' -f3 | median)" "$n" "$(grep -q throttled "$f" && echo ', converged by throttling')"
}

# The largest dirty ring this host's KVM takes per vcpu (KVM_CHECK_EXTENSION of
# KVM_CAP_DIRTY_LOG_RING_ACQ_REL, else KVM_CAP_DIRTY_LOG_RING); 0: none.
RING=$(perl -e 'open(my $k, "+<", "/dev/kvm") or die; for my $cap (223, 192) {
  my $r = ioctl($k, 0xAE03, $cap); if ($r) { $r += 0; if ($r > 0) { print $r; exit } } } print 0')

echo "bench-migrate, $(date -u '+%F %H:%M UTC'), Linux $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $($QEMU --version | head -1)"
: > "$tmp/k.heavy"; : > "$tmp/r.heavy"; : > "$tmp/q.heavy"; : > "$tmp/k.hot"; : > "$tmp/r.hot"; : > "$tmp/q.hot"
for r in $(seq "$RUNS"); do
  kvmrun_migrate "$HEAVY" >> "$tmp/k.heavy"
  [ "$RING" -gt 0 ] && kvmrun_migrate "$HEAVY" -dirty-ring "$RING" >> "$tmp/r.heavy"
  qemu_migrate "$HEAVY" 30 >> "$tmp/q.heavy"
done
report "memory-heavy guest, 128 MiB, kvmrun" "$tmp/k.heavy"
[ "$RING" -gt 0 ] && report "memory-heavy guest, kvmrun -dirty-ring $RING" "$tmp/r.heavy"
report "memory-heavy guest, 128 MiB, QEMU 7.2" "$tmp/q.heavy"
for r in $(seq "$RUNS"); do
  kvmrun_migrate "$HOT" >> "$tmp/k.hot"
  [ "$RING" -gt 0 ] && kvmrun_migrate "$HOT" -dirty-ring "$RING" >> "$tmp/r.hot"
done
report "hot guest (100 MiB at native speed), kvmrun" "$tmp/k.hot"
[ "$RING" -gt 0 ] && report "hot guest, kvmrun -dirty-ring $RING" "$tmp/r.hot"
[ "$RING" -gt 0 ] || echo "kvmrun -dirty-ring: this host's KVM has no dirty ring (not measured)"
for r in $(seq "${BENCH_QEMU_HOT_RUNS:-1}"); do qemu_migrate "$HOT" 30 >> "$tmp/q.hot"; done
report "hot guest, QEMU 7.2 defaults, 30 s limit" "$tmp/q.hot"

# ---- restore: 2 vcpus, 512 MiB -------------------------------------------------------------
RA="cpus=2 kb=8192 passes=100000000"
$KVMRUN -m 512 -smp 2 -t 3 -append "$RA" -snapshot-at 1.5 "$tmp/snap" $K > /dev/null 2>&1
: > "$tmp/k.restore"
for r in $(seq "$RUNS"); do
  stamped $KVMRUN -v -t 0.3 -restore "$tmp/snap" > /dev/null 2> "$tmp/kr.err"
  t0=$(sed -n 's/^start \([0-9.]*\)/\1/p' "$tmp/kr.err")
  t1=$(sed -n 's/.*the guest starts at CLOCK_MONOTONIC \([0-9.]*\).*/\1/p' "$tmp/kr.err")
  [ -n "$t0" ] && [ -n "$t1" ] && perl -e "printf \"%.2f\n\", ($t1 - $t0) * 1000" >> "$tmp/k.restore"
done
printf "%-44s %s ms to the guest's first instruction (median of %d; %s)\n" "restore 2 vcpus, 512 MiB, kvmrun" \
  "$(median < "$tmp/k.restore")" "$(wc -l < "$tmp/k.restore")" "$(tr '\n' ' ' < "$tmp/k.restore")"
# QEMU: migrate "exec:cat > FILE" of the same guest, then -incoming "exec:cat FILE"
qemu_args 512 2 "$RA" "$tmp/qs.sock" "$tmp/qs.serial"
$QEMU "${QA[@]}" 2> /dev/null &
spid=$!; pids+=("$spid")
if wait_file "$tmp/qs.serial" "^migtest:" 60; then
  sleep 1
  hmp "$tmp/qs.sock" "migrate \"exec:cat > $tmp/qemu.img\"" > /dev/null
  for i in $(seq 600); do hmp "$tmp/qs.sock" "info migrate" | grep -q "status: completed" && break; sleep 0.05; done
  kill -9 $spid; wait $spid 2> /dev/null
  : > "$tmp/q.restore"
  for r in $(seq "$RUNS"); do
    t0=$(now)
    qemu_args 512 2 "$RA" "$tmp/qr.sock" "$tmp/qr.serial"
    $QEMU "${QA[@]}" -incoming "exec:cat $tmp/qemu.img" 2> /dev/null &
    qpid=$!; pids+=("$qpid")
    for i in $(seq 2000); do
      hmp "$tmp/qr.sock" "info status" 2> /dev/null | grep -q "VM status: running" && break
      sleep 0.002
    done
    t1=$(now)
    perl -e "printf \"%.2f\n\", ($t1 - $t0) * 1000" >> "$tmp/q.restore"
    kill -9 $qpid; wait $qpid 2> /dev/null
  done
  printf "%-44s %s ms to 'VM status: running' (median of %d; %s; image %s bytes)\n" "restore 2 vcpus, 512 MiB, QEMU 7.2" \
    "$(median < "$tmp/q.restore")" "$(wc -l < "$tmp/q.restore")" "$(tr '\n' ' ' < "$tmp/q.restore")" "$(stat -c %s "$tmp/qemu.img")"
else
  echo "restore 2 vcpus, 512 MiB, QEMU 7.2: the guest did not boot"
fi
