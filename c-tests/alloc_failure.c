/* With memory exhausted (RLIMIT_AS at the current size, malloc drained), kvm_create_vm, the save and restore calls and kvm_get_dirty_log fail with ENOMEM without aborting or printing, change nothing, and work once memory is back. */
#define _GNU_SOURCE
#include "harness.h"
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/* Everything malloc would still hand out, as a list threaded through the blocks. */
static void *hoard;
static struct rlimit saved_as;
static int saved_stderr, captured;

/* No new mapping (RLIMIT_AS at the current size: no mmap, no brk) and no free block
 * left in the heap, of any size. Nothing between exhaust() and replenish() may allocate. */
static void exhaust(void)
{
	CHECK(getrlimit(RLIMIT_AS, &saved_as) == 0);
	struct rlimit rl = saved_as;
	rl.rlim_cur = (rlim_t)proc_status_kb("VmSize") * 1024;
	CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
	for (size_t sz = 1 << 20; sz >= 1024; sz /= 2)
		for (void *p; (p = malloc(sz)) != NULL; hoard = p)
			*(void **)p = hoard;
	for (size_t sz = 1024; sz >= sizeof(void *); sz--)
		for (void *p; (p = malloc(sz)) != NULL; hoard = p)
			*(void **)p = hoard;
	/* libkvm's stderr goes to a file while memory is short: it must stay empty. */
	fflush(stderr);
	dup2(captured, 2);
}

static void replenish(void)
{
	dup2(saved_stderr, 2);
	while (hoard) {
		void *next = *(void **)hoard;
		free(hoard);
		hoard = next;
	}
	CHECK(setrlimit(RLIMIT_AS, &saved_as) == 0);
	off_t printed = lseek(captured, 0, SEEK_END);
	if (printed != 0)
		FAIL("libkvm printed %ld bytes while memory was short", (long)printed);
}

