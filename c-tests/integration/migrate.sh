# kvmrun moves a running guest: live migration over unix: and tcp:127.0.0.1 (and file:)
# at several moments, on 1 and 4 vcpus, with the dirty bitmap and with the dirty ring
# (-dirty-ring, where the host has it); snapshot + -restore (twice from one snapshot; of a
# large snapshot, reading only what the guest touches: /proc/PID/smaps);
# the monitor; every injected failure (the destination dies, the connection drops, a
# checksum fails: the source's guest finishes with the right result); auto-converge of a
# guest that dirties faster than a capped link drains; bad input
# (truncated, bit-flipped, foreign streams and snapshots, a wrong-shape destination, an
# unreachable URI) with the statuses kvmrun(1) documents. The test kernel
# (c-tests/kernels/migrate.c) rewrites memory with a running checksum; every migrated or
# restored run must print exactly the result line of an unmigrated run.
set -u
cd "$(dirname "$0")/../.."
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then echo "SKIP: /dev/kvm is not usable here"; exit 77; fi
KERNEL=build/c-tests/kernels/migrate.elf
KVMRUN=build/kvmrun
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
failed=0 passed=0
port=$((20000 + $$ % 20000))
TO="timeout -k 5 30"

ok() { passed=$((passed + 1)); echo "ok $1"; }
bad() {
  failed=$((failed + 1)); echo "FAIL $1"
  for f in src.out src.err dst.out dst.err; do [ -s "$tmp/$f" ] && sed "s/^/  $f: /" "$tmp/$f" | tail -n 8; done
}
result() { grep '^migtest: cpus' "$1" 2> /dev/null; }

# The unmigrated runs' results.
args1=(-t 20 -append "passes=50")
args4=(-t 20 -smp 4 -append "cpus=4 kb=512 passes=50")
$TO $KVMRUN "${args1[@]}" $KERNEL > "$tmp/ref1" 2>&1
ref1=$(result "$tmp/ref1")
$TO $KVMRUN "${args4[@]}" $KERNEL > "$tmp/ref4" 2>&1
ref4=$(result "$tmp/ref4")
if [ -z "$ref1" ] || [ -z "$ref4" ] || ! grep -q "timer ok" "$tmp/ref1"; then
  echo "FAIL the unmigrated runs give no result"; cat "$tmp/ref1" "$tmp/ref4"; exit 1
fi
echo "reference results: $ref1 / $ref4"

# wait_listen URI: until the destination listens there (at most 10 s).
wait_listen() {
  local i
  for i in $(seq 100); do
    case $1 in
      unix:*) [ -S "${1#unix:}" ] && return 0 ;;
      tcp:*) grep -qi ":$(printf %04X "${1##*:}") 00000000:0000 0A" /proc/net/tcp && return 0 ;;
    esac
    sleep 0.1
  done
  return 1
}

# start_dest URI ARGS...: a destination in the background; its pid in $dpid.
start_dest() {
  local uri=$1; shift
  rm -f "${uri#unix:}" 2> /dev/null
  $TO $KVMRUN "$@" -incoming "$uri" > "$tmp/dst.out" 2> "$tmp/dst.err" &
  dpid=$!; pids+=("$dpid")
  wait_listen "$uri" || echo "  (the destination does not listen on $uri)"
}

# migrate NAME REF URI AT SRCARGS... -- DSTARGS...: the destination ends with the
# unmigrated result (status 1); the source says "migration: completed" and exits 0.
migrate() {
  local name=$1 ref=$2 uri=$3 at=$4 src=() dst=()
  shift 4
  while [ "$1" != "--" ]; do src+=("$1"); shift; done
  shift; dst=("$@")
  start_dest "$uri" "${dst[@]}"
  local kernel=$KERNEL
  [[ " ${src[*]} " == *" -restore "* ]] && kernel=
  $TO $KVMRUN "${src[@]}" -migrate-at "$at" "$uri" $kernel > "$tmp/src.out" 2> "$tmp/src.err"
  local sst=$?
  wait "$dpid"; local dst_st=$?
  if [ $sst -eq 0 ] && [ $dst_st -eq 1 ] && [ "$(result "$tmp/dst.out")" = "$ref" ] &&
     grep -q "timer ok" "$tmp/dst.out" && grep -q "^migration: completed in [0-9]* ms, downtime [0-9.]* ms, [0-9]* bytes sent" "$tmp/src.err"; then
    ok "$name: $(grep -o 'completed in.*' "$tmp/src.err")"
  else
    bad "$name: source status $sst (want 0), destination $dst_st (want 1), result '$(result "$tmp/dst.out")'"
  fi
}

