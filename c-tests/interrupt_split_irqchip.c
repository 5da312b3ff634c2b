/* With a split irqchip (KVM_CAP_SPLIT_IRQCHIP) kvm_interrupt goes through the in-kernel local APIC, and vcpu snapshots carry the LAPIC. */
#include "harness.h"

#define SVR 0xf0 /* spurious-interrupt vector register in struct kvm_lapic_state */

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
	apic_guest_vcpu(vm);

	/* The local APIC is the kernel's: before the guest enables it, it refuses. */
	apic_guest_first_interrupt();

	/* The snapshot carries the LAPIC: the guest's SVR comes back after a change. */
	CHECK_EQ(svr() & 0x1ff, 0x1ff);
	size_t len;
	uint8_t *blob = save_vcpu_blob(&len);
	struct kvm_lapic_state l;
	OK(kvm_get_lapic(&l));
	l.regs[SVR + 1] &= ~1; /* software-disable the APIC */
	OK(kvm_set_lapic(&l));
	CHECK_EQ(svr() & 0x100, 0);
	OK(kvm_restore_vcpu(blob, len));
	CHECK_EQ(svr() & 0x1ff, 0x1ff);
	free(blob);

	/* Interrupts off: the APIC holds it until the guest's sti. */
	apic_guest_held_interrupt(vm);
	end_vm(vm);
	return 0;
}