/* Runs `call` with memory exhausted: it must fail with ENOMEM. */
#define WITHOUT_MEMORY(call) do { exhaust(); errno = 0; long r_ = (long)(call); int e_ = errno; \
	replenish(); if (r_ != -1 || e_ != ENOMEM) \
	FAIL("%s with memory exhausted: returned %ld, errno %d (%s); expected -1/ENOMEM", \
	     #call, r_, e_, strerror(e_)); note_errno(#call, e_); } while (0)

static char vcpu_blob[1 << 17], vm_blob[1 << 16], buf[1 << 17];

int main(void)
{
	require_kvm();
	/* Valgrind and AddressSanitizer replace malloc and map memory of their own: the
	 * address-space limit would starve them, not libkvm. */
	const char *inst = getenv("LIBKVM_TEST_INSTRUMENTED");
	if (inst) {
		printf("not run under %s: its allocator cannot be exhausted like malloc\n", inst);
		return 0;
	}
	saved_stderr = dup(2);
	captured = memfd_create("libkvm-stderr", MFD_CLOEXEC);
	CHECK(saved_stderr >= 0 && captured >= 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("exhausting memory around each call\n");

	/* A VM whose vcpu has run part of a guest, with an in-kernel irqchip and PIT (so
	 * the blobs hold their state), and a memory alias into a logging slot. */
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	OK(kvm_create_pit2(vm, 0));
	OK(kvm_set_memory_region(vm, 1, KVM_MEM_LOG_DIRTY_PAGES, 0x100000, 0x10000));
	struct kvm_memory_alias alias = { .slot = 0, .guest_phys_addr = 0x200000,
		.memory_size = 0x1000, .target_phys_addr = 0x100000 };
	OK(kvm_set_memory_alias(vm, &alias));
	int vcpu_fd = real_mode_vcpu(vm, 0, 0x1000, BLOB(rm_report));
	EDIT_REGS(r, r.rsi = 0x1234; r.rbx = 0x40);
	CHECK_EQ(run_until_out(0x10), 0x2468);
	size_t vlen = sizeof(vcpu_blob), mlen = sizeof(vm_blob);
	OK(kvm_save_vcpu(vcpu_blob, &vlen));
	OK(kvm_save_vm(vm, vm_blob, &mlen));

	WITHOUT_MEMORY(kvm_create_vm());
	int vm2 = OK(kvm_create_vm());
	OK(kvm_destroy_vm(vm2));

	size_t len = sizeof(buf);
	WITHOUT_MEMORY(kvm_save_vcpu(buf, &len));
	len = sizeof(buf);
	OK(kvm_save_vcpu(buf, &len));
	CHECK_EQ(len, vlen);

	/* A failed restore changes nothing: the registers are those of the running vcpu. */
	struct kvm_regs r;
	struct kvm_regs changed = r;
	OK(kvm_get_regs(&changed));
	changed.rbx = 0x50;
	OK(kvm_set_regs(&changed));
	WITHOUT_MEMORY(kvm_restore_vcpu(vcpu_blob, vlen));
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rbx, 0x50);
	OK(kvm_restore_vcpu(vcpu_blob, vlen));
	CHECK_EQ(run_until_out(0x11), 0x41); /* the saved rbx 0x40, incremented */

	len = sizeof(buf);
	WITHOUT_MEMORY(kvm_save_vm(vm, buf, &len));
	len = sizeof(buf);
	OK(kvm_save_vm(vm, buf, &len));
	WITHOUT_MEMORY(kvm_restore_vm(vm, vm_blob, mlen));
	OK(kvm_restore_vm(vm, vm_blob, mlen));

	/* The dirty log of a slot with an alias into it merges the alias's log: memory. */
	static uint8_t bitmap[2];
	WITHOUT_MEMORY(kvm_get_dirty_log(vm, 1, bitmap));
	OK(kvm_get_dirty_log(vm, 1, bitmap));

	/* A GSI routing table: libkvm keeps a copy of it (for kvm_save_vm). */
	static struct { struct kvm_irq_routing h; struct kvm_irq_routing_entry e[24]; } rt;
	rt.h.nr = 24;
	for (unsigned i = 0; i < 24; i++) {
		rt.e[i].gsi = i;
		rt.e[i].type = KVM_IRQ_ROUTING_IRQCHIP;
		rt.e[i].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		rt.e[i].u.irqchip.pin = i;
	}
	WITHOUT_MEMORY(kvm_set_gsi_routing(vm, &rt.h));
	OK(kvm_set_gsi_routing(vm, &rt.h));

	/* What needs no memory of libkvm's works with memory exhausted: a new alias (the
	 * target's host memory in another KVM slot, its table entry reserved beforehand) and
	 * the supported CPUID (the kernel's own table, copied to the caller's). Their pages'
	 * ENOMEM is the kernel's (c-tests/errnos-unproduced). */
	struct kvm_memory_alias alias2 = { .slot = 1, .guest_phys_addr = 0x300000,
		.memory_size = 0x1000, .target_phys_addr = 0x100000 };
	static struct { struct kvm_cpuid2 h; struct kvm_cpuid_entry2 e[256]; } cpuid;
	cpuid.h.nent = 256;
	exhaust();
	int alias_r = kvm_set_memory_alias(vm, &alias2), alias_e = errno;
	int cpuid_r = kvm_get_supported_cpuid(&cpuid.h), cpuid_e = errno;
	replenish();
	if (alias_r != 0 || cpuid_r != 0)
		FAIL("with memory exhausted: kvm_set_memory_alias %d (%s), kvm_get_supported_cpuid "
		     "%d (%s)", alias_r, strerror(alias_e), cpuid_r, strerror(cpuid_e));
	CHECK(cpuid.h.nent > 1);

	/* Destroying a VM with vcpus needs a little room to take them apart: ENOMEM with
	 * the VM as it was (it still runs its guest's next step), then it goes. */
	OK(kvm_detach_vcpu());
	WITHOUT_MEMORY(kvm_destroy_vm(vm));
	OK(kvm_attach_vcpu(vcpu_fd));
	OK(kvm_get_regs(&r));
	end_vm(vm);
	printf("kvm_create_vm, kvm_destroy_vm, kvm_save_vcpu, kvm_restore_vcpu, kvm_save_vm, kvm_restore_vm, kvm_get_dirty_log: ENOMEM, silent, then working\n");
	return 0;
}