# ---- live migration -----------------------------------------------------------------------
for at in 0.05 0.2 0.35; do
  migrate "unix:, 1 vcpu, at ${at}s" "$ref1" "unix:$tmp/m.sock" $at "${args1[@]}" -- -t 20
done
migrate "tcp:127.0.0.1, 1 vcpu, at 0.15s" "$ref1" "tcp:127.0.0.1:$port" 0.15 "${args1[@]}" -- -t 20
for at in 0.1 0.3; do
  migrate "unix:, 4 vcpus, at ${at}s" "$ref4" "unix:$tmp/m.sock" $at "${args4[@]}" -- -t 20 -smp 4
done
migrate "tcp:127.0.0.1, 4 vcpus, at 0.2s" "$ref4" "tcp:127.0.0.1:$((port + 1))" 0.2 "${args4[@]}" -- -t 20 -smp 4
migrate "unix:, 1 vcpu, -downtime 0" "$ref1" "unix:$tmp/m.sock" 0.2 "${args1[@]}" -downtime 0 -- -t 20

# A guest that dirties faster than a 40 MiB/s link drains: throttled until it converges.
argsh=(-t 30 -append "kb=4096 passes=3000 nowait")
$TO $KVMRUN "${argsh[@]}" $KERNEL > "$tmp/refh" 2>&1
migrate "hot guest over a 40 MiB/s link: auto-converge" "$(result "$tmp/refh")" "unix:$tmp/m.sock" 0.2 \
  "${argsh[@]}" -max-bandwidth 40 -downtime 50 -- -t 30
grep -q "converged by throttling" "$tmp/src.err" && ok "the hot guest converged by throttling, and the source says so" ||
  bad "the hot guest converged without throttling: $(cat "$tmp/src.err")"

# file: the stream into a file, then -incoming file: (used below for the bad streams)
$TO $KVMRUN "${args1[@]}" -migrate-at 0.2 "file:$tmp/stream" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err"
st=$?
$TO $KVMRUN -t 20 -incoming "file:$tmp/stream" > "$tmp/dst.out" 2> "$tmp/dst.err"
dst_st=$?
if [ $st -eq 0 ] && [ $dst_st -eq 1 ] && [ "$(result "$tmp/dst.out")" = "$ref1" ]; then ok "file: stream written, then -incoming file: finishes it"
else bad "file: source $st (want 0), -incoming file: $dst_st (want 1)"; fi

# ---- the dirty ring (-dirty-ring) ------------------------------------------------------------
# What the host's KVM takes (KVM_CHECK_EXTENSION, 0xAE03, on /dev/kvm): the largest ring
# per vcpu, KVM_CAP_DIRTY_LOG_RING_ACQ_REL (223), else KVM_CAP_DIRTY_LOG_RING (192); 0: none.
ring_max=$(perl -e 'open(my $k, "+<", "/dev/kvm") or die; for my $cap (223, 192) {
  my $r = ioctl($k, 0xAE03, $cap); if ($r) { $r += 0; if ($r > 0) { print $r; exit } } } print 0')
