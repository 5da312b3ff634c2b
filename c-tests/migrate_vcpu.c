/* A vcpu moves between threads with detach/attach and keeps its registers, including
 * ones set but not yet loaded by the kernel. */
#include "harness.h"
#include <pthread.h>

static int vm, vcpu_fd;

static void *second_owner(void *arg)
{
	(void)arg;
	CHECK_ERR(kvm_run(), ESRCH);
	OK(kvm_attach_vcpu(vcpu_fd));
	/* The register written on the first thread, not yet run, is still there. */
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rbx, 0xabcd);
	CHECK_EQ(run_until_out(0x11), 0xabce);
	run_expect(KVM_EXIT_HLT);
	OK(kvm_detach_vcpu());
	return NULL;
}

static void *intruder(void *arg)
{
	(void)arg;
	CHECK_ERR(kvm_attach_vcpu(vcpu_fd), EBUSY);
	return NULL;
}

int main(void)
{
	require_kvm();
	vm = vm_with_memory(0x10000);
	vcpu_fd = real_mode_vcpu(vm, 0, 0x1000, BLOB(rm_report));
	EDIT_REGS(r, r.rsi = 7);
	CHECK_EQ(run_until_out(0x10), 14);

	/* Owned here: another thread cannot take it. */
	on_thread(intruder, NULL);

	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rbx = 0xabcd;
	OK(kvm_set_regs(&r));
	OK(kvm_detach_vcpu());
	CHECK_ERR(kvm_detach_vcpu(), ESRCH);
	CHECK_ERR(kvm_get_regs(&r), ESRCH);

	on_thread(second_owner, NULL);

	/* Back on the first thread: the state the second thread left is there. */
	OK(kvm_attach_vcpu(vcpu_fd));
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rax & 0xffff, 0xabce);
	CHECK_EQ(r.rbx, 0xabce);
	end_vm(vm);
	return 0;
}
