/* kvm_interrupt reaches the calling vcpu's x2APIC when KVM_CAP_X2APIC_API reports 32-bit APIC IDs. */
#include "harness.h"

#define LOAD 0x1000

extern const uint8_t rm_x2apic_start[], rm_x2apic_h40[];

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	if (kvm_check_extension(vm, KVM_CAP_X2APIC_API) <= 0)
		skip_test("KVM_CAP_X2APIC_API is 0");
	OK(kvm_create_irqchip(vm));
	struct kvm_enable_cap cap = {.cap = KVM_CAP_X2APIC_API, .args = {KVM_X2APIC_API_USE_32BIT_IDS}};
	OK(kvm_enable_cap(vm, &cap));
	load_blob(vm, LOAD, BLOB(rm_x2apic));
	uint16_t *ivt = real_mode_ivt(vm);
	ivt[0x40 * 2] = (uint16_t)(rm_x2apic_h40 - rm_x2apic_start + LOAD);

	/* Vcpu 0 exists (APIC ID 0, its APIC never enabled); the guest runs on vcpu 1. */
	OK(kvm_create_vcpu(vm, 0));
	OK(kvm_detach_vcpu());
	OK(kvm_create_vcpu(vm, 1));
	/* The guest's CPUID must offer x2APIC for it to be enabled. */
	set_supported_cpuid();
	/* With the in-kernel irqchip vcpu 1 waits for INIT/SIPI: make it run. */
	struct kvm_mp_state mp = {KVM_MP_STATE_RUNNABLE};
	OK(kvm_set_mp_state(&mp));
	setup_real_mode(LOAD);
	EDIT_REGS(r, r.rsp = 0x8000);

	run_until_out(0x10);
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	CHECK(s.apic_base & (1 << 10)); /* x2APIC mode */
	/* With 32-bit IDs, KVM_GET_LAPIC shows ID 1 as 1, not 1 << 24: the interrupt must
	 * still go to vcpu 1, not to vcpu 0. */
	OK(kvm_interrupt(0x40));
	CHECK_EQ(run_until_out(0x30) & 0xff, 0x40);
	run_until_out(0x11);
	CHECK_EQ(*(uint8_t *)kvm_guest_memory(vm, 0x500, 1), 1);
	end_vm(vm);
	return 0;
}