if [ "$ring_max" -gt 0 ]; then
  ring_line="dirty ring of 65536 bytes per vcpu"
  migrate "-dirty-ring, unix:, 1 vcpu, at 0.2s" "$ref1" "unix:$tmp/m.sock" 0.2 "${args1[@]}" -dirty-ring 65536 -- -t 20
  grep -q "rounds, $ring_line)" "$tmp/src.err" && ok "-dirty-ring: the source says it used the ring" ||
    bad "-dirty-ring: the source does not say '$ring_line'"
  migrate "-dirty-ring, tcp:127.0.0.1, 1 vcpu, at 0.1s" "$ref1" "tcp:127.0.0.1:$((port + 2))" 0.1 "${args1[@]}" -dirty-ring 65536 -- -t 20
  # -dirty-ring on the destination too, of another size
  migrate "-dirty-ring, unix:, 4 vcpus, at 0.2s (the destination -dirty-ring $ring_max)" "$ref4" "unix:$tmp/m.sock" 0.2 \
    "${args4[@]}" -dirty-ring 65536 -- -t 20 -smp 4 -dirty-ring "$ring_max"
  migrate "-dirty-ring, tcp:127.0.0.1, 4 vcpus, at 0.1s" "$ref4" "tcp:127.0.0.1:$((port + 3))" 0.1 "${args4[@]}" -dirty-ring 4096 -- -t 20 -smp 4
  # The destination takes the source's ring without -dirty-ring, and migrates on with it:
  # kvm_restore_vm on the second destination takes only a VM with the ring on.
  rm -f "$tmp/m2.sock"
  $TO $KVMRUN -t 20 -incoming "unix:$tmp/m2.sock" > "$tmp/dst2.out" 2> "$tmp/dst2.err" &
  d2pid=$!; pids+=("$d2pid")
  wait_listen "unix:$tmp/m2.sock"
  start_dest "unix:$tmp/m.sock" -t 20 -migrate-at 0.1 "unix:$tmp/m2.sock"
  $TO $KVMRUN "${args1[@]}" -dirty-ring 65536 -migrate-at 0.1 "unix:$tmp/m.sock" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err"
  sst=$?; wait "$dpid"; dst_st=$?; wait "$d2pid"; st=$?
  if [ $sst -eq 0 ] && [ $dst_st -eq 0 ] && [ $st -eq 1 ] && [ "$(result "$tmp/dst2.out")" = "$ref1" ] &&
     grep -q "rounds, $ring_line)" "$tmp/dst.err"; then
    ok "-dirty-ring, migrated twice: the destination took the source's ring and moved the guest on with it"
  else
    bad "-dirty-ring, migrated twice: source $sst, first destination $dst_st (want 0), second $st (want 1), result '$(result "$tmp/dst2.out")'"
  fi
  # A destination with -dirty-ring for a source with the bitmap: refused before anything runs.
  rm -f "$tmp/m.sock"
  start_dest "unix:$tmp/m.sock" -t 20 -dirty-ring 65536
  $TO $KVMRUN "${args1[@]}" -migrate-at 0.2 "unix:$tmp/m.sock" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err"
  sst=$?; wait "$dpid"; dst_st=$?
  if [ $sst -eq 1 ] && [ $dst_st -eq 20 ] && [ "$(result "$tmp/src.out")" = "$ref1" ] && ! grep -q "^migtest: cpus" "$tmp/dst.out" &&
     grep -q "refused the stream: -dirty-ring: the stream's machine uses the dirty bitmap" "$tmp/src.err"; then
    ok "a -dirty-ring destination for a bitmap source: refused (20), the source finishes right"
  else bad "a -dirty-ring destination for a bitmap source: source $sst (want 1), destination $dst_st (want 20)"; fi
else
  echo "dirty ring: this host's KVM has none (KVM_CAP_DIRTY_LOG_RING 0)" >> "${LIBKVM_TEST_SKIPS:-/dev/null}"
  echo "SKIP the -dirty-ring migrations: this host's KVM has no dirty ring"
  $TO $KVMRUN -dirty-ring 65536 "${args1[@]}" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err"
  st=$?
  if [ $st -eq 6 ] && grep -q "has no dirty ring" "$tmp/src.err"; then ok "-dirty-ring on a host without the ring: status 6"
  else bad "-dirty-ring on a host without the ring: status $st, want 6 and 'has no dirty ring'"; fi
fi

