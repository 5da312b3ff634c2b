/* kvm_set_signal_mask: a signal it blocks does not interrupt the guest, one it leaves unblocked makes kvm_run return -1/EINTR, and the kick works whatever the mask. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

static int vm, vcpu_fd;
static pthread_t owner;
static volatile uint64_t *started, *go; /* um_wait_flag's words, guest 0x3000 and 0x3008 */
static atomic_int handled, kicked;

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&handled, 1);
}

enum action { SIGNAL_THEN_GO, SIGNAL_ONLY, SIGNAL_THEN_KICK };

/* Once the guest spins, sends SIGUSR1 to the owner, then (after 20 ms) lets the guest
 * finish, or kicks it, or does nothing (after 10 s it lets the guest finish, so that a
 * broken mask fails the test instead of hanging it). */
static void *meddler(void *arg)
{
	enum action a = (enum action)(intptr_t)arg;
	while (!*started)
		usleep(100);
	CHECK(pthread_kill(owner, SIGUSR1) == 0);
	usleep(20000);
	if (a == SIGNAL_THEN_GO) {
		*go = 1;
	} else if (a == SIGNAL_THEN_KICK) {
		atomic_store(&kicked, 1);
		OK(kvm_kick_vcpu(vcpu_fd));
	} else {
		for (int i = 0; i < 1000 && !atomic_load(&kicked); i++)
			usleep(10000);
		*go = 1;
	}
	return NULL;
}

/* Restarts the guest, runs it with a meddler, returns kvm_run's result. */
static int run_with(enum action a)
{
	*started = *go = 0;
	atomic_store(&kicked, 0);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rip = 0x4000;
	r.rsi = 0x3000;
	r.rdi = 0x3008;
	OK(kvm_set_regs(&r));
	pthread_t t;
	CHECK(pthread_create(&t, NULL, meddler, (void *)(intptr_t)a) == 0);
	errno = 0;
	int ret = kvm_run();
	int e = errno;
	atomic_store(&kicked, 1); /* SIGNAL_ONLY's meddler may stop waiting */
	CHECK(pthread_join(t, NULL) == 0);
	errno = e;
	return ret;
}

static void *attach_and_run(void *arg)
{
	(void)arg;
	owner = pthread_self();
	OK(kvm_attach_vcpu(vcpu_fd));
	/* The mask set on the first thread stays with the vcpu. */
	CHECK_EQ(run_with(SIGNAL_THEN_GO), KVM_EXIT_IO);
	OK(kvm_detach_vcpu());
	return NULL;
}

int main(void)
{
	require_kvm();
	watchdog_phase("setup", 30);
	struct sigaction sa = { .sa_handler = on_usr1 };
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	sigset_t usr1, all;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigfillset(&all);

	CHECK_ERR(kvm_set_signal_mask(&usr1), ESRCH);
	vm = vm_with_memory(4 << 20);
	load_blob(vm, 0x4000, BLOB(um_wait_flag));
	started = kvm_guest_memory(vm, 0x3000, 8);
	go = kvm_guest_memory(vm, 0x3008, 8);
	CHECK(started && go);
	owner = pthread_self();
	vcpu_fd = OK(kvm_create_vcpu(vm, 0));
	setup_user_long_mode(vm, 0x10000, 0x4000);

	/* SIGUSR1 blocked while the guest runs: the guest finishes, and the handler runs
	 * once kvm_run is back in the thread's own mask. */
	watchdog_phase("SIGUSR1 blocked by the run mask", 30);
	OK(kvm_set_signal_mask(&usr1));
	CHECK_EQ(run_with(SIGNAL_THEN_GO), KVM_EXIT_IO);
	CHECK_EQ(kvm_run_area()->io.port, 0x10);
	CHECK_EQ(atomic_load(&handled), 1);

	/* NULL: the thread's own mask, which lets SIGUSR1 through: EINTR, guest unfinished. */
	watchdog_phase("the thread's own mask", 30);
	OK(kvm_set_signal_mask(NULL));
	CHECK_EQ(run_with(SIGNAL_ONLY), -1);
	CHECK_EQ(errno, EINTR);
	CHECK_EQ(atomic_load(&handled), 2);

	/* An empty mask lets it through as well. */
	watchdog_phase("an empty mask", 30);
	sigset_t none;
	sigemptyset(&none);
	OK(kvm_set_signal_mask(&none));
	CHECK_EQ(run_with(SIGNAL_ONLY), -1);
	CHECK_EQ(errno, EINTR);
	CHECK_EQ(atomic_load(&handled), 3);

	/* Everything blocked, the kick signal included as far as the caller is concerned:
	 * SIGUSR1 does not interrupt, the kick does. */
	watchdog_phase("everything blocked but the kick", 30);
	OK(kvm_set_signal_mask(&all));
	CHECK_EQ(run_with(SIGNAL_THEN_KICK), -1);
	CHECK_EQ(errno, EINTR);
	CHECK(atomic_load(&kicked)); /* the kick, not SIGUSR1, ended the run */
	CHECK_EQ(*go, 0);
	CHECK_EQ(atomic_load(&handled), 4);

	/* A mask of its own stays with the vcpu on another thread. */
	watchdog_phase("the mask on another thread", 30);
	OK(kvm_set_signal_mask(&usr1));
	OK(kvm_detach_vcpu());
	pthread_t t;
	CHECK(pthread_create(&t, NULL, attach_and_run, NULL) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK_EQ(atomic_load(&handled), 5);

	CHECK_ERR(kvm_set_signal_mask(NULL), ESRCH);
	OK(kvm_destroy_vm(vm));
	return 0;
}
