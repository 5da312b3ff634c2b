/* Errnos that need an unusual situation, each made real: kvm_debug_guest EBUSY, kvm_set_xsave EINVAL, kvm_ioeventfd ENOSPC, kvm_save_vcpu EAGAIN, kvm_get_tsc_khz EOVERFLOW, kvm_translate EAGAIN, kvm_enable_cap EEXIST; each followed by a check that the vcpu or VM still does the right thing. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static uint64_t rip(void)
{
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	return r.rip;
}

static int real_mode_vm(struct blob b)
{
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_vcpu(vm, 0));
	load_blob(vm, 0x1000, b);
	setup_real_mode(0x1000);
	return vm;
}

static void done(int vm)
{
	end_vm(vm);
}

/* KVM_GUESTDBG_INJECT_BP queues a #BP; asking again while it is pending is EBUSY. The
 * guest then takes the one #BP (its handler reports 0x33) and goes on (42). */
static void debug_guest_ebusy(void)
{
	int vm = real_mode_vm(BLOB(rm_report42));
	load_blob(vm, 0x1100, BLOB(rm_report_handler));
	uint16_t *ivt = real_mode_ivt(vm);
	ivt[3 * 2] = 0x1100; /* vector 3: offset, segment 0 */
	ivt[3 * 2 + 1] = 0;
	struct kvm_guest_debug inject = { .control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_INJECT_BP };
	OK(kvm_debug_guest(&inject));
	CHECK_ERR(kvm_debug_guest(&inject), EBUSY);
	struct kvm_guest_debug off = { 0 };
	OK(kvm_debug_guest(&off));
	CHECK_EQ(run_until_out(0x10), 0x33);
	CHECK_EQ(run_until_out(0x10), 42);
	done(vm);
}

/* An XSAVE header whose XSTATE_BV has a bit no processor defines (63): the kernel
 * refuses the state, and the vcpu's own is unchanged. */
static void set_xsave_einval(void)
{
	int vm = real_mode_vm(BLOB(rm_report42));
	int size = OK(kvm_get_xsave_size());
	struct kvm_xsave *x = calloc(1, size), *y = calloc(1, size);
	CHECK(x && y);
	OK(kvm_get_xsave(x, size));
	memcpy(y, x, size);
	uint64_t bv;
	memcpy(&bv, (uint8_t *)x->region + 512, 8);
	bv |= 1ull << 63;
	memcpy((uint8_t *)y->region + 512, &bv, 8);
	CHECK_ERR(kvm_set_xsave(y, size), EINVAL);
	OK(kvm_get_xsave(y, size));
	CHECK(memcmp(x, y, size) == 0);
	CHECK_EQ(run_until_out(0x10), 42);
	free(x);
	free(y);
	done(vm);
}

/* A kernel I/O bus holds at most NR_IOBUS_DEVS (1000 since Linux 4.x) devices other
 * than ioeventfds (which the kernel does not count against the limit, so ioeventfds
 * alone never fill it). Coalesced MMIO zones are such devices: with the MMIO bus full
 * of them, an MMIO ioeventfd is ENOSPC; with one zone gone it fits, and the guest's
 * write to its address signals the eventfd without an exit. */
static void ioeventfd_enospc(void)
{
	int vm = real_mode_vm(BLOB(rm_mmio_store));
	struct kvm_coalesced_mmio_zone z = { .size = 8 };
	unsigned zones;
	for (zones = 0; zones <= 1000; zones++) {
		z.addr = 0xd0000000ull + 8 * zones;
		if (kvm_register_coalesced_mmio(vm, &z) == -1)
			break;
	}
	CHECK(zones > 0 && zones <= 1000);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(efd >= 0);
	struct kvm_ioeventfd io = { .addr = 0x30000, .len = 1, .fd = efd };
	CHECK_ERR(kvm_ioeventfd(vm, &io), ENOSPC);
	z.addr = 0xd0000000ull;
	OK(kvm_unregister_coalesced_mmio(vm, &z));
	OK(kvm_ioeventfd(vm, &io));
	CHECK_EQ(run_until_out(0x10), 42); /* no exit for the write to 0x30000 */
	uint64_t count;
	CHECK(read(efd, &count, sizeof count) == sizeof count);
	CHECK_EQ(count, 1);
	done(vm);
	close(efd);
}

