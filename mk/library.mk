# The library: cargo's staticlib, the shared object linked from it with the version
# script, the static archive, libkvm.pc, the header and the ABI baseline.

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

$(B)/libkvm.pc: pkgconfig/libkvm.pc.in Cargo.toml Makefile mk/library.mk
	@mkdir -p $(B)
	$(PC_SED) > $@

# The same for the build tree, found by pkg-config in preference to libkvm.pc when
# PKG_CONFIG_PATH names $(B): what kvmrun is built with.
$(B)/libkvm-uninstalled.pc: pkgconfig/libkvm.pc.in Cargo.toml Makefile mk/library.mk
	@mkdir -p $(B)
	sed -e 's|@PREFIX@|$(CURDIR)|' -e 's|@LIBDIR@|$(CURDIR)/$(B)|' -e 's|@INCLUDEDIR@|$(CURDIR)/include|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' pkgconfig/libkvm.pc.in > $@
# ---- header -------------------------------------------------------------------------

header: $(CBINDGEN)
	$(CBINDGEN) --quiet --config cbindgen.toml --crate libkvm --output include/libkvm.h

# ---- ABI baseline --------------------------------------------------------------------

# Records the ABI of the built library in abi/libkvm.abi (commit it); `make check`
# compares the library with it. Refuses changes to released version nodes: abi/abi.sh,
# CONTRIBUTING.md.
abi-baseline: deps all
	abi/abi.sh record

