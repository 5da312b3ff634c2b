/* With the in-kernel irqchip, the boot vcpu starts an application processor by INIT-SIPI-SIPI at a real-mode trampoline, reads its marker, and runs its handler with a fixed IPI; another AP is started with kvm_set_mp_state. */
#include "harness.h"
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static int vm;
static atomic_int ap_in_run, ap_started;

static void *ap_thread(void *arg)
{
	(void)arg;
	int fd = OK(kvm_create_vcpu(vm, 1));
	struct kvm_mp_state mp;
	OK(kvm_get_mp_state(&mp));
	CHECK_EQ(mp.mp_state, KVM_MP_STATE_UNINITIALIZED);
	/* Registers set before the start are the vcpu's, also across a kick that ends the
	 * wait, and INIT then resets them (as with the plain ioctls): the AP does not start
	 * at this rip. */
	EDIT_REGS(r, r.rbx = 0x5151; r.rip = 0xdead);
	OK(kvm_kick_vcpu(fd));
	errno = 0;
	CHECK_EQ(kvm_run(), -1);
	CHECK_EQ(errno, EINTR);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rbx, 0x5151);
	CHECK_EQ(r.rip, 0xdead);
	r.rbx = 0x5252;
	OK(kvm_set_regs(&r));
	atomic_store(&ap_in_run, 1);
	/* Sits in the kernel until the SIPI; then runs the trampoline to its first out. */
	CHECK_EQ(run_until_out(0x72), 1); /* its APIC ID */
	atomic_store(&ap_started, 1);
	OK(kvm_get_mp_state(&mp));
	CHECK_EQ(mp.mp_state, KVM_MP_STATE_RUNNABLE);
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	CHECK(s.cr0 & 1);
	/* The BSP's fixed IPI runs the handler for vector 0x41. */
	CHECK_EQ(run_until_out(0x73), 0x41);
	OK(kvm_detach_vcpu());
	return NULL;
}

/* Another AP, started by its own thread with kvm_set_mp_state instead of INIT-SIPI. */
static void *ap_started_by_host(void *arg)
{
	(void)arg;
	OK(kvm_create_vcpu(vm, 2));
	struct kvm_mp_state mp;
	OK(kvm_get_mp_state(&mp));
	CHECK_EQ(mp.mp_state, KVM_MP_STATE_UNINITIALIZED);
	setup_real_mode(0x3000);
	EDIT_REGS(r, r.rsi = 0x123);
	mp.mp_state = KVM_MP_STATE_RUNNABLE;
	OK(kvm_set_mp_state(&mp));
	CHECK_EQ(run_until_out(0x10), 0x246);
	OK(kvm_detach_vcpu());
	return NULL;
}

int main(void)
{
	require_kvm();
	watchdog_phase("setup", 30);
	vm = vm_with_memory(1 << 20);
	OK(kvm_create_irqchip(vm));
	load_blob(vm, 0x2000, BLOB(pm_bsp));
	load_blob(vm, 0x8000, BLOB(ap_tramp));
	OK(kvm_create_vcpu(vm, 0));
	setup_protected_mode(0x2000);
	setup_descriptor_tables(vm, 0x6000, 0x5000);
	extern const uint8_t ap_tramp_start[], ap_tramp_handler[], ap_tramp_iret[];
	for (unsigned v = 0x20; v < 256; v++)
		set_interrupt_gate(vm, 0x5000, v, 0x8000 + (uint32_t)(ap_tramp_iret - ap_tramp_start));
	set_interrupt_gate(vm, 0x5000, 0x41, 0x8000 + (uint32_t)(ap_tramp_handler - ap_tramp_start));

	watchdog_phase("an AP started by INIT-SIPI-SIPI, and its IPI", 30);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, ap_thread, NULL) == 0);
	while (!atomic_load(&ap_in_run))
		usleep(1000);
	CHECK_EQ(run_until_out(0x6f), 0); /* the BSP is about to send INIT */
	usleep(20000);
	CHECK(!atomic_load(&ap_started)); /* the AP's kvm_run waited */

	CHECK_EQ(run_until_out(0x70), 0xa9a9a9a9); /* the AP's marker, read by the BSP */
	CHECK_EQ(run_until_out(0x71), 0x41);       /* the AP handler's mark */
	CHECK(pthread_join(t, NULL) == 0);
	watchdog_phase("an AP started by kvm_set_mp_state", 30);
	load_blob(vm, 0x3000, BLOB(rm_report));
	CHECK(pthread_create(&t, NULL, ap_started_by_host, NULL) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	uint32_t *marks = kvm_guest_memory(vm, 0x7000, 8);
	CHECK(marks != NULL);
	CHECK_EQ(marks[0], 0xa9a9a9a9);
	CHECK_EQ(marks[1], 0x41);

	/* The BSP is vcpu 0 and runnable; the MP states read back through its thread too. */
	struct kvm_mp_state mp;
	OK(kvm_get_mp_state(&mp));
	CHECK_EQ(mp.mp_state, KVM_MP_STATE_RUNNABLE);
	end_vm(vm);
	return 0;
}
