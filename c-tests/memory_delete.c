/* kvm_set_memory_region with size 0 deletes the slot whatever guest_phys_addr says. */
#include "harness.h"

int main(void)
{
	require_kvm();
	int vm = OK(kvm_create_vm());
	OK(kvm_set_memory_region(vm, 1, 0, 0x100000, 0x2000));
	uint8_t *p = kvm_guest_memory(vm, 0x100000, 1);
	CHECK(p != NULL);
	*p = 0x5a;
	/* guest_phys_addr is ignored for a deletion, even an unaligned one. */
	OK(kvm_set_memory_region(vm, 1, 0, 0x1234, 0));
	CHECK_ERR(kvm_guest_memory(vm, 0x100000, 1), EFAULT);
	CHECK_ERR(kvm_set_memory_region(vm, 1, 0, 0x100000, 0), ENOENT);
	/* The slot number and the range are free again: a new, zeroed slot. */
	OK(kvm_set_memory_region(vm, 1, 0, 0x100000, 0x1000));
	p = kvm_guest_memory(vm, 0x100000, 1);
	CHECK(p != NULL);
	CHECK_EQ(*p, 0);
	OK(kvm_destroy_vm(vm));
	return 0;
}
