# c-tests/: the C tests, their guest code and test kernels, the scripts, and the three
# ways `make check`, `make check-valgrind` and `make check-asan` run them (c-tests/README.md).

TEST_SRCS := $(filter-out c-tests/harness.c,$(wildcard c-tests/*.c))
# Behaviour scripts, then the integration runs (kvmrun, fuzzer, benchmarks), then the
# invariant checks (surface, header, ABI, man pages, layouts, packaging): matrix-man.sh
# reads the errnos that the C tests before it saw.
TEST_SCRIPTS := $(wildcard c-tests/*.sh) $(wildcard c-tests/integration/*.sh) $(wildcard c-tests/invariants/*.sh)
GUEST_OBJS := $(patsubst c-tests/guests/%.S,$(B)/c-tests/guests/%.o,$(wildcard c-tests/guests/*.S))

# ---- guest kernels: freestanding 32-bit multiboot ELF, built by the host gcc ---------
# (KERNEL_CFLAGS, KERNEL_LDFLAGS: the top-level Makefile; the demo kernel shares them.)

KTEST_LIB := $(patsubst c-tests/kernels/%,$(B)/c-tests/kernels/%.o,c-tests/kernels/entry.S c-tests/kernels/isr.S c-tests/kernels/lib.c)
KTESTS := $(patsubst c-tests/kernels/%.c,$(B)/c-tests/kernels/%.elf,$(filter-out c-tests/kernels/lib.c,$(wildcard c-tests/kernels/*.c))) \
	$(B)/c-tests/kernels/kludge.bin

# Keep the objects (make would delete them as intermediates of the pattern rules).
.SECONDARY: $(KTEST_LIB) $(patsubst %.elf,%.c.o,$(filter %.elf,$(KTESTS))) $(B)/c-tests/kernels/kludge.S.o

$(B)/c-tests/kernels/%.c.o: c-tests/kernels/%.c c-tests/kernels/lib.h
	@mkdir -p $(dir $@)
	$(CC) $(KERNEL_CFLAGS) -c -o $@ $<

$(B)/c-tests/kernels/%.S.o: c-tests/kernels/%.S
	@mkdir -p $(dir $@)
	$(CC) $(KERNEL_CFLAGS) -c -o $@ $<

$(B)/c-tests/kernels/%.elf: $(B)/c-tests/kernels/%.c.o $(KTEST_LIB) c-tests/kernels/kernel.ld
	$(CC) $(KERNEL_LDFLAGS) -T c-tests/kernels/kernel.ld -o $@ $(KTEST_LIB) $<

# Not ELF: a flat image placed by the multiboot header's address fields.
$(B)/c-tests/kernels/kludge.bin: $(B)/c-tests/kernels/kludge.S.o
	$(CC) $(KERNEL_LDFLAGS) -Wl,-Ttext=0x200000 -Wl,-e,entry -Wl,--oformat=binary -o $@ $<

# ---- guest code ---------------------------------------------------------------------

$(B)/c-tests/guests/%.o: c-tests/guests/%.S c-tests/guest.h
	@mkdir -p $(dir $@)
	$(CC) -c -Ic-tests -o $@ $<

$(B)/c-tests/libguests.a: $(GUEST_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@; ar rcs $@ $^

# ---- C test binaries, one rule set for every flavour --------------------------------

TEST_CFLAGS = $(HOST_CFLAGS) -Iinclude -Ic-tests -pthread
TEST_LDFLAGS = $(LDFLAGS) -L$(B) -lkvm -Wl,-rpath,$(CURDIR)/$(B) -pthread

# test_flavour DIR,FLAGS: the harness and every C test built into DIR with FLAGS added to
# the compiler's (the guests are plain data and shared). The plain build, which make check
# and check-valgrind run, is $(B)/c-tests; check-asan's is $(B)/asan/c-tests.
define test_flavour
$(1)/harness.o: c-tests/harness.c c-tests/harness.h c-tests/control_regs64.h include/libkvm.h
	@mkdir -p $$(dir $$@)
	$$(CC) $$(TEST_CFLAGS) $(2) -c -o $$@ $$<

$(1)/%: c-tests/%.c $(1)/harness.o $(B)/c-tests/libguests.a c-tests/harness.h include/libkvm.h $$(SO)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(TEST_CFLAGS) $(2) -o $$@ $$< $(1)/harness.o $(B)/c-tests/libguests.a $$(TEST_LDFLAGS)
endef

# The library itself is not instrumented by ASan: -Zsanitizer=address needs a nightly
# compiler. LeakSanitizer still sees the library's allocations (Rust allocates through
# malloc).
ASAN_FLAGS := -fsanitize=address -fno-omit-frame-pointer

$(eval $(call test_flavour,$(B)/c-tests,))
$(eval $(call test_flavour,$(B)/asan/c-tests,$(ASAN_FLAGS)))

TEST_BINS := $(patsubst c-tests/%.c,$(B)/c-tests/%,$(TEST_SRCS))
ASAN_BINS := $(patsubst c-tests/%.c,$(B)/asan/c-tests/%,$(TEST_SRCS))

# What the tests run: the C tests, the test kernels, the demo kernel, hello, the benchmarks.
tests: all $(TEST_BINS) $(KTESTS) $(DEMO_KERNEL) $(HELLO) $(BENCH_BINS)

check-cargo:
	$(CARGO_ENV) $(CARGO) test --release --locked --quiet

# ---- the three runs -----------------------------------------------------------------

# Everything `make check` runs ends in one summary line from the runner. `tests` builds
# what the tests run, the benchmarks too (c-tests/integration/bench.sh only runs them): no test calls
# make to build something for itself (the install tests call make to test its install
# targets).
check: deps deps-valgrind tools all tests check-cargo fuzz-build
	@MAKE="$(MAKE)" CBINDGEN="$(CBINDGEN)" CC="$(CC)" CXX="$(CXX)" \
	  c-tests/run-tests $(TEST_BINS) $(TEST_SCRIPTS)

# Every C test under valgrind's memcheck: any error, or any byte definitely or possibly
# lost, fails the test (libkvm's users run valgrind with its defaults, which count
# possibly lost blocks: the registry keeps no interior-only pointers for that reason).
# c-tests/valgrind.supp says why each suppression is sound.
# strace (no_syscalls.c) is not run under valgrind: the program it traces must be the
# plain one, whose system calls it counts.
VALGRIND_FLAGS := --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,possible \
	--errors-for-leak-kinds=definite,possible --trace-children=yes --trace-children-skip=*/strace \
	--suppressions=$(CURDIR)/c-tests/valgrind.supp

check-valgrind: deps-valgrind all tests
	@mkdir -p $(B)/valgrind
	@LIBKVM_TEST_INSTRUMENTED=valgrind TEST_LOGS=$(B)/valgrind \
	  TEST_WRAPPER="valgrind $(VALGRIND_FLAGS)" c-tests/run-tests $(TEST_BINS)

check-asan: all $(ASAN_BINS)
	@LIBKVM_TEST_INSTRUMENTED=asan TEST_LOGS=$(B)/asan \
	  ASAN_OPTIONS=detect_leaks=1:exitcode=99 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/c-tests/lsan.supp:print_suppressions=0 \
	  c-tests/run-tests $(ASAN_BINS)

# ---- mutation check (c-tests/mutants, CONTRIBUTING.md) ------------------------------

# Applies each small break of src/ listed in c-tests/mutants/list, one at a time, to a
# scratch copy of the tree (build/mutants/tree, never the working tree), builds it and
# runs the suite on it; fails if the suite misses any. Names select mutants:
# `make check-mutants MUTANTS="kick-no-flag msr-count"`.
.PHONY: check-mutants
check-mutants: deps
	@MAKE="$(MAKE)" CC="$(CC)" CXX="$(CXX)" c-tests/mutants/run $(MUTANTS)
