/* kvm_save_vcpu with an INIT pending: reading the MP state accepts it and resets the vcpu, and what libkvm reports afterwards is the reset state, not a stale copy. */
#include "harness.h"

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	uint8_t *code = kvm_guest_memory(vm, 0x1000, 4);
	CHECK(code != NULL);
	memcpy(code, "\xe6\x10\xeb\xfe", 4); /* out %al, $0x10; jmp . */
	OK(kvm_create_vcpu(vm, 0));
	setup_real_mode(0x1000);
	/* Enable the local APIC (SVR bit 8), so that it takes the INIT below. */
	struct kvm_lapic_state l;
	OK(kvm_get_lapic(&l));
	l.regs[0xf1] |= 1;
	OK(kvm_set_lapic(&l));
	run_until_out(0x10);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rip, 0x1002); /* now in libkvm's copy of the run area's registers */

	/* An NMI pending, which the INIT's reset drops. */
	struct kvm_vcpu_events e;
	OK(kvm_get_vcpu_events(&e));
	e.nmi.pending = 1;
	e.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING;
	OK(kvm_set_vcpu_events(&e));
	/* INIT to APIC ID 0 as a message-signalled interrupt (delivery mode 101b). */
	struct kvm_msi msi = {.address_lo = 0xfee00000, .data = 0x500};
	CHECK_EQ(OK(kvm_signal_msi(vm, &msi)), 1);
	size_t len = 0;
	CHECK_ERR(kvm_save_vcpu(NULL, &len), E2BIG);
	/* The INIT reset the vcpu (to 0xf000:0xfff0): no stale copy of the old registers. */
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	OK(kvm_get_regs(&r));
	CHECK_EQ(s.cs.selector, 0xf000);
	CHECK_EQ(r.rip, 0xfff0);
	OK(kvm_get_vcpu_events(&e));
	CHECK_EQ(e.nmi.pending, 0);
	void *blob = malloc(len);
	CHECK(blob != NULL);
	OK(kvm_save_vcpu(blob, &len));
	free(blob);
	end_vm(vm);
	return 0;
}
