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

