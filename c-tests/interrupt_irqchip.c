/* kvm_interrupt with the in-kernel irqchip delivers through the local APIC to the guest's handler. */
#include "harness.h"


int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	apic_guest_vcpu(vm);

	/* Refused before the guest enables its local APIC; the handler runs once it has. */
	apic_guest_first_interrupt();

	/* Interrupts off: the APIC holds it until the guest's sti; the refused one never
	 * arrived; no interrupt window was asked for. */
	apic_guest_held_interrupt(vm);
	CHECK_ERR(kvm_interrupt(256), EINVAL);
	end_vm(vm);
	return 0;
}
