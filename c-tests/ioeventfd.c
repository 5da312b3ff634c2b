/* Guest writes to ioeventfd ports and MMIO addresses signal their eventfds with no exit to userspace; only writes that match nothing exit. */
#define _GNU_SOURCE
#include "harness.h"
#include <sys/eventfd.h>
#include <unistd.h>

static uint64_t count(int efd)
{
	uint64_t n = 0;
	if (read(efd, &n, 8) != 8 && errno != EAGAIN)
		FAIL("read eventfd: %s", strerror(errno));
	return n;
}

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	load_blob(vm, 0x1000, BLOB(rm_ioevent));
	int e70 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), e72 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
	    emmio = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(e70 >= 0 && e72 >= 0 && emmio >= 0);
	struct kvm_ioeventfd io70 = { .datamatch = 7, .addr = 0x70, .len = 1, .fd = e70,
		.flags = KVM_IOEVENTFD_FLAG_PIO | KVM_IOEVENTFD_FLAG_DATAMATCH };
	struct kvm_ioeventfd io72 = { .addr = 0x72, .len = 2, .fd = e72, .flags = KVM_IOEVENTFD_FLAG_PIO };
	struct kvm_ioeventfd iommio = { .addr = 0xd0000, .len = 2, .fd = emmio };
	OK(kvm_ioeventfd(vm, &io70));
	OK(kvm_ioeventfd(vm, &io72));
	OK(kvm_ioeventfd(vm, &iommio));

	OK(kvm_create_vcpu(vm, 0));
	setup_real_mode(0x1000);
	/* The three writes of 7 reach the eventfd; the first exit is the write of 8. */
	CHECK_EQ(run_until_out(0x70), 8);
	CHECK_EQ(count(e70), 3);
	CHECK_EQ(count(e72), 0);
	/* The port 0x72 and MMIO writes do not exit either. */
	run_until_out(0x71);
	CHECK_EQ(count(e72), 1);
	CHECK_EQ(count(emmio), 1);
	run_expect(KVM_EXIT_HLT);

	/* Bad requests. */
	CHECK_ERR(kvm_ioeventfd(vm, &io70), EEXIST);
	struct kvm_ioeventfd bad = io72;
	bad.addr = 0x74;
	bad.len = 3;
	CHECK_ERR(kvm_ioeventfd(vm, &bad), EINVAL);
	bad.len = 1;
	bad.fd = vm; /* not an eventfd */
	CHECK_ERR(kvm_ioeventfd(vm, &bad), EINVAL);
	bad.fd = 1000;
	CHECK_ERR(kvm_ioeventfd(vm, &bad), EBADF);
	bad.fd = e72;
	bad.flags = 1u << 15;
	CHECK_ERR(kvm_ioeventfd(vm, &bad), EINVAL);
	CHECK_ERR(kvm_ioeventfd(vm, NULL), EFAULT);
	CHECK_ERR(kvm_ioeventfd(e70, &io70), EBADF);

	/* Removed, the writes of 7 exit again. */
	io70.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	OK(kvm_ioeventfd(vm, &io70));
	CHECK_ERR(kvm_ioeventfd(vm, &io70), ENOENT);
	setup_real_mode(0x1000);
	CHECK_EQ(run_until_out(0x70), 7);
	CHECK_EQ(count(e70), 0);

	end_vm(vm);
	close(e70);
	close(e72);
	close(emmio);
	return 0;
}
