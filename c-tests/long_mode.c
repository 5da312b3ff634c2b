/* A 64-bit guest on the harness's page tables computes a 64-bit value into memory. */
#include "harness.h"

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(4 << 20);
	load_blob(vm, 0x4000, BLOB(lm_compute));
	OK(kvm_create_vcpu(vm, 0));
	setup_long_mode(vm, 0x10000, 0x4000);
	EDIT_REGS(r, r.r8 = 0x1111111111111111ULL);

	const uint64_t want = 0x123456789abcdef0ULL + 0x1111111111111111ULL;
	CHECK_EQ(run_until_out(0x30), (uint32_t)want);
	run_expect(KVM_EXIT_HLT);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rax, want);
	uint64_t *mem = kvm_guest_memory(vm, 0x200008, 8);
	CHECK(mem != NULL);
	CHECK_EQ(*mem, want);

	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	CHECK_EQ(s.cs.l, 1);
	CHECK(s.efer & 0x400); /* LMA */

	end_vm(vm);
	return 0;
}
