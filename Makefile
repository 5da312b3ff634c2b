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
CFLAGS ?= -O2 -g
CFLAGS += -Wall -Wextra -Werror -std=gnu11

# What the Rust staticlib needs from the system (rustc --print native-static-libs); the
# shared object links them, and libkvm.pc lists them in Libs.private for static users.
LIBS_PRIVATE := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

B := build
RUST_A := target/release/libkvm.a
SONAME := libkvm.so.$(MAJOR)
SO := $(B)/libkvm.so.$(VERSION)

# cbindgen, pinned: the committed header must be byte-identical to what it generates.
CBINDGEN_VERSION := 0.29.4
TOOLS := $(CURDIR)/.tools
CBINDGEN := $(shell v=$$(cbindgen --version 2>/dev/null); [ "$$v" = "cbindgen $(CBINDGEN_VERSION)" ] && command -v cbindgen || echo $(TOOLS)/bin/cbindgen)

# Debian packages the tests need beyond the Rust toolchain and gcc.
APT_PACKAGES := pkg-config g++ binutils abigail-tools gcc-multilib groff-base man-db strace

MAN3 := $(wildcard man/man3/*.3)
MAN7 := $(wildcard man/man7/*.7)

TEST_SRCS := $(filter-out c-tests/harness.c,$(wildcard c-tests/*.c))
TEST_BINS := $(patsubst c-tests/%.c,$(B)/c-tests/%,$(TEST_SRCS))
TEST_SCRIPTS := $(wildcard c-tests/*.sh)
GUEST_OBJS := $(patsubst c-tests/guests/%.S,$(B)/c-tests/guests/%.o,$(wildcard c-tests/guests/*.S))

.PHONY: all cargo-build header check check-cargo tests install uninstall demo clean deps tools abi-baseline bench

all: $(SO) $(B)/$(SONAME) $(B)/libkvm.so $(B)/libkvm.a $(B)/libkvm.pc

# Cargo decides what to rebuild; the phony prerequisite makes sure it is asked, and the
# empty recipe makes make look at the archive's time again afterwards (without one, the
# shared object was relinked only by the next make).
cargo-build:
	$(CARGO) build --release --locked --lib

$(RUST_A): cargo-build ;

# A version script given to a Rust cdylib is ignored (lld) or refused (GNU ld), so the
# shared object is linked from the staticlib by the C toolchain.
$(SO): $(RUST_A) src/libkvm.map
	@mkdir -p $(B)
	$(CC) -shared -o $@ -Wl,--whole-archive $(RUST_A) -Wl,--no-whole-archive \
		-Wl,--version-script=src/libkvm.map -Wl,-soname,$(SONAME) \
		-Wl,-z,defs -Wl,-z,relro -Wl,-z,now -Wl,--gc-sections $(LIBS_PRIVATE)

$(B)/$(SONAME): $(SO)
	ln -sf libkvm.so.$(VERSION) $@

$(B)/libkvm.so: $(B)/$(SONAME)
	ln -sf $(SONAME) $@

$(B)/libkvm.a: $(RUST_A)
	@mkdir -p $(B)
	cp $(RUST_A) $@

# libkvm.pc for the paths given now; `make install` writes its own for the install paths.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' pkgconfig/libkvm.pc.in

$(B)/libkvm.pc: pkgconfig/libkvm.pc.in Cargo.toml Makefile
	@mkdir -p $(B)
	$(PC_SED) > $@

# ---- tools the build needs beyond the toolchain, installed on first use --------------

tools: $(CBINDGEN)

$(TOOLS)/bin/cbindgen:
	$(CARGO) install --locked --quiet --root $(TOOLS) cbindgen@$(CBINDGEN_VERSION)

# Installs missing Debian packages when run as root, else names the command to run.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    (apt-get install -y -q $$missing || (apt-get update -q && apt-get install -y -q $$missing)) >/dev/null; \
	  else echo "missing packages; run: sudo apt-get install$$missing" >&2; exit 1; fi; \
	fi

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

TEST_CFLAGS := $(CFLAGS) -Iinclude -Ic-tests -pthread
TEST_LDFLAGS := -L$(B) -lkvm -Wl,-rpath,$(CURDIR)/$(B) -pthread

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

tests: all $(TEST_BINS)

check-cargo:
	$(CARGO) test --release --locked --quiet

# Everything `make check` runs ends in one summary line from the runner.
check: deps tools all tests check-cargo
	@MAKE="$(MAKE)" CBINDGEN="$(CBINDGEN)" CC="$(CC)" CXX="$(CXX)" \
	  c-tests/run-tests $(TEST_BINS) $(TEST_SCRIPTS)

# ---- benchmarks (BENCHMARKS.md) -----------------------------------------------------

# In the order `make bench` runs them; bench/bench.h says how they measure.
BENCHES := exit regs kick create dirty_log memory
BENCH_BINS := $(patsubst %,$(B)/bench/%,$(BENCHES))
# Benchmarks of functions that may not be in this build yet are compiled in only when the
# header declares them.
BENCH_HAVE := $(foreach f,kvm_kick_vcpu kvm_get_dirty_log,$(if $(shell grep -sw '$(f)' include/libkvm.h),-DHAVE_$(shell echo $(f) | tr a-z A-Z)))
BENCH_CFLAGS := $(CFLAGS) -Iinclude -Ibench -Ic-tests -pthread $(BENCH_HAVE)

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

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 755 $(SO) $(DESTDIR)$(LIBDIR)/libkvm.so.$(VERSION)
	strip --strip-unneeded $(DESTDIR)$(LIBDIR)/libkvm.so.$(VERSION)
	ln -sf libkvm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libkvm.so
	install -m 644 $(B)/libkvm.a $(DESTDIR)$(LIBDIR)/libkvm.a
	install -m 644 include/libkvm.h $(DESTDIR)$(INCLUDEDIR)/libkvm.h
	$(PC_SED) > $(DESTDIR)$(PKGCONFIGDIR)/libkvm.pc
	$(if $(MAN3),install -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/)
	$(if $(MAN7),install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7/)

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libkvm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libkvm.so $(DESTDIR)$(LIBDIR)/libkvm.a \
	      $(DESTDIR)$(INCLUDEDIR)/libkvm.h $(DESTDIR)$(PKGCONFIGDIR)/libkvm.pc \
	      $(patsubst man/%,$(DESTDIR)$(MANDIR)/%,$(MAN3) $(MAN7))

# ---- demonstration ------------------------------------------------------------------

DEMO := $(B)/examples/hello
DEMO_GUEST := $(B)/examples/hello-guest.o

$(DEMO_GUEST): examples/hello-guest.S
	@mkdir -p $(dir $@)
	$(CC) -c -o $@ $<

$(DEMO): examples/hello.c $(DEMO_GUEST) include/libkvm.h $(SO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iinclude -o $@ $< $(DEMO_GUEST) -L$(B) -lkvm -Wl,-rpath,$(CURDIR)/$(B)

demo: all $(DEMO)
	$(DEMO)

clean:
	rm -rf $(B)
	$(CARGO) clean
