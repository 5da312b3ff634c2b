/* Two threads each own a vcpu of one VM and run guest code at the same time. */
#include "harness.h"
#include <pthread.h>

static int vm;

static void *vcpu_thread(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	OK(kvm_create_vcpu(vm, id));
	/* A second vcpu on the same thread is refused. */
	CHECK_ERR(kvm_create_vcpu(vm, id + 10), EBUSY);
	setup_real_mode(0x1000);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rsi = 100 * (id + 1);
	r.rbx = id;
	OK(kvm_set_regs(&r));
	for (int i = 0; i < 50; i++) {
		/* Each pass re-runs the guest from the start with this thread's values. */
		CHECK_EQ(run_until_out(0x10), 200 * (id + 1));
		CHECK_EQ(run_until_out(0x11), id + 1);
		run_expect(KVM_EXIT_HLT);
		OK(kvm_get_regs(&r));
		CHECK_EQ(r.rsi, 100 * (id + 1));
		r.rip = 0x1000;
		r.rbx = id;
		OK(kvm_set_regs(&r));
	}
	OK(kvm_detach_vcpu());
	return NULL;
}

int main(void)
{
	require_kvm();
	vm = vm_with_memory(0x10000);
	load_blob(vm, 0x1000, BLOB(rm_report));
	pthread_t t[2];
	for (uintptr_t i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, vcpu_thread, (void *)i) == 0);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	OK(kvm_destroy_vm(vm));
	return 0;
}
