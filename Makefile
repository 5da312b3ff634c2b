# libkvm: build, install and test. `make` builds the library, `make check` runs every
# test, `make demo` runs the demonstration. See README.md.

# The version has one source: Cargo.toml.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR := $(firstword $(subst ., ,$(VERSION)))

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
BINDIR ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=

CC ?= cc
CXX ?= c++
CARGO ?= cargo
RUSTC ?= rustc
# Tools, GNU style: each can be given on the command line (make's defaults give AR and LD).
INSTALL ?= install
INSTALL_PROGRAM ?= $(INSTALL)
INSTALL_DATA ?= $(INSTALL) -m 644
STRIP ?= strip
OBJCOPY ?= objcopy
LDCONFIG ?= ldconfig
# CFLAGS, CPPFLAGS and LDFLAGS are the user's (dpkg-buildflags gives them in a Debian
# build): they reach every host program built here (library link, kvmrun, tests,
# examples, benchmarks), last so that they win. The project's warnings are separate so
# that a CFLAGS given on the command line does not drop them; WERROR= turns the errors
# back into warnings (a distribution build with a newer compiler).
CFLAGS ?= -O2 -g
WERROR ?= -Werror
WARN_CFLAGS := -Wall -Wextra $(WERROR) -std=gnu11
HOST_CFLAGS = $(CPPFLAGS) $(WARN_CFLAGS) $(CFLAGS)

# What the Rust staticlib needs from the system: `rustc --print native-static-libs`
# (c-tests/static-archive.sh checks this list against it) without its -lgcc_s. The
# unwinder is the C compiler driver's business: a dynamic link gets libgcc_s (as needed),
# a -static link libgcc_eh; a -lgcc_s here made every -static link fail. The shared
# object links them, and libkvm.pc lists them in Libs.private for static users.
LIBS_PRIVATE := -lutil -lrt -lpthread -lm -ldl -lc

# Build paths are not recorded in the binaries (two builds in different directories are
# byte-identical; .ci/check-package.sh compares them): the source tree becomes
# /usr/src/libkvm-VERSION and the cargo home (registry sources) /cargo in file names
# and debug info. Every cargo call of this Makefile but the fuzzer's passes the same
# RUSTFLAGS, so that they share one build of the dependencies.
CARGO_HOME_DIR := $(or $(CARGO_HOME),$(HOME)/.cargo)
CARGO_ENV = RUSTFLAGS="$(strip $(RUSTFLAGS) --remap-path-prefix=$(CURDIR)=/usr/src/libkvm-$(VERSION) \
	--remap-path-prefix=$(CARGO_HOME_DIR)=/cargo)"

B := build
RUST_A := target/release/libkvm.a
SONAME := libkvm.so.$(MAJOR)
SO := $(B)/libkvm.so.$(VERSION)

# cbindgen, pinned: the committed header must be byte-identical to what it generates.
CBINDGEN_VERSION := 0.29.4
TOOLS := $(CURDIR)/.tools
CBINDGEN := $(shell v=$$(cbindgen --version 2>/dev/null); [ "$$v" = "cbindgen $(CBINDGEN_VERSION)" ] && command -v cbindgen || echo $(TOOLS)/bin/cbindgen)

# Debian packages the tests need beyond the Rust toolchain and gcc; the sanitizer and
# fuzzing targets need more (clang's libFuzzer runtime is libclang-rt-14-dev; make check
# runs the fuzzer briefly, so it needs them too).
APT_PACKAGES := pkg-config g++ binutils abigail-tools gcc-multilib groff-base man-db strace
VALGRIND_PACKAGES := valgrind
FUZZ_PACKAGES := clang libclang-rt-14-dev