# ---- the monitor --------------------------------------------------------------------------
# mon SOCKET COMMAND...: each command's answer, up to its OK/ERR line.
mon() {
  perl -MIO::Socket::UNIX -e '
    my $s = IO::Socket::UNIX->new(Peer => shift @ARGV) or die "connect: $!\n";
    for my $c (@ARGV) { print $s "$c\n"; while (<$s>) { print; last if /^(OK|ERR)/ } }' "$@"
}
start_dest "unix:$tmp/m.sock" -t 20
$TO $KVMRUN "${args1[@]}" -append "passes=80" -monitor "unix:$tmp/mon.sock" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err" &
spid=$!; pids+=("$spid")
wait_listen "unix:$tmp/mon.sock"
mon "$tmp/mon.sock" "info migrate" "stop" "info status" "cont" "info status" "bogus" "migrate unix:$tmp/m.sock" > "$tmp/mon.out" 2>&1
for i in $(seq 50); do
  mon "$tmp/mon.sock" "info migrate" > "$tmp/mon.info" 2>&1 || break
  grep -q "status: completed" "$tmp/mon.info" && break
  sleep 0.05
done
wait "$spid"; sst=$?
wait "$dpid"; dst_st=$?
$TO $KVMRUN -t 20 -append "passes=80" $KERNEL > "$tmp/ref80" 2>&1
if grep -q "status: none" "$tmp/mon.out" && grep -q "status: paused" "$tmp/mon.out" && grep -q "status: running" "$tmp/mon.out" &&
   grep -q "ERR unknown command 'bogus'" "$tmp/mon.out" && [ $sst -eq 0 ] && [ $dst_st -eq 1 ] &&
   [ "$(result "$tmp/dst.out")" = "$(result "$tmp/ref80")" ]; then
  ok "monitor: info migrate, stop, cont, info status, migrate (source $sst, destination $dst_st)"
else
  bad "monitor: source $sst, destination $dst_st"; sed 's/^/  monitor: /' "$tmp/mon.out"
fi
if grep -q "status: completed" "$tmp/mon.info"; then
  for f in "total time" downtime setup "bytes sent" "pages sent" rounds "dirty rate"; do
    grep -q "^$f: " "$tmp/mon.info" || bad "info migrate has no '$f'"
  done
  ok "monitor: info migrate during and after the migration ($(tr '\n' ' ' < "$tmp/mon.info" | cut -c1-120))"
else
  # the source may exit before a last poll sees "completed": the stderr line says it
  grep -q "^migration: completed" "$tmp/src.err" && ok "monitor: the migration completed (source gone before the last info)" ||
    bad "monitor: no completed migration"
fi

# ---- snapshot and -restore --------------------------------------------------------------------
# restore NAME REF DIR ARGS...: kvmrun -restore DIR ARGS ends with REF.
restore() {
  local name=$1 ref=$2 dir=$3; shift 3
  $TO $KVMRUN -t 20 -restore "$dir" "$@" > "$tmp/dst.out" 2> "$tmp/dst.err"
  local st=$?
  if [ $st -eq 1 ] && [ "$(result "$tmp/dst.out")" = "$ref" ] && grep -q "timer ok" "$tmp/dst.out"; then ok "$name"
  else bad "$name: status $st (want 1), result '$(result "$tmp/dst.out")'"; fi
}
$TO $KVMRUN "${args1[@]}" -snapshot-at 0.25 "$tmp/snap1" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err"
st=$?
if [ $st -eq 1 ] && [ "$(result "$tmp/src.out")" = "$ref1" ] && grep -q "^snapshot: saved" "$tmp/src.err"; then
  ok "-snapshot-at: the guest runs on to the right result"
