# libkvm: build, install and test. `make` builds the library, `make check` runs every
# test, `make demo` runs the demonstration. See README.md. This file holds the
# configuration (every variable a user may set) and includes one makefile per part of
# the tree from mk/: library.mk (cargo, libkvm.so, libkvm.a, libkvm.pc, header, ABI),
# examples.mk (kvmrun, the demo kernel, hello), tests.mk (c-tests: guests, kernels, the
# C tests in each flavour, check, check-valgrind, check-asan, check-mutants), fuzz.mk,
# bench.mk, install.mk, package.mk (Debian), tools.mk (cbindgen, deps*).

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
# (c-tests/invariants/static-archive.sh checks this list against it) without its -lgcc_s. The
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

# Shared by the test kernels (c-tests/kernels) and the demo kernel (examples/demo-kernel):
# freestanding 32-bit multiboot ELF, built by the host gcc with only its own freestanding
# headers (-nostdinc) and no libraries: no 32-bit libc needed.
KERNEL_CFLAGS := -m32 -march=i686 -O2 -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
	-fno-asynchronous-unwind-tables -mno-sse -mno-mmx -mno-80387 -nostdinc \
	-isystem $(shell $(CC) -print-file-name=include) -Wall -Wextra -Werror
KERNEL_LDFLAGS := -m32 -nostdlib -static -no-pie -Wl,--build-id=none -Wl,--no-warn-rwx-segments

.DEFAULT_GOAL := all
.PHONY: all cargo-build header check check-cargo tests install install-strip uninstall demo clean \
	deps tools abi-baseline check-valgrind check-asan check-mutants fuzz fuzz-build fuzz-rust \
	deps-valgrind deps-fuzz deps-package check-package bench FORCE

# In this order: a later file's prerequisites name an earlier one's variables (tests.mk's
# check needs BENCH_BINS, so bench.mk comes first).
include mk/tools.mk mk/library.mk mk/examples.mk mk/bench.mk mk/fuzz.mk mk/tests.mk \
	mk/install.mk mk/package.mk

clean:
	rm -rf $(B)
	$(CARGO) clean
