# ---- benchmarks (BENCHMARKS.md) -----------------------------------------------------

# In the order `make bench` runs them; bench/bench.h says how they measure.
BENCHES := exit regs kick create dirty_log memory dirty_ring stats restore
BENCH_BINS := $(patsubst %,$(B)/bench/%,$(BENCHES))
# Benchmarks of functions that may not be in this build yet are compiled in only when the
# header declares them.
BENCH_HAVE := $(foreach f,kvm_kick_vcpu kvm_get_dirty_log,$(if $(shell grep -sw '$(f)' include/libkvm.h),-DHAVE_$(shell echo $(f) | tr a-z A-Z)))
BENCH_CFLAGS = $(HOST_CFLAGS) -Iinclude -Ibench -Ic-tests -pthread $(BENCH_HAVE)

$(B)/bench/common.o: bench/common.c bench/bench.h c-tests/control_regs64.h include/libkvm.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -c -o $@ $<

$(B)/bench/guests.o: bench/guests.S c-tests/guest.h
	@mkdir -p $(dir $@)
	$(CC) -c -Ic-tests -o $@ $<

$(B)/bench/%: bench/%.c $(B)/bench/common.o $(B)/bench/guests.o bench/bench.h include/libkvm.h $(SO)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(B)/bench/common.o $(B)/bench/guests.o $(TEST_LDFLAGS)

bench: all $(BENCH_BINS)
	@echo "libkvm benchmarks, $$(date -u '+%F %H:%M UTC'), Linux $$(uname -r), $$(nproc) CPUs, load $$(cut -d' ' -f1-3 /proc/loadavg)"
	@for b in $(BENCHES); do $(B)/bench/$$b || exit 1; done


# Live migration and restore, kvmrun beside QEMU 7.2 (bench/migrate.sh; installs QEMU 7.2
# or prints the command). Not part of `make bench` or `make check`: it runs for minutes.
.PHONY: bench-migrate
bench-migrate: all $(B)/c-tests/kernels/migrate.elf
	bash bench/migrate.sh
