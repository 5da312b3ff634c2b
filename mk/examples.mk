# examples/: kvmrun (a VMM in C on the public header), the demo kernel `make demo` boots
# on it, and hello.c (the smallest libkvm program).

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

