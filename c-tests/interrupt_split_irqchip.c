/* With a split irqchip (KVM_CAP_SPLIT_IRQCHIP) kvm_interrupt goes through the in-kernel local APIC, and vcpu snapshots carry the LAPIC. */
#include "harness.h"

#define LOAD 0x1000
#define HANDLER(sym) ({ extern const uint8_t sym[]; (uint16_t)(sym - rm_apic_start + LOAD); })
#define SVR 0xf0 /* spurious-interrupt vector register in struct kvm_lapic_state */

extern const uint8_t rm_apic_start[];

static uint32_t svr(void)
{
	struct kvm_lapic_state l;
	OK(kvm_get_lapic(&l));
	uint32_t v;
	memcpy(&v, &l.regs[SVR], 4);
	return v;
}

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	if (kvm_check_extension(vm, KVM_CAP_SPLIT_IRQCHIP) <= 0)
		skip_test("KVM_CAP_SPLIT_IRQCHIP is 0");
	struct kvm_enable_cap cap = {.cap = KVM_CAP_SPLIT_IRQCHIP, .args = {24}};
	OK(kvm_enable_cap(vm, &cap));
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

	/* The local APIC is the kernel's: before the guest enables it, it refuses. */
	run_until_out(0x0f);
	CHECK_ERR(kvm_interrupt(0x40), EAGAIN);
	run_until_out(0x10);
	OK(kvm_interrupt(0x40));
	CHECK_EQ(run_until_out(0x30) & 0xff, 0x40);
	run_until_out(0x11);

	/* The snapshot carries the LAPIC: the guest's SVR comes back after a change. */
	CHECK_EQ(svr() & 0x1ff, 0x1ff);
	size_t len = 0;
	CHECK_ERR(kvm_save_vcpu(NULL, &len), E2BIG);
	void *blob = malloc(len);
	CHECK(blob != NULL);
	OK(kvm_save_vcpu(blob, &len));
	struct kvm_lapic_state l;
	OK(kvm_get_lapic(&l));
	l.regs[SVR + 1] &= ~1; /* software-disable the APIC */
	OK(kvm_set_lapic(&l));
	CHECK_EQ(svr() & 0x100, 0);
	OK(kvm_restore_vcpu(blob, len));
	CHECK_EQ(svr() & 0x1ff, 0x1ff);
	free(blob);

	/* Interrupts off: the APIC holds it until the guest's sti. */
	run_until_out(0x12);
	OK(kvm_interrupt(0x41));
	run_until_out(0x13);
	CHECK_EQ(run_until_out(0x30) & 0xff, 0x41);
	run_until_out(0x14);
	CHECK_EQ(*(uint8_t *)kvm_guest_memory(vm, 0x500, 1), 2);
	CHECK_EQ(kvm_run_area()->request_interrupt_window, 0);
	OK(kvm_detach_vcpu());
	OK(kvm_destroy_vm(vm));
	return 0;
}
