# ---- fuzzing ------------------------------------------------------------------------

# fuzz/fuzz_api.c under libFuzzer (clang -fsanitize=fuzzer,address), linked with libkvm
# built as a staticlib with SanitizerCoverage (stable rustc: -Cpasses=sancov-module), so
# that libFuzzer's coverage (cov/ft) counts libkvm's own branches. --target keeps the
# instrumentation off build scripts. `make fuzz` runs it FUZZ_SECONDS; `make check` runs
# it briefly (c-tests/integration/fuzz.sh). The corpus grows in build/fuzz/corpus.
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

