/* A 32-bit protected-mode guest loops, stores its result in memory and reports it. */
#include "harness.h"

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	protected_mode_vcpu(vm, 0, 0x2000, BLOB(pm_sum));
	EDIT_REGS(r, r.rcx = 100);

	CHECK_EQ(run_until_out(0x20), 5050);
	run_expect(KVM_EXIT_HLT);
	uint32_t *result = kvm_guest_memory(vm, 0x3000, 4);
	CHECK(result != NULL);
	CHECK_EQ(*result, 5050);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rcx, 0);

	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	CHECK(s.cr0 & 1);
	CHECK_EQ(s.cs.db, 1);

	end_vm(vm);
	return 0;
}
