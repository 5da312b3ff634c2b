# `make bench` builds, and every benchmark runs (one short round each, figures not
# judged): a benchmark also checks what its guests did, so this catches a broken one.
set -eu
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not usable here"; exit 77; }
out=$(BENCH_ROUNDS=1 BENCH_SCALE=0.05 "${MAKE:-make}" --no-print-directory bench 2>&1) || {
  echo "$out" | tail -20; exit 1; }
echo "$out" | grep -v '^cc \|^cargo \|Finished'
for n in 1 2 3 4 5 6 7; do
  echo "$out" | grep -q "^$n " || { echo "no figure for benchmark $n"; exit 1; }
done
