/* kvm_debug_guest: single-stepping stops after each guest instruction in order; a hardware breakpoint stops at its address. */
#include "harness.h"
#include <pthread.h>

#define LOAD 0x1000
#define ADDR(sym) ({ extern const uint8_t sym[]; (uint64_t)(sym - rm_steps_start + LOAD); })

extern const uint8_t rm_steps_start[];

static void debug(uint32_t control, uint64_t dr0, uint64_t dr7)
{
	struct kvm_guest_debug d;
	memset(&d, 0, sizeof(d));
	d.control = control;
	d.arch.debugreg[0] = dr0;
	d.arch.debugreg[7] = dr7;
	OK(kvm_debug_guest(&d));
}

/* One exit, which must be a debug exit at `rip` (CS base 0). */
static struct kvm_regs expect_debug(uint64_t rip)
{
	run_expect(KVM_EXIT_DEBUG);
	struct kvm_run *run = kvm_run_area();
	CHECK_EQ(run->debug.arch.exception, 1);          /* #DB */
	CHECK_EQ(run->debug.arch.pc, rip);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rip, rip);
	return r;
}

static void *no_vcpu(void *arg)
{
	struct kvm_guest_debug d;
	memset(&d, 0, sizeof(d));
	CHECK_ERR(kvm_debug_guest(&d), ESRCH);
	return arg;
}

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	load_blob(vm, LOAD, BLOB(rm_steps));
	OK(kvm_create_vcpu(vm, 0));
	setup_real_mode(LOAD);

	/* Single-step: one exit after each instruction, with its effect done. */
	debug(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP, 0, 0);
	CHECK_EQ(expect_debug(ADDR(rm_steps_1)).rax & 0xffff, 1);
	CHECK_EQ(expect_debug(ADDR(rm_steps_2)).rax & 0xffff, 2);
	CHECK_EQ(expect_debug(ADDR(rm_steps_3)).rax & 0xffff, 4);
	CHECK_EQ(expect_debug(ADDR(rm_steps_bp)).rbx & 0xffff, 4);
	CHECK_EQ(expect_debug(ADDR(rm_steps_5)).rbx & 0xffff, 5);
	/* Off again: the guest runs on to its port writes. */
	debug(0, 0, 0);
	CHECK_EQ(run_until_out(0x10), 4);
	CHECK_EQ(run_until_out(0x11), 5);
	run_expect(KVM_EXIT_HLT);

	/* Hardware breakpoint 0 on `inc %bx`: the guest stops there, before it. */
	setup_real_mode(LOAD);
	debug(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP, ADDR(rm_steps_bp), 0x1 /* L0, execute */);
	struct kvm_regs r = expect_debug(ADDR(rm_steps_bp));
	CHECK_EQ(r.rbx & 0xffff, 4);
	CHECK(kvm_run_area()->debug.arch.dr6 & 1);        /* breakpoint 0 hit */
	/* Without the breakpoint it runs on. */
	debug(0, 0, 0);
	CHECK_EQ(run_until_out(0x10), 4);
	CHECK_EQ(run_until_out(0x11), 5);
	run_expect(KVM_EXIT_HLT);

	/* A breakpoint the guest never reaches does not stop it. */
	setup_real_mode(LOAD);
	debug(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP, 0x3000, 0x1);
	CHECK_EQ(run_until_out(0x10), 4);
	debug(0, 0, 0);

	/* Bad input. */
	CHECK_ERR(kvm_debug_guest(NULL), EFAULT);
	on_thread(no_vcpu, NULL);

	end_vm(vm);
	return 0;
}