/* A 4-byte MMIO write that crosses a page boundary is two exits of 2 bytes. Saving
 * the vcpu after the first completes it, which produces the second: EAGAIN, with the
 * second exit in the run area to be handled first. */
static void save_vcpu_eagain(void)
{
	int vm = real_mode_vm(BLOB(rm_split_mmio));
	struct kvm_run *run = kvm_run_area();
	run_expect(KVM_EXIT_MMIO);
	CHECK_EQ(run->mmio.phys_addr, 0x20ffe);
	CHECK_EQ(run->mmio.len, 2);
	CHECK(run->mmio.is_write);
	CHECK_EQ(run->mmio.data[0] | run->mmio.data[1] << 8, 0x3344);
	static uint8_t blob[1 << 16];
	size_t len = sizeof blob;
	CHECK_ERR(kvm_save_vcpu(blob, &len), EAGAIN);
	CHECK_EQ(run->exit_reason, KVM_EXIT_MMIO);
	CHECK_EQ(run->mmio.phys_addr, 0x21000);
	CHECK_EQ(run->mmio.len, 2);
	CHECK(run->mmio.is_write);
	CHECK_EQ(run->mmio.data[0] | run->mmio.data[1] << 8, 0x1122);
	/* Handled, the save works, and the guest goes on. */
	len = sizeof blob;
	OK(kvm_save_vcpu(blob, &len));
	CHECK_EQ(run_until_out(0x10), 42);
	done(vm);
}

/* A TSC frequency above INT_MAX kHz, set through the raw vcpu ioctl (kvm_set_tsc_khz
 * refuses it): kvm_get_tsc_khz cannot return it in an int. Without TSC scaling KVM
 * takes any frequency above the host's (catch-up mode); with it, the kernel's limit
 * depends on its scaling ratio, which no capability reports. */
static void tsc_khz_eoverflow(void)
{
	int vm = real_mode_vm(BLOB(rm_report42));
	int host = OK(kvm_get_tsc_khz());
	int scaling = OK(kvm_check_extension(-1, KVM_CAP_TSC_CONTROL));
	unsigned long khz = 0x90000000ul; /* 2.4 THz */
	errno = 0;
	int r = kvm_vcpu_ioctl(KVM_SET_TSC_KHZ, (void *)khz);
	if (r == -1 && scaling) {
		skip_section("kvm_get_tsc_khz EOVERFLOW",
			     "with TSC scaling (KVM_CAP_TSC_CONTROL) the kernel refuses 2.4 THz");
	} else {
		CHECK_EQ(r, 0);
		CHECK_ERR(kvm_get_tsc_khz(), EOVERFLOW);
	}
	OK(kvm_set_tsc_khz(host));
	CHECK_EQ(OK(kvm_get_tsc_khz()), host);
	done(vm);
}

/* The page directory entry for 2 MiB..4 MiB is rewritten (by another thread) between
 * two frames while kvm_translate walks it: whenever the kernel's walk and libkvm's see
 * different frames, EAGAIN. Each call that succeeds must give one of the two. */
