/* Guest MMIO and port writes to coalesced zones reach kvm_coalesced_mmio_next's ring in order, without exits. */
#include "harness.h"

static void expect_entry(int vm, uint64_t addr, uint32_t len, uint32_t pio, uint64_t data)
{
	struct kvm_coalesced_mmio e;
	memset(&e, 0xff, sizeof(e));
	CHECK_EQ(OK(kvm_coalesced_mmio_next(vm, &e)), 1);
	CHECK_EQ(e.phys_addr, addr);
	CHECK_EQ(e.len, len);
	CHECK_EQ(e.pio, pio);
	uint64_t v = 0;
	memcpy(&v, e.data, len);
	CHECK_EQ(v, data);
}

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	struct kvm_coalesced_mmio e;
	CHECK_EQ(OK(kvm_coalesced_mmio_next(vm, &e)), 0);      /* no vcpu: nothing yet */
	protected_mode_vcpu(vm, 0, 0x2000, BLOB(pm_coalesced));

	struct kvm_coalesced_mmio_zone mmio = { .addr = 0xd0000000, .size = 0x1000 };
	OK(kvm_register_coalesced_mmio(vm, &mmio));
	int have_pio = kvm_check_extension(vm, KVM_CAP_COALESCED_PIO) > 0;
	struct kvm_coalesced_mmio_zone pio = { .addr = 0x300, .size = 1, .pio = 1 };
	if (have_pio)
		OK(kvm_register_coalesced_mmio(vm, &pio));
	else
		skip_section("coalesced port I/O", "KVM_CAP_COALESCED_PIO is 0");

	CHECK_EQ(OK(kvm_coalesced_mmio_next(vm, &e)), 0);
	if (have_pio) {
		run_until_out(0x30);        /* no exit before: all writes were coalesced */
	} else {
		run_expect(KVM_EXIT_IO);    /* port 0x300 exits */
		run_until_out(0x30);
	}
	expect_entry(vm, 0xd0000000, 4, 0, 0x11);
	expect_entry(vm, 0xd0000010, 1, 0, 0x22);
	expect_entry(vm, 0xd0000020, 2, 0, 0x3344);
	if (have_pio)
		expect_entry(vm, 0x300, 1, 1, 0x55);
	CHECK_EQ(OK(kvm_coalesced_mmio_next(vm, &e)), 0);

	/* Unregistered: the next write exits as plain MMIO. */
	OK(kvm_unregister_coalesced_mmio(vm, &mmio));
	run_expect(KVM_EXIT_MMIO);
	struct kvm_run *run = kvm_run_area();
	check_mmio(0xd0000000, 4, 1);
	CHECK_EQ(*(uint32_t *)run->mmio.data, 0x66);
	run_expect(KVM_EXIT_HLT);
	CHECK_EQ(OK(kvm_coalesced_mmio_next(vm, &e)), 0);

	CHECK_ERR(kvm_register_coalesced_mmio(vm, NULL), EFAULT);
	CHECK_ERR(kvm_unregister_coalesced_mmio(vm, NULL), EFAULT);
	CHECK_ERR(kvm_coalesced_mmio_next(vm, NULL), EFAULT);
	CHECK_ERR(kvm_register_coalesced_mmio(-1, &mmio), EBADF);
	CHECK_ERR(kvm_coalesced_mmio_next(-1, &e), EBADF);
	end_vm(vm);
	return 0;
}