MAN1 := $(wildcard man/man1/*.1)
MAN3 := $(wildcard man/man3/*.3)
MAN7 := $(wildcard man/man7/*.7)

TEST_SRCS := $(filter-out c-tests/harness.c,$(wildcard c-tests/*.c))
TEST_BINS := $(patsubst c-tests/%.c,$(B)/c-tests/%,$(TEST_SRCS))
TEST_SCRIPTS := $(wildcard c-tests/*.sh)
GUEST_OBJS := $(patsubst c-tests/guests/%.S,$(B)/c-tests/guests/%.o,$(wildcard c-tests/guests/*.S))

.PHONY: all cargo-build header check check-cargo tests install install-strip uninstall demo clean \
	deps tools abi-baseline check-valgrind check-asan fuzz fuzz-build fuzz-rust deps-valgrind \
	deps-fuzz deps-package check-package bench FORCE

all: $(SO) $(B)/$(SONAME) $(B)/libkvm.so $(B)/libkvm.a $(B)/libkvm.pc $(B)/kvmrun $(B)/inst/kvmrun

# Cargo decides what to rebuild; the phony prerequisite makes sure it is asked, and the
# empty recipe makes make look at the archive's time again afterwards (without one, the
# shared object was relinked only by the next make).
cargo-build:
	$(CARGO_ENV) $(CARGO) build --release --locked --lib

$(RUST_A): cargo-build ;

# A version script given to a Rust cdylib is ignored (lld) or refused (GNU ld), so the
# shared object is linked from the staticlib by the C toolchain. -z nodelete: the library
# installs a signal handler (the kick) that dlclose cannot take back, so once loaded it
# stays mapped; a later dlopen finds it again.
$(SO): $(RUST_A) src/libkvm.map
	@mkdir -p $(B)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -o $@ -Wl,--whole-archive $(RUST_A) -Wl,--no-whole-archive \
		-Wl,--version-script=src/libkvm.map -Wl,-soname,$(SONAME) \
		-Wl,-z,defs -Wl,-z,relro -Wl,-z,now -Wl,-z,nodelete -Wl,--gc-sections $(LIBS_PRIVATE)

$(B)/$(SONAME): $(SO)
	ln -sf libkvm.so.$(VERSION) $@

$(B)/libkvm.so: $(B)/$(SONAME)
	ln -sf $(SONAME) $@

# The exported functions, one a line, from the version script.
$(B)/exports: src/libkvm.map
	@mkdir -p $(B)
	sed -n 's/^[[:space:]]*\(kvm_[A-Za-z0-9_]*\);.*/\1/p' $< > $@

# The static archive: one relocatable object in which only the exports are global. Cargo's
# staticlib holds the whole Rust standard library (332 members, 32 MB, 2,500 global
# symbols, LLVM bitcode that other LLVM versions cannot read), so it is linked with
# ld -r from the exports down (--gc-sections), every other symbol made local, the
# bitcode sections and the symbols nothing refers to dropped; debug info only with
# STATIC_DEBUG=yes. What remains needs the C library and the unwinder.
STATIC_DEBUG ?= no
$(B)/libkvm.o: $(RUST_A) $(B)/exports $(B)/static-debug
	$(LD) -r --gc-sections --force-group-allocation $$(sed 's/^/--require-defined=/' $(B)/exports) \
		-o $@.tmp --whole-archive $(RUST_A) --no-whole-archive
	$(OBJCOPY) --remove-section=.llvmbc --remove-section=.llvmcmd --keep-global-symbols=$(B)/exports \
		$(if $(filter yes,$(STATIC_DEBUG)),--keep-section='.debug_*') --strip-unneeded $@.tmp $@
	rm -f $@.tmp

# Changes (and so remakes the archive) only when STATIC_DEBUG does.
$(B)/static-debug: FORCE
	@mkdir -p $(B)
	@echo '$(STATIC_DEBUG)' | cmp -s - $@ || echo '$(STATIC_DEBUG)' > $@

$(B)/libkvm.a: $(B)/libkvm.o
	rm -f $@
	$(AR) rcsD $@ $<

# libkvm.pc for the paths given now; `make install` writes its own for the install paths.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' pkgconfig/libkvm.pc.in

$(B)/libkvm.pc: pkgconfig/libkvm.pc.in Cargo.toml Makefile
	@mkdir -p $(B)
	$(PC_SED) > $@

# The same for the build tree, found by pkg-config in preference to libkvm.pc when
# PKG_CONFIG_PATH names $(B): what kvmrun is built with.
$(B)/libkvm-uninstalled.pc: pkgconfig/libkvm.pc.in Cargo.toml Makefile
	@mkdir -p $(B)
	sed -e 's|@PREFIX@|$(CURDIR)|' -e 's|@LIBDIR@|$(CURDIR)/$(B)|' -e 's|@INCLUDEDIR@|$(CURDIR)/include|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' pkgconfig/libkvm.pc.in > $@

# ---- kvmrun: a VMM in C on libkvm's public header only (examples/kvmrun, kvmrun(1)) ----

KVMRUN_SRCS := $(wildcard examples/kvmrun/*.c)
KVMRUN_HDRS := $(wildcard examples/kvmrun/*.h)
# libkvm's flags from pkg-config (the uninstalled .pc), or the same by hand without it.
KVM_FLAGS = $$(PKG_CONFIG_PATH=$(CURDIR)/$(B) pkg-config --cflags --libs libkvm 2>/dev/null || \
	echo -I$(CURDIR)/include -L$(CURDIR)/$(B) -lkvm)
KVMRUN_LINK = $(CC) $(HOST_CFLAGS) $(LDFLAGS) $(KVMRUN_SRCS) $(KVM_FLAGS) -pthread -lm
KVMRUN_DEPS := $(KVMRUN_SRCS) $(KVMRUN_HDRS) include/libkvm.h $(SO) $(B)/$(SONAME) $(B)/libkvm.so \
	$(B)/libkvm-uninstalled.pc

# The build tree's kvmrun finds the build tree's library (RUNPATH); the one `make install`
# installs has no RUNPATH: it finds libkvm where the dynamic linker looks, as any
# program of the system does (a RUNPATH to a system directory is a packaging error).
$(B)/kvmrun: $(KVMRUN_DEPS)
	$(KVMRUN_LINK) -o $@ -Wl,-rpath,$(CURDIR)/$(B)

$(B)/inst/kvmrun: $(KVMRUN_DEPS)
	@mkdir -p $(dir $@)
	$(KVMRUN_LINK) -o $@

# ---- guest kernels: freestanding 32-bit multiboot ELF, built by the host gcc ---------
# Only gcc's own freestanding headers (-nostdinc) and no libraries: no 32-bit libc needed.

KERNEL_CFLAGS := -m32 -march=i686 -O2 -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
	-fno-asynchronous-unwind-tables -mno-sse -mno-mmx -mno-80387 -nostdinc \
	-isystem $(shell $(CC) -print-file-name=include) -Wall -Wextra -Werror
KERNEL_LDFLAGS := -m32 -nostdlib -static -no-pie -Wl,--build-id=none -Wl,--no-warn-rwx-segments

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

# The kernel `make demo` boots (examples/demo-kernel).
DEMO_KERNEL := $(B)/examples/demo-kernel.elf
DEMO_KERNEL_OBJS := $(B)/examples/demo-kernel/start.o $(B)/examples/demo-kernel/demo.o
# The smallest libkvm program (examples/hello.c): built with the tests, run by hand.
HELLO := $(B)/examples/hello
HELLO_GUEST := $(B)/examples/hello-guest.o

$(B)/examples/demo-kernel/%.o: examples/demo-kernel/%.S
	@mkdir -p $(dir $@)
	$(CC) $(KERNEL_CFLAGS) -c -o $@ $<

$(B)/examples/demo-kernel/%.o: examples/demo-kernel/%.c
	@mkdir -p $(dir $@)
	$(CC) $(KERNEL_CFLAGS) -c -o $@ $<

$(DEMO_KERNEL): $(DEMO_KERNEL_OBJS) examples/demo-kernel/kernel.ld
	$(CC) $(KERNEL_LDFLAGS) -T examples/demo-kernel/kernel.ld -o $@ $(DEMO_KERNEL_OBJS)

# ---- tools the build needs beyond the toolchain, installed on first use --------------

tools: $(CBINDGEN)

$(TOOLS)/bin/cbindgen:
	$(CARGO) install --locked --quiet --root $(TOOLS) cbindgen@$(CBINDGEN_VERSION)

# Installs missing Debian packages when run as root, else names the command to run.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    (apt-get install -y -q $$missing || (apt-get update -q && apt-get install -y -q $$missing)) >/dev/null; \
	  else echo "missing packages; run: sudo apt-get install$$missing" >&2; exit 1; fi; \
	fi
endef

deps:
	$(call apt_install,$(APT_PACKAGES))

deps-valgrind:
	$(call apt_install,$(VALGRIND_PACKAGES))

deps-fuzz:
	$(call apt_install,$(FUZZ_PACKAGES))

# ---- header -------------------------------------------------------------------------

header: $(CBINDGEN)
	$(CBINDGEN) --quiet --config cbindgen.toml --crate libkvm --output include/libkvm.h

# ---- ABI baseline --------------------------------------------------------------------

# Records the ABI of the built library in abi/libkvm.abi (commit it); `make check`
# compares the library with it. Refuses changes to released version nodes: abi/abi.sh,
# CONTRIBUTING.md.
abi-baseline: deps all
	abi/abi.sh record

# ---- tests --------------------------------------------------------------------------

TEST_CFLAGS = $(HOST_CFLAGS) -Iinclude -Ic-tests -pthread
TEST_LDFLAGS = $(LDFLAGS) -L$(B) -lkvm -Wl,-rpath,$(CURDIR)/$(B) -pthread

$(B)/c-tests/guests/%.o: c-tests/guests/%.S c-tests/guest.h
	@mkdir -p $(dir $@)
	$(CC) -c -Ic-tests -o $@ $<

$(B)/c-tests/libguests.a: $(GUEST_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@; ar rcs $@ $^

$(B)/c-tests/harness.o: c-tests/harness.c c-tests/harness.h include/libkvm.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -c -o $@ $<

$(B)/c-tests/%: c-tests/%.c $(B)/c-tests/harness.o $(B)/c-tests/libguests.a c-tests/harness.h include/libkvm.h $(SO)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(B)/c-tests/harness.o $(B)/c-tests/libguests.a $(TEST_LDFLAGS)

tests: all $(TEST_BINS) $(KTESTS) $(DEMO_KERNEL) $(HELLO)

check-cargo:
	$(CARGO_ENV) $(CARGO) test --release --locked --quiet

# Everything `make check` runs ends in one summary line from the runner.
check: deps deps-valgrind tools all tests check-cargo fuzz-build
	@MAKE="$(MAKE)" CBINDGEN="$(CBINDGEN)" CC="$(CC)" CXX="$(CXX)" \
	  c-tests/run-tests $(TEST_BINS) $(TEST_SCRIPTS)

# ---- distribution packages ----------------------------------------------------------

# The Debian packages (debian/) built twice in two directories, lintian, the symbols
# check, what the packages hold, the reproducibility of the build and a default install:
# .ci/check-package.sh says what each step checks. Builds from copies of this tree, so it
# takes a few minutes; make check covers the rest of packaging (c-tests/static-archive.sh,
# install-conventions.sh, install-consumer.sh, debian-symbols.sh).
PACKAGE_PACKAGES := debhelper dpkg-dev lintian pkg-config

deps-package:
	$(call apt_install,$(PACKAGE_PACKAGES))

check-package: deps-package
	.ci/check-package.sh

# ---- sanitizers ---------------------------------------------------------------------

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

# The C tests built with AddressSanitizer (and LeakSanitizer, which also sees the
# library's allocations: Rust allocates through malloc). The library itself is not
# instrumented: -Zsanitizer=address needs a nightly compiler.
ASAN_FLAGS := -fsanitize=address -fno-omit-frame-pointer
ASAN_BINS := $(patsubst c-tests/%.c,$(B)/asan/c-tests/%,$(TEST_SRCS))

$(B)/asan/c-tests/harness.o: c-tests/harness.c c-tests/harness.h include/libkvm.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(ASAN_FLAGS) -c -o $@ $<

$(B)/asan/c-tests/%: c-tests/%.c $(B)/asan/c-tests/harness.o $(B)/c-tests/libguests.a c-tests/harness.h include/libkvm.h $(SO)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(ASAN_FLAGS) -o $@ $< $(B)/asan/c-tests/harness.o $(B)/c-tests/libguests.a $(TEST_LDFLAGS)

check-asan: all $(ASAN_BINS)
	@LIBKVM_TEST_INSTRUMENTED=asan TEST_LOGS=$(B)/asan \
	  ASAN_OPTIONS=detect_leaks=1:exitcode=99 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/c-tests/lsan.supp:print_suppressions=0 \
	  c-tests/run-tests $(ASAN_BINS)

# ---- fuzzing ------------------------------------------------------------------------

# fuzz/fuzz_api.c under libFuzzer (clang -fsanitize=fuzzer,address), linked with libkvm
# built as a staticlib with SanitizerCoverage (stable rustc: -Cpasses=sancov-module), so
# that libFuzzer's coverage (cov/ft) counts libkvm's own branches. --target keeps the
# instrumentation off build scripts. `make fuzz` runs it FUZZ_SECONDS; `make check` runs
# it briefly (c-tests/fuzz.sh). The corpus grows in build/fuzz/corpus.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_TARGET := x86_64-unknown-linux-gnu
FUZZ_RUST_A := target/fuzz/$(FUZZ_TARGET)/release/libkvm.a
FUZZ_BIN := $(B)/fuzz/fuzz_api
FUZZ_FLAGS := -timeout=10 -max_len=1024 -print_final_stats=1
SANCOV_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
	-Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares

fuzz-rust:
	CARGO_TARGET_DIR=target/fuzz RUSTFLAGS="$(SANCOV_RUSTFLAGS)" CARGO_PROFILE_RELEASE_LTO=false \
	  $(CARGO) build --release --locked --lib --target $(FUZZ_TARGET)

$(FUZZ_RUST_A): fuzz-rust

$(FUZZ_BIN): fuzz/fuzz_api.c include/libkvm.h $(FUZZ_RUST_A)
	@mkdir -p $(dir $@)/corpus
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address -Iinclude -o $@ $< $(FUZZ_RUST_A) $(LIBS_PRIVATE)

fuzz-build: deps-fuzz $(FUZZ_BIN)

fuzz: fuzz-build
	$(FUZZ_BIN) $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) $(B)/fuzz/corpus

# ---- benchmarks (BENCHMARKS.md) -----------------------------------------------------

# In the order `make bench` runs them; bench/bench.h says how they measure.
BENCHES := exit regs kick create dirty_log memory
BENCH_BINS := $(patsubst %,$(B)/bench/%,$(BENCHES))
# Benchmarks of functions that may not be in this build yet are compiled in only when the
# header declares them.
BENCH_HAVE := $(foreach f,kvm_kick_vcpu kvm_get_dirty_log,$(if $(shell grep -sw '$(f)' include/libkvm.h),-DHAVE_$(shell echo $(f) | tr a-z A-Z)))
BENCH_CFLAGS = $(HOST_CFLAGS) -Iinclude -Ibench -Ic-tests -pthread $(BENCH_HAVE)

$(B)/bench/common.o: bench/common.c bench/bench.h include/libkvm.h
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

# ---- install ------------------------------------------------------------------------

# GNU conventions: `install` installs the binaries as built (debug info kept, for a
# distribution's debug-symbol packages), `install-strip` strips them with $(STRIP). The
# static archive is never stripped by them: it holds no debug info unless STATIC_DEBUG=yes
# asked for it. Installing into the running system (DESTDIR empty) ends, as libtool's
# --finish does, by refreshing the dynamic linker's cache (ldconfig), so that a program
# linked against the new libkvm starts; only root can, and DESTDIR installs leave it to the
# package manager.
INSTALL_STRIP_FLAG ?=

install: all
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(BINDIR)
	$(INSTALL_PROGRAM) $(INSTALL_STRIP_FLAG) -m 755 $(SO) $(DESTDIR)$(LIBDIR)/libkvm.so.$(VERSION)
	ln -sf libkvm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libkvm.so
	$(INSTALL_DATA) $(B)/libkvm.a $(DESTDIR)$(LIBDIR)/libkvm.a
	$(INSTALL_DATA) include/libkvm.h $(DESTDIR)$(INCLUDEDIR)/libkvm.h
	$(PC_SED) > $(DESTDIR)$(PKGCONFIGDIR)/libkvm.pc
	$(INSTALL_PROGRAM) $(INSTALL_STRIP_FLAG) -m 755 $(B)/inst/kvmrun $(DESTDIR)$(BINDIR)/kvmrun
	$(if $(MAN1),$(INSTALL_DATA) $(MAN1) $(DESTDIR)$(MANDIR)/man1/)
	$(if $(MAN3),$(INSTALL_DATA) $(MAN3) $(DESTDIR)$(MANDIR)/man3/)
	$(if $(MAN7),$(INSTALL_DATA) $(MAN7) $(DESTDIR)$(MANDIR)/man7/)
	$(POST_INSTALL_LDCONFIG)

install-strip:
	$(MAKE) INSTALL_STRIP_FLAG='-s --strip-program=$(STRIP)' install

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libkvm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libkvm.so $(DESTDIR)$(LIBDIR)/libkvm.a \
	      $(DESTDIR)$(INCLUDEDIR)/libkvm.h $(DESTDIR)$(PKGCONFIGDIR)/libkvm.pc \
	      $(DESTDIR)$(BINDIR)/kvmrun \
	      $(patsubst man/%,$(DESTDIR)$(MANDIR)/%,$(MAN1) $(MAN3) $(MAN7))
	$(POST_INSTALL_LDCONFIG)

POST_INSTALL_LDCONFIG = $(if $(DESTDIR),,@if [ "$$(id -u)" = 0 ]; then echo $(LDCONFIG); $(LDCONFIG); \
	else echo "not root: run ldconfig as root, or set LD_LIBRARY_PATH=$(LIBDIR)"; fi)

# ---- demonstration ------------------------------------------------------------------

# kvmrun boots the demo kernel on 4 vcpus: it starts them with INIT/SIPI, each counts
# primes and prints a line, and it exits through isa-debug-exit.
demo: all $(DEMO_KERNEL)
	@echo '$$ kvmrun -smp 4 $(DEMO_KERNEL)'
	@start=$$(date +%s%N); $(B)/kvmrun -smp 4 -t 60 $(DEMO_KERNEL); s=$$?; \
	ms=$$(( ($$(date +%s%N) - start) / 1000000 )); \
	if [ $$s -eq 1 ]; then why=': the guest wrote 0 to isa-debug-exit, (0 << 1) | 1 = 1: its check passed'; \
	else why=' (see kvmrun(1), EXIT STATUS)'; fi; \
	echo "kvmrun exited with status $$s after $$ms ms$$why"; [ $$s -eq 1 ]

$(HELLO_GUEST): examples/hello-guest.S
	@mkdir -p $(dir $@)
	$(CC) -c -o $@ $<

$(HELLO): examples/hello.c $(HELLO_GUEST) include/libkvm.h $(SO)
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) $(LDFLAGS) -Iinclude -o $@ $< $(HELLO_GUEST) -L$(B) -lkvm -Wl,-rpath,$(CURDIR)/$(B)

clean:
	rm -rf $(B)
	$(CARGO) clean

# ---- mutation check (c-tests/mutants, CONTRIBUTING.md) ------------------------------

# Applies each small break of src/ listed in c-tests/mutants/list, one at a time, to a
# scratch copy of the tree (build/mutants/tree, never the working tree), builds it and
# runs the suite on it; fails if the suite misses any. Names select mutants:
# `make check-mutants MUTANTS="kick-no-flag msr-count"`.
.PHONY: check-mutants
check-mutants: deps
	@MAKE="$(MAKE)" CC="$(CC)" CXX="$(CXX)" c-tests/mutants/run $(MUTANTS)
