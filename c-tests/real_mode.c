/* A real-mode guest does port I/O and arithmetic on values from the host. */
#include "harness.h"

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	real_mode_vcpu(vm, 0, 0x1000, BLOB(rm_arith));

	EDIT_REGS(r, r.rbx = 1234; r.rcx = 5);

	CHECK_EQ(run_until_out(0x10), 0x1335);
	CHECK_EQ(run_until_out(0x11), 0x266a);

	/* The guest reads a byte from port 0x12: supply 21 in the run area. */
	run_expect(KVM_EXIT_IO);
	struct kvm_run *run = kvm_run_area();
	CHECK_EQ(run->io.direction, KVM_EXIT_IO_IN);
	CHECK_EQ(run->io.port, 0x12);
	CHECK_EQ(run->io.size, 1);
	*((uint8_t *)run + run->io.data_offset) = 21;
	CHECK_EQ(run_until_out(0x13) & 0xff, 42);

	CHECK_EQ(run_until_out(0x14), 1234 * 5);
	run_expect(KVM_EXIT_HLT);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rax & 0xffff, 1234 * 5);
	CHECK_EQ(r.rip, 0x1000 + (BLOB(rm_arith).end - BLOB(rm_arith).start));

	end_vm(vm);
	return 0;
}
