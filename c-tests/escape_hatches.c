/* kvm_vm_ioctl and kvm_vcpu_ioctl keep libkvm's state true: registers set either way are what the other way and the guest see; the requests libkvm owns are refused. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>

static void *no_vcpu(void *arg)
{
	struct kvm_regs r;
	CHECK_ERR(kvm_vcpu_ioctl(KVM_GET_REGS, &r), ESRCH);
	return arg;
}

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	load_blob(vm, 0x1000, BLOB(rm_report));
	/* VM hatch: a plain request works; those that change what libkvm tracks do not. */
	CHECK_EQ(OK(kvm_vm_ioctl(vm, KVM_CHECK_EXTENSION, (void *)(uintptr_t)KVM_CAP_IRQCHIP)), 1);
	struct kvm_userspace_memory_region region = { .slot = 1, .guest_phys_addr = 0x100000,
		.memory_size = 0x1000, .userspace_addr = (uintptr_t)kvm_guest_memory(vm, 0, 0x1000) };
	CHECK_ERR(kvm_vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region), EINVAL);
	CHECK_ERR(kvm_vm_ioctl(vm, KVM_CREATE_VCPU, (void *)1), EINVAL);
	CHECK_ERR(kvm_vm_ioctl(vm, KVM_CREATE_IRQCHIP, NULL), EINVAL);
	/* The kernel truncates the request to 32 bits: high bits must not smuggle one in. */
	CHECK_ERR(kvm_vm_ioctl(vm, (1UL << 32) | KVM_CREATE_IRQCHIP, NULL), EINVAL);
	CHECK_ERR(kvm_vm_ioctl(vm, (1UL << 32) | KVM_CHECK_EXTENSION, (void *)(uintptr_t)KVM_CAP_IRQCHIP), EINVAL);
	CHECK_ERR(kvm_system_ioctl((1UL << 32) | KVM_CREATE_VM, NULL), EINVAL);
	CHECK_ERR(kvm_vm_ioctl(-1, KVM_CHECK_EXTENSION, NULL), EBADF);
	CHECK_ERR(kvm_vm_ioctl(vm, _IO(KVMIO, 0xff), NULL), ENOTTY); /* the kernel's own error */
	struct kvm_pit_config pit = { 0 };
	CHECK_ERR(kvm_vm_ioctl(vm, KVM_CREATE_PIT2, &pit), ENOENT);

	on_thread(no_vcpu, NULL);

	OK(kvm_create_vcpu(vm, 0));
	setup_real_mode(0x1000);
	struct kvm_regs r, raw;
	OK(kvm_get_regs(&r));
	r.rsi = 0x1111;
	r.rbx = 0x41;
	OK(kvm_set_regs(&r)); /* pending in the sync area where the kernel has it */
	/* The raw KVM_GET_REGS sees what kvm_set_regs set. */
	OK(kvm_vcpu_ioctl(KVM_GET_REGS, &raw));
	CHECK_EQ(raw.rsi, 0x1111);
	CHECK_EQ(raw.rbx, 0x41);
	CHECK_EQ(run_until_out(0x10), 0x2222); /* and so does the guest */

	/* Right after an exit kvm_get_regs is served from the sync area; a raw KVM_SET_REGS
	 * makes that copy stale, and kvm_get_regs and the guest see the raw write. */
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rax & 0xffff, 0x2222);
	OK(kvm_vcpu_ioctl(KVM_GET_REGS, &raw));
	raw.rbx = 0x1233;
	raw.rax = 0x5555;
	OK(kvm_vcpu_ioctl(KVM_SET_REGS, &raw));
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rbx, 0x1233);
	CHECK_EQ(r.rax, 0x5555);
	CHECK_EQ(run_until_out(0x11), 0x1234);
	run_expect(KVM_EXIT_HLT);

	/* The same with sregs: a raw write is what kvm_get_sregs reads. */
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	OK(kvm_vcpu_ioctl(KVM_GET_SREGS, &s));
	s.es.base = 0x20;
	s.es.selector = 2;
	OK(kvm_vcpu_ioctl(KVM_SET_SREGS, &s));
	struct kvm_sregs s2;
	OK(kvm_get_sregs(&s2));
	CHECK_EQ(s2.es.base, 0x20);

	/* Requests libkvm must issue itself. */
	CHECK_ERR(kvm_vcpu_ioctl(KVM_RUN, NULL), EINVAL);
	CHECK_ERR(kvm_vcpu_ioctl((1UL << 32) | KVM_RUN, NULL), EINVAL);
	struct { struct kvm_signal_mask m; uint8_t set[8]; } mask = { { 8 }, { 0 } };
	CHECK_ERR(kvm_vcpu_ioctl(KVM_SET_SIGNAL_MASK, &mask), EINVAL);
	CHECK_ERR(kvm_vcpu_ioctl(KVM_GET_REGS, NULL), EFAULT); /* the kernel's own error */

	end_vm(vm);
	return 0;
}
