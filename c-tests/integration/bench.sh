# Every benchmark (built by `make tests`, which `make check` runs first) runs one short round (figures not
# judged): a benchmark also checks what its guests did, so this catches a broken one.
set -eu
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not usable here"; exit 77; }
b=${B:-build}
# The benchmarks `make bench` runs, in its order: its list, not a copy of it.
benches=${BENCHES:-$(sed -n 's/^BENCHES := //p' mk/bench.mk)}
[ -n "$benches" ] || { echo "no BENCHES list in mk/bench.mk"; exit 1; }
out=""
for n in $benches; do
  [ -x "$b/bench/$n" ] || { echo "$b/bench/$n is missing: make tests builds it"; exit 1; }
  o=$(BENCH_ROUNDS=1 BENCH_SCALE=0.05 "$b/bench/$n" 2>&1) || { echo "$o" | tail -20; echo "benchmark $n failed"; exit 1; }
  out+="$o"$'\n'
done
printf '%s' "$out"
for n in 1 2 3 4 5 6 7 8; do
  echo "$out" | grep -q "^$n " || { echo "no figure for benchmark $n"; exit 1; }
done
