# The libFuzzer target (fuzz/fuzz_api.c) runs for a short bounded time without a crash,
# a hang, a leak or a broken oracle; `make fuzz` runs it longer (FUZZ_SECONDS).
set -u
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not usable here"; exit 77; }
bin=build/fuzz/fuzz_api
[ -x "$bin" ] || { echo "$bin is missing: make fuzz-build"; exit 1; }
mkdir -p build/fuzz/corpus
log=build/fuzz/check.log
"$bin" -timeout=10 -max_len=1024 -print_final_stats=1 -max_total_time="${FUZZ_CHECK_SECONDS:-20}" \
  build/fuzz/corpus > "$log" 2>&1
rc=$?
grep -E '^INFO: Loaded 1 modules|DONE|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$log"
if [ $rc -ne 0 ]; then
  echo "fuzz_api failed (exit $rc); the end of $log:"
  tail -n 40 "$log"
fi
exit $rc
