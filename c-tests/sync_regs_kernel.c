/* Register state the kernel changes outside the register calls reads back right on both paths: an INIT accepted by kvm_get_mp_state(), a run interrupted while the vcpu waits for INIT. */
#include "harness.h"
#include <signal.h>
#include <sys/time.h>

/* An INIT sent to the vcpu is accepted by the kernel when the owner asks for the MP
 * state, which resets the registers: reads after it give the reset values, not those the
 * kernel copied out at the last exit. */
static void init_accepted_by_get_mp_state(void)
{
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	real_mode_vcpu(vm, 0, 0x1000, BLOB(rm_report));
	/* The local APIC accepts the INIT below only when software-enabled. */
	struct kvm_lapic_state lapic;
	OK(kvm_get_lapic(&lapic));
	*(uint32_t *)&lapic.regs[0xf0] |= 0x100; /* SVR: APIC enabled */
	OK(kvm_set_lapic(&lapic));
	struct kvm_regs r;
	struct kvm_sregs s;
	OK(kvm_get_regs(&r));
	r.rsi = 21;
	OK(kvm_set_regs(&r));
	CHECK_EQ(run_until_out(0x10), 42);
	/* Read everything once so that the kernel copies it out on the next exits. */
	OK(kvm_get_regs(&r));
	OK(kvm_get_sregs(&s));
	CHECK_EQ(run_until_out(0x11), 1);
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rbx, 1);
	OK(kvm_get_sregs(&s));
	CHECK_EQ(s.cs.selector, 0);

	/* INIT to APIC 0, as another vcpu or a device would send it. */
	struct kvm_msi msi = { .address_lo = 0xfee00000, .data = 0x500 };
	CHECK_EQ(kvm_signal_msi(vm, &msi), 1);
	struct kvm_mp_state mp;
	OK(kvm_get_mp_state(&mp));
	CHECK_EQ(mp.mp_state, KVM_MP_STATE_RUNNABLE); /* the BSP runs again after INIT */
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rip, 0xfff0);
	CHECK_EQ(r.rbx, 0);
	CHECK_EQ(r.rsi, 0);
	OK(kvm_get_sregs(&s));
	CHECK_EQ(s.cs.selector, 0xf000);
	/* And the raw ioctl agrees. */
	OK(kvm_vcpu_ioctl(KVM_GET_REGS, &r));
	CHECK_EQ(r.rip, 0xfff0);

	end_vm(vm);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* An application processor waits for INIT inside KVM_RUN, which a signal interrupts
 * before the kernel loads registers set since the last run; the kernel still copies its
 * own registers out over them. The registers set are those the vcpu keeps. */
static void run_interrupted_while_waiting_for_init(void)
{
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	load_blob(vm, 0x1000, BLOB(rm_report));
	OK(kvm_create_vcpu(vm, 1));
	struct kvm_mp_state mp;
	OK(kvm_get_mp_state(&mp));
	CHECK_EQ(mp.mp_state, KVM_MP_STATE_UNINITIALIZED);
	EDIT_REGS(r, r.rbx = 0x5a5a);

	struct sigaction sa = { .sa_handler = on_alarm };
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
	struct itimerval it = { .it_value = { .tv_usec = 20000 } };
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	int ret;
	do {
		errno = 0;
		ret = kvm_run();
		/* Nothing else may change the pending registers either. */
		if (ret == -1 && errno == EAGAIN)
			continue;
	} while (ret == -1 && errno == EAGAIN);
	CHECK_EQ(ret, -1);
	CHECK_EQ(errno, EINTR);

	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rbx, 0x5a5a);
	OK(kvm_vcpu_ioctl(KVM_GET_REGS, &r));
	CHECK_EQ(r.rbx, 0x5a5a);

	/* Let it run: the guest sees the value. */
	mp.mp_state = KVM_MP_STATE_RUNNABLE;
	OK(kvm_set_mp_state(&mp));
	EDIT_SREGS(s, s.cs.selector = 0; s.cs.base = 0);
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rbx, 0x5a5a);
	r.rip = 0x1000;
	r.rsi = 3;
	OK(kvm_set_regs(&r));
	CHECK_EQ(run_until_out(0x10), 6);
	CHECK_EQ(run_until_out(0x11), 0x5a5b);

	end_vm(vm);
}

int main(void)
{
	require_kvm();
	for (int slow = 0; slow < 2; slow++) {
		/* Second pass: the fast path off for the vcpus created from now on. */
		if (slow)
			CHECK(setenv("LIBKVM_NO_SYNC_REGS", "1", 1) == 0);
		init_accepted_by_get_mp_state();
		run_interrupted_while_waiting_for_init();
	}
	return 0;
}