else bad "-snapshot-at: status $st"; fi
restore "-restore, 1 vcpu" "$ref1" "$tmp/snap1"
restore "-restore, 1 vcpu, the same snapshot again" "$ref1" "$tmp/snap1"
restore "-restore with -m and -smp that agree" "$ref1" "$tmp/snap1" -m 128 -smp 1
$TO $KVMRUN "${args4[@]}" -snapshot-at 0.25 "$tmp/snap4" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err"
restore "-restore, 4 vcpus" "$ref4" "$tmp/snap4"
restore "-restore, 4 vcpus, again" "$ref4" "$tmp/snap4"
# a restored guest (its RAM the snapshot's file, MAP_PRIVATE) moves on, and snapshots again
migrate "a restored guest, live-migrated" "$ref4" "unix:$tmp/m.sock" 0.05 -t 20 -restore "$tmp/snap4" -- -t 20 -smp 4
$TO $KVMRUN -t 20 -restore "$tmp/snap1" -snapshot-at 0.05 "$tmp/snap1b" > "$tmp/src.out" 2> "$tmp/src.err"
restore "a snapshot of a restored guest, restored" "$ref1" "$tmp/snap1b"
# a snapshot through the monitor, of a stopped guest
$TO $KVMRUN "${args1[@]}" -monitor "unix:$tmp/mon2.sock" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err" &
spid=$!; pids+=("$spid")
wait_listen "unix:$tmp/mon2.sock"
sleep 0.2
mon "$tmp/mon2.sock" "snapshot /proc/none/snap" "stop" "snapshot $tmp/snapm" "cont" > "$tmp/mon.out" 2>&1
wait "$spid"; st=$?
if [ $st -eq 1 ] && grep -q "snapshot: saved" "$tmp/mon.out" && [ "$(result "$tmp/src.out")" = "$ref1" ] &&
   grep -q "^snapshot: failed: cannot create /proc/none/snap" "$tmp/mon.out" && grep -q "^ERR the snapshot failed" "$tmp/mon.out"; then
  ok "monitor: a snapshot that fails (ERR), stop, snapshot DIR, cont"
else bad "monitor snapshot: status $st"; sed 's/^/  monitor: /' "$tmp/mon.out"; fi
restore "-restore of the monitor's snapshot" "$ref1" "$tmp/snapm"
# the dirty ring: a snapshot records it, -restore takes it (any size; not the bitmap)
if [ "$ring_max" -gt 0 ]; then
  $TO $KVMRUN "${args1[@]}" -dirty-ring 65536 -snapshot-at 0.2 "$tmp/snapr" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err"
  restore "-restore of a -dirty-ring snapshot (the ring taken from it)" "$ref1" "$tmp/snapr"
  restore "-restore of a -dirty-ring snapshot with -dirty-ring 4096" "$ref1" "$tmp/snapr" -dirty-ring 4096
  migrate "a restored -dirty-ring guest, live-migrated" "$ref1" "unix:$tmp/m.sock" 0.05 -t 20 -restore "$tmp/snapr" -- -t 20
  grep -q "rounds, $ring_line)" "$tmp/src.err" && ok "the restored guest migrated with the snapshot's ring" ||
    bad "the restored guest did not migrate with the ring"
fi

