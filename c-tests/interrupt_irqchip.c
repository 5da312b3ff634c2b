/* kvm_interrupt with the in-kernel irqchip delivers through the local APIC to the guest's handler. */
#include "harness.h"

#define LOAD 0x1000
#define HANDLER(sym) ({ extern const uint8_t sym[]; (uint16_t)(sym - rm_apic_start + LOAD); })

extern const uint8_t rm_apic_start[];

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	load_blob(vm, LOAD, BLOB(rm_apic));
	uint16_t *ivt = kvm_guest_memory(vm, 0, 0x400);
	CHECK(ivt != NULL);
	ivt[0x40 * 2] = HANDLER(rm_apic_h40);
	ivt[0x41 * 2] = HANDLER(rm_apic_h41);
	OK(kvm_create_vcpu(vm, 0));
	setup_unreal_mode(LOAD); /* reaches the APIC at 0xfee00000 */
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rsp = 0x8000;
	OK(kvm_set_regs(&r));

	/* Before the guest enables its local APIC, the APIC refuses the interrupt. */
	run_until_out(0x0f);
	CHECK_ERR(kvm_interrupt(0x40), EAGAIN);

	/* Interrupts on: the handler runs. */
	run_until_out(0x10);
	OK(kvm_interrupt(0x40));
	CHECK_EQ(run_until_out(0x30) & 0xff, 0x40);
	run_until_out(0x11);

	/* Interrupts off: the APIC holds it until the guest's sti. */
	run_until_out(0x12);
	OK(kvm_interrupt(0x41));
	run_until_out(0x13);
	CHECK_EQ(run_until_out(0x30) & 0xff, 0x41);
	run_until_out(0x14);
	/* The refused interrupt never arrived: two handler runs in all. */
	CHECK_EQ(*(uint8_t *)kvm_guest_memory(vm, 0x500, 1), 2);

	/* The in-kernel path never needs an interrupt window. */
	CHECK_EQ(kvm_run_area()->request_interrupt_window, 0);
	CHECK_ERR(kvm_interrupt(256), EINVAL);
	OK(kvm_detach_vcpu());
	OK(kvm_destroy_vm(vm));
	return 0;
}