static _Atomic int toggling;
static volatile uint64_t *pde1;
static void *toggler(void *arg)
{
	(void)arg;
	while (atomic_load(&toggling)) {
		*pde1 = 0x400000 | 0x83;
		*pde1 = 0x200000 | 0x83;
	}
	return NULL;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void translate_eagain(void)
{
	const char *inst = getenv("LIBKVM_TEST_INSTRUMENTED");
	if (inst && strcmp(inst, "valgrind") == 0) {
		/* Valgrind runs one thread at a time, switching rarely: the rewrite almost never
		 * lands between the kernel's walk and libkvm's, so the race is no test there. */
		skip_section("kvm_translate's EAGAIN race", "under valgrind only one thread runs at a time");
		return;
	}
	int vm = vm_with_memory(0x100000);
	OK(kvm_create_vcpu(vm, 0));
	setup_long_mode(vm, 0x10000, 0x4000);
	pde1 = (uint64_t *)kvm_guest_memory(vm, 0x12000, 0x1000) + 1;
	CHECK(pde1 != NULL);
	uint64_t pa;
	uint8_t valid, w, u;
	atomic_store(&toggling, 1);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, toggler, NULL) == 0);
	int r = 0, calls = 0;
	/* Nearly every call races the toggler; 20 s bounds a host that never lets the two
	 * threads run at once (the test fails then: it claims EAGAIN happens). */
	for (double end = now() + 20; r == 0 && now() < end; calls++) {
		errno = 0;
		r = kvm_translate(0x200123, &pa, &valid, &w, &u);
		if (r == 0)
			CHECK(valid && (pa == 0x200123 || pa == 0x400123));
	}
	int e = errno;
	atomic_store(&toggling, 0);
	CHECK(pthread_join(t, NULL) == 0);
	if (r != -1)
		FAIL("kvm_translate never saw the tables change in %d calls", calls);
	if (e != EAGAIN)
		FAIL("kvm_translate: errno %d (%s), expected EAGAIN", e, strerror(e));
	note_errno("kvm_translate", e); /* what CHECK_ERR records */
	/* The tables at rest: one answer, no EAGAIN. */
	OK(kvm_translate(0x200123, &pa, &valid, &w, &u));
	CHECK(valid && pa == 0x200123);
	printf("kvm_translate: EAGAIN after %d call(s) racing a rewrite of the tables\n", calls);
	done(vm);
}

/* KVM_CAP_SPLIT_IRQCHIP once a full in-kernel irqchip exists: EEXIST. */
static void enable_cap_eexist(void)
{
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	struct kvm_enable_cap cap = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { 24 } };
	CHECK_ERR(kvm_enable_cap(vm, &cap), EEXIST);
	OK(kvm_destroy_vm(vm));
}

/* kvm_interrupt through the in-kernel local APIC when no APIC takes the message: the
 * vcpu's APIC is disabled in IA32_APIC_BASE, so KVM_SIGNAL_MSI finds no destination and
 * fails with the kernel's EPERM; kvm_interrupt(3) says EAGAIN, as for an APIC that
 * refused it. Vcpu 255: its APIC ID 0xff is the xAPIC broadcast, which the kernel
 * delivers on its slow path, the one that reports "no destination" as EPERM (the fast
 * path gives 0, "delivered to none"). Once the APIC is enabled again the same vector
 * is accepted. */
static void interrupt_no_apic_eagain(void)
{
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	OK(kvm_create_vcpu(vm, 255));
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	uint64_t base = s.apic_base;
	CHECK(base & (1u << 11));             /* enabled at reset */
	s.apic_base = base & ~(1ull << 11);
	OK(kvm_set_sregs(&s));
	CHECK_ERR(kvm_interrupt(0x40), EAGAIN);
	OK(kvm_get_sregs(&s));
	s.apic_base = base;
	OK(kvm_set_sregs(&s));
	struct kvm_lapic_state l;
	OK(kvm_get_lapic(&l));
	uint32_t svr = 0x1ff;                 /* software-enabled, spurious vector 0xff */
	memcpy(l.regs + 0xf0, &svr, 4);
	OK(kvm_set_lapic(&l));
	OK(kvm_interrupt(0x40));
	OK(kvm_get_lapic(&l));
	uint32_t irr;
	memcpy(&irr, l.regs + 0x200 + 0x10 * (0x40 / 32), 4);
	CHECK(irr & (1u << (0x40 % 32)));      /* pending in the IRR */
	end_vm(vm);
}

int main(void)
{
	require_kvm();
	debug_guest_ebusy();
	set_xsave_einval();
	ioeventfd_enospc();
	save_vcpu_eagain();
	tsc_khz_eoverflow();
	translate_eagain();
	enable_cap_eexist();
	interrupt_no_apic_eagain();
	(void)rip;
	printf("rare errnos: each produced, and the vcpu or VM fine afterwards\n");
	return 0;
}
