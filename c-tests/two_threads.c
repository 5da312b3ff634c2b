/* Two threads each own a vcpu of one VM and run guest code at the same time: each keeps its own registers over 50 runs, and a rendezvous in guest memory completes only while both vcpus run at once. */
#include "harness.h"
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

/* A rendezvous that never completes (the vcpus were serialised) would spin forever. */
static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "two_threads: watchdog: the vcpus did not run at the same time\n";
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

static int vm;

static void *vcpu_thread(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	OK(kvm_create_vcpu(vm, id));
	/* A second vcpu on the same thread is refused. */
	CHECK_ERR(kvm_create_vcpu(vm, id + 10), EBUSY);
	setup_real_mode(0x1000);
	EDIT_REGS(r, r.rsi = 100 * (id + 1); r.rbx = id);
	for (int i = 0; i < 50; i++) {
		/* Each pass re-runs the guest from the start with this thread's values. */
		CHECK_EQ(run_until_out(0x10), 200 * (id + 1));
		CHECK_EQ(run_until_out(0x11), id + 1);
		run_expect(KVM_EXIT_HLT);
		struct kvm_regs r;
		OK(kvm_get_regs(&r));
		CHECK_EQ(r.rsi, 100 * (id + 1));
		r.rip = 0x1000;
		r.rbx = id;
		OK(kvm_set_regs(&r));
	}
	/* The rendezvous: this vcpu's flag set, the other's awaited, inside the guest. */
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rip = 0x2000;
	r.rbx = id;
	OK(kvm_set_regs(&r));
	CHECK_EQ(run_until_out(0x12), id);
	run_expect(KVM_EXIT_HLT);
	OK(kvm_detach_vcpu());
	return NULL;
}

int main(void)
{
	require_kvm();
	vm = vm_with_memory(0x10000);
	load_blob(vm, 0x1000, BLOB(rm_report));
	load_blob(vm, 0x2000, BLOB(rm_rendezvous));
	signal(SIGALRM, on_alarm);
	alarm(30);
	pthread_t t[2];
	for (uintptr_t i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, vcpu_thread, (void *)i) == 0);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	alarm(0);
	uint16_t *flags = kvm_guest_memory(vm, 0x3000, 4);
	CHECK(flags != NULL);
	CHECK_EQ(flags[0], 1);
	CHECK_EQ(flags[1], 1);
	OK(kvm_destroy_vm(vm));
	return 0;
}
