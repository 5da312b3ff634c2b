# The libFuzzer target (fuzz/fuzz_api.c) runs a fixed number of executions (FUZZ_CHECK_RUNS,
# default 15000, about 15 s here) with a fixed seed, starting from the committed seed corpus
# (fuzz/corpus, a -merge=1 minimised set), without a crash, a hang, a leak or a broken
# oracle. The run's inputs go to a scratch copy, so every make check fuzzes the same way;
# `make fuzz` runs it longer (FUZZ_SECONDS) and grows build/fuzz/corpus.
set -u
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not usable here"; exit 77; }
bin=build/fuzz/fuzz_api
[ -x "$bin" ] || { echo "$bin is missing: make fuzz-build"; exit 1; }
[ -n "$(ls fuzz/corpus 2>/dev/null)" ] || { echo "fuzz/corpus (the seed corpus) is empty"; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cp fuzz/corpus/* "$work"/
mkdir -p build/fuzz
log=build/fuzz/check.log
"$bin" -timeout=10 -max_len=1024 -print_final_stats=1 -seed=1 -runs="${FUZZ_CHECK_RUNS:-15000}" \
  "$work" > "$log" 2>&1
rc=$?
grep -E '^INFO: Loaded 1 modules|^INFO: seed corpus|DONE|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$log"
if [ $rc -ne 0 ]; then
  echo "fuzz_api failed (exit $rc); the end of $log:"
  tail -n 40 "$log"
fi
exit $rc
