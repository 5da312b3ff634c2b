/* kvm_set_kick_signal before the first vcpu: the chosen signal carries the kicks and the default one is left alone; bad signals are refused, and any change once a vcpu exists. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static int vcpu_fd;
static volatile uint64_t *spin;

static void *kick_later(void *arg)
{
	(void)arg;
	while (*spin < 1000)
		usleep(100);
	OK(kvm_kick_vcpu(vcpu_fd));
	return NULL;
}

static int is_default(int sig)
{
	struct sigaction sa;
	CHECK(sigaction(sig, NULL, &sa) == 0);
	return sa.sa_handler == SIG_DFL;
}

int main(void)
{
	require_kvm();
	watchdog_phase("setup", 30);
	int bad[] = { 0, -1, SIGKILL, SIGSTOP, SIGSEGV, SIGINT, SIGCHLD, 32, SIGRTMAX + 1, 1000 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_ERR(kvm_set_kick_signal(bad[i]), EINVAL);
	OK(kvm_set_kick_signal(SIGRTMIN));
	OK(kvm_set_kick_signal(SIGUSR2)); /* the last choice counts */
	CHECK(is_default(SIGUSR2));

	int vm = vm_with_memory(4 << 20);
	OK(kvm_set_kick_signal(SIGUSR2)); /* still no vcpu */
	load_blob(vm, 0x4000, BLOB(um_spin));
	spin = kvm_guest_memory(vm, 0x3000, 8);
	CHECK(spin != NULL);
	vcpu_fd = OK(kvm_create_vcpu(vm, 0));
	CHECK(!is_default(SIGUSR2));
	CHECK(is_default(SIGRTMIN));
	CHECK(is_default(SIGRTMAX - 3)); /* the default kick signal is not taken */
	sigset_t cur;
	CHECK(pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0);
	CHECK(sigismember(&cur, SIGUSR2));
	CHECK_ERR(kvm_set_kick_signal(SIGUSR1), EBUSY);
	CHECK_ERR(kvm_set_kick_signal(SIGUSR2), EBUSY);

	setup_user_long_mode(vm, 0x10000, 0x4000);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rdi = 0x3000;
	OK(kvm_set_regs(&r));
	watchdog_phase("a kick through the chosen signal", 30);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, kick_later, NULL) == 0);
	errno = 0;
	CHECK_EQ(kvm_run(), -1);
	CHECK_EQ(errno, EINTR);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(*spin >= 1000);

	watchdog_phase("teardown", 30);
	OK(kvm_detach_vcpu());
	CHECK(pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0);
	CHECK(!sigismember(&cur, SIGUSR2));
	OK(kvm_destroy_vm(vm));
	CHECK_ERR(kvm_set_kick_signal(SIGUSR1), EBUSY); /* a vcpu existed in this process */
	return 0;
}