# -restore reads only what the guest touches: a 256 MiB snapshot whose memory file is
# mostly data the restored guest never reads (192 MiB from 64 MiB on, written into the
# file after the snapshot); stopped (monitor) after running 0.1 s, the mapping of the
# memory file in /proc/PID/smaps has a small Rss, and so has the process. (The guest's
# result does not depend on its RAM size: ref1.)
$TO $KVMRUN "${args1[@]}" -m 256 -snapshot-at 0.1 "$tmp/snapb" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err"
perl -e '$b = "\x5a" x (1 << 20); print $b for 1 .. 192' | dd of="$tmp/snapb/memory" bs=1M seek=64 conv=notrunc status=none
$TO $KVMRUN -t 20 -restore "$tmp/snapb" -monitor "unix:$tmp/monb.sock" > "$tmp/dst.out" 2> "$tmp/dst.err" &
rpid=$!; pids+=("$rpid")
wait_listen "unix:$tmp/monb.sock"
sleep 0.1
mon "$tmp/monb.sock" "stop" "info status" > "$tmp/mon.out" 2>&1
kpid=$(cat "/proc/$rpid/task/$rpid/children" 2> /dev/null); kpid=${kpid%% *} # kvmrun, the child of timeout
# the mapping of DIR/memory: its Size, Rss and Private_Dirty (kB); then VmRSS (kB)
rss=$(perl -e 'my ($f, $pid) = @ARGV; my ($in, %v); open S, "<", "/proc/$pid/smaps" or die;
  while (<S>) { if (/^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s+(.*)$/) { $in = $1 eq $f; next }
    $v{$1} += $2 if $in && /^(Size|Rss|Private_Dirty):\s+(\d+) kB/ }
  open T, "<", "/proc/$pid/status" or die; my ($vm) = map { /^VmRSS:\s+(\d+)/ ? $1 : () } <T>;
  printf "%d %d %d %d\n", $v{Size} // 0, $v{Rss} // 0, $v{Private_Dirty} // 0, $vm // 0' "$tmp/snapb/memory" "${kpid:-none}")
mon "$tmp/monb.sock" "cont" >> "$tmp/mon.out" 2>&1
wait "$rpid"; st=$?
read -r msize mrss mdirty vmrss <<< "${rss:-0 0 0 0}"
if [ $st -eq 1 ] && [ "$(result "$tmp/dst.out")" = "$ref1" ] && grep -q "status: paused" "$tmp/mon.out" &&
   [ "$msize" -eq 262144 ] && [ "$mrss" -lt 16384 ] && [ "$vmrss" -lt 32768 ]; then
  ok "-restore of a 256 MiB snapshot reads what the guest touches: the memory file's mapping has Rss $mrss kB (Private_Dirty $mdirty kB) of $msize kB, the process VmRSS $vmrss kB"
else
  bad "-restore of a 256 MiB snapshot: status $st (want 1), mapping Size $msize kB (want 262144), Rss $mrss kB (want < 16384), VmRSS $vmrss kB (want < 32768)"
fi

# ---- injected failures: the source's guest finishes right -----------------------------------
# fail_case NAME SRC_FAULT DST_FAULT DST_STATUS WHY
fail_case() {
  local name=$1 sf=$2 df=$3 dwant=$4 why=$5
  rm -f "$tmp/m.sock"
  # (in a subshell that exits with its status: no "Killed" notice for the one that dies)
  (KVMRUN_FAULT=$df $TO $KVMRUN -t 20 -incoming "unix:$tmp/m.sock" > "$tmp/dst.out" 2> "$tmp/dst.err"; exit $?) 2> /dev/null &
  dpid=$!; pids+=("$dpid")
  wait_listen "unix:$tmp/m.sock"
  KVMRUN_FAULT=$sf $TO $KVMRUN "${args1[@]}" -migrate-at 0.2 "unix:$tmp/m.sock" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err"
  local sst=$?
  wait "$dpid"; local dst_st=$?
  if [ $sst -eq 1 ] && [ "$(result "$tmp/src.out")" = "$ref1" ] && grep -q "^migration: failed: .*$why" "$tmp/src.err" &&
     [ $dst_st -eq "$dwant" ] && ! grep -q "^migtest: cpus" "$tmp/dst.out"; then
    ok "$name: source finishes right (1), destination $dst_st, '$(grep -o 'failed: .*' "$tmp/src.err" | cut -c1-90)'"
  else
    bad "$name: source $sst (want 1), destination $dst_st (want $dwant)"
  fi
}
fail_case "the destination dies (SIGKILL) mid-stream" "" dest-die-after=300000 137 ""
fail_case "the destination drops the connection" "" dest-close-after=300000 22 ""
fail_case "the source's connection drops" close-after=350000 "" 22 ""
fail_case "a RAM section's checksum fails" corrupt-at=200000 "" 18 "checksum mismatch"
fail_case "the header's checksum fails" corrupt-at=12 "" 18 "header's checksum"
# after the vcpus stopped: the source resumes them
fail_case "a vcpu section's checksum fails (stop-and-copy)" corrupt-tag=CPU "" 18 "checksum mismatch"
fail_case "the VM section's checksum fails (stop-and-copy)" corrupt-tag=VM "" 18 "checksum mismatch"
# wrong shape: the destination has 2 vcpus; it refuses before anything runs
rm -f "$tmp/m.sock"
start_dest "unix:$tmp/m.sock" -t 20 -smp 2
$TO $KVMRUN "${args1[@]}" -migrate-at 0.2 "unix:$tmp/m.sock" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err"
sst=$?; wait "$dpid"; dst_st=$?
if [ $sst -eq 1 ] && [ $dst_st -eq 20 ] && [ "$(result "$tmp/src.out")" = "$ref1" ] &&
   grep -q "refused the stream: the stream is of a machine with 128 MiB of RAM and 1 vcpus" "$tmp/src.err"; then
  ok "wrong-shape destination: refused (20), the source says why and finishes right"
else bad "wrong-shape destination: source $sst (want 1), destination $dst_st (want 20)"; fi
# unreachable URIs
$TO $KVMRUN "${args1[@]}" -migrate-at 0.1 "unix:$tmp/nobody.sock" $KERNEL > "$tmp/src.out" 2> "$tmp/src.err"
st=$?
if [ $st -eq 1 ] && [ "$(result "$tmp/src.out")" = "$ref1" ] && grep -q "^migration: failed: cannot connect to unix:" "$tmp/src.err"; then
  ok "unreachable destination: the source says so and finishes right"
else bad "unreachable destination: status $st"; fi

# ---- bad input: documented statuses ------------------------------------------------------------
# expect NAME STATUS PATTERN ARGS...
expect() {
  local name=$1 want=$2 pat=$3; shift 3
  $TO $KVMRUN "$@" > "$tmp/dst.out" 2> "$tmp/dst.err"
  local st=$?
  if [ $st -eq "$want" ] && grep -qF -- "$pat" "$tmp/dst.err" && ! grep -q "^migtest" "$tmp/dst.out"; then ok "$name ($st)"
  else bad "$name: status $st, want $want and '$pat'"; fi
}
flip() { perl -e 'open F, "+<", $ARGV[0] or die; seek F, $ARGV[1], 0; read F, $b, 1; seek F, $ARGV[1], 0; print F chr(ord($b) ^ 1)' "$@"; }
# rewrite_header FILE OFFSET VALUE: a 32-bit header field, with the header checksum
# (CRC-32C) redone
rewrite_header() {
  perl -e '
    sub crc { my $c = 0xffffffff; for my $b (unpack "C*", shift) { $c ^= $b;
      for (1 .. 8) { $c = ($c & 1) ? (0x82f63b78 ^ ($c >> 1)) : ($c >> 1) } } $c ^ 0xffffffff }
    open F, "+<", $ARGV[0] or die; read F, $h, 32; substr($h, $ARGV[1], 4) = pack("V", $ARGV[2]);
    substr($h, 28, 4) = pack("V", crc(substr($h, 0, 28))); seek F, 0, 0; print F $h' "$@"
}
size=$(stat -c %s "$tmp/stream")
head -c $((size - 100)) "$tmp/stream" > "$tmp/s.trunc"
expect "truncated stream" 18 "the stream ends in section" -t 20 -incoming "file:$tmp/s.trunc"
head -c 20 "$tmp/stream" > "$tmp/s.short"
expect "stream cut in its header" 18 "the stream ends in the header" -t 20 -incoming "file:$tmp/s.short"
cp "$tmp/stream" "$tmp/s.flip"; flip "$tmp/s.flip" $((size / 2))
expect "bit-flipped stream" 18 "checksum mismatch" -t 20 -incoming "file:$tmp/s.flip"
cp "$tmp/stream" "$tmp/s.flip2"; flip "$tmp/s.flip2" $((size - 30))
expect "bit-flipped stream, in its last section" 18 "checksum mismatch" -t 20 -incoming "file:$tmp/s.flip2"
printf 'QEVM\0\0\0\3 this is not ours, it is long enough to be read as a header\n' > "$tmp/s.foreign"
expect "foreign stream" 20 "not a kvmrun migration stream" -t 20 -incoming "file:$tmp/s.foreign"
cp "$tmp/stream" "$tmp/s.v2"; rewrite_header "$tmp/s.v2" 8 3
expect "stream of another format version" 20 "stream format version 3" -t 20 -incoming "file:$tmp/s.v2"
cp "$tmp/stream" "$tmp/s.lib"; rewrite_header "$tmp/s.lib" 12 $((0x7f0000))
expect "stream of another libkvm" 20 "made with libkvm version 0x7f0000" -t 20 -incoming "file:$tmp/s.lib"
expect "wrong-shape destination (memory)" 20 "a machine with 128 MiB of RAM and 1 vcpus, this one has 256 MiB" -m 256 -t 20 -incoming "file:$tmp/stream"
expect "-incoming that cannot listen" 22 "cannot listen on unix:$tmp/none/x.sock" -t 20 -incoming "unix:$tmp/none/x.sock"
expect "-incoming on an address not here" 22 "cannot listen on tcp:192.0.2.1:" -t 20 -incoming "tcp:192.0.2.1:$port"
expect "-incoming file: missing" 18 "cannot open $tmp/none" -t 20 -incoming "file:$tmp/none"
expect "-incoming with a bad URI" 2 "a URI is tcp:HOST:PORT, unix:PATH or file:PATH" -incoming "pipe:x"
expect "-migrate-at with a bad URI" 2 "is not tcp:HOST:PORT" -migrate-at 1 tcp:nohost $KERNEL
expect "-monitor on a file" 2 "a control socket is" -monitor "file:$tmp/x" $KERNEL
expect "-downtime abc" 2 "is not a number of milliseconds" -downtime abc $KERNEL
expect "-dirty-ring 1000" 2 "is not a power of two" -dirty-ring 1000 $KERNEL
expect "-dirty-ring 2048" 2 "is not a power of two of 4096" -dirty-ring 2048 $KERNEL
if [ "$ring_max" -gt 0 ]; then
  expect "-dirty-ring above the host's maximum" 2 "this host's KVM takes at most $ring_max bytes per vcpu" -dirty-ring $((ring_max * 2)) $KERNEL
  expect "-restore of a bitmap snapshot with -dirty-ring" 2 "the snapshot's machine uses the dirty bitmap" -restore "$tmp/snap1" -dirty-ring 65536
fi
expect "-max-bandwidth 0" 2 "is not a number of MiB/s" -max-bandwidth 0 $KERNEL
# snapshot directories
cp -r "$tmp/snap1" "$tmp/sn.trunc"; s=$(stat -c %s "$tmp/sn.trunc/state"); truncate -s $((s - 10)) "$tmp/sn.trunc/state"
expect "truncated snapshot state" 18 "the stream ends in" -restore "$tmp/sn.trunc"
cp -r "$tmp/snap1" "$tmp/sn.flip"; flip "$tmp/sn.flip/state" $((s / 2))
expect "bit-flipped snapshot state" 18 "checksum mismatch" -restore "$tmp/sn.flip"
cp -r "$tmp/snap1" "$tmp/sn.mem"; truncate -s 64M "$tmp/sn.mem/memory"
expect "snapshot memory file of the wrong size" 18 "has 67108864 bytes, the machine 134217728" -restore "$tmp/sn.mem"
cp -r "$tmp/snap1" "$tmp/sn.nomem"; rm "$tmp/sn.nomem/memory"
expect "snapshot without its memory file" 18 "cannot open $tmp/sn.nomem/memory" -restore "$tmp/sn.nomem"
mkdir "$tmp/sn.foreign"; cp "$tmp/s.foreign" "$tmp/sn.foreign/state"
expect "foreign snapshot" 20 "not a kvmrun migration stream" -restore "$tmp/sn.foreign"
cp -r "$tmp/snap1" "$tmp/sn.v2"; rewrite_header "$tmp/sn.v2/state" 8 1
expect "snapshot of another format version" 20 "stream format version 1" -restore "$tmp/sn.v2"
expect "-restore of a directory that is not there" 18 "cannot open $tmp/none/state" -restore "$tmp/none"
expect "-restore with a contradicting -smp" 2 "-m and -smp must agree or be left out" -restore "$tmp/snap1" -smp 2
expect "-restore with a contradicting -m" 2 "-m and -smp must agree or be left out" -restore "$tmp/snap1" -m 64
expect "-restore with a kernel" 2 "-restore DIR takes the machine from DIR" -restore "$tmp/snap1" $KERNEL

echo "migrate: $passed passed, $failed failed"
[ $failed -eq 0 ]
