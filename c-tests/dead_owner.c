/* A vcpu whose owner thread ended without its cleanup (raw SYS_exit, also of a thread inside kvm_run) is kicked, attached and destroyed as a detached one; a thread that siglongjmp()ed out of kvm_run can detach, run again and exit. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int vm, vcpu_fd;
static volatile uint64_t *counter; /* um_spin's counter, guest 0x3000 */
static atomic_int phase;
static atomic_int dying_tid; /* of the thread about to end raw */

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Waits until the guest counter moves (the vcpu runs on some thread). */
static void wait_guest_runs(void)
{
	uint64_t c = *counter;
	double deadline = now() + 30;
	while (*counter == c) {
		if (now() > deadline)
			FAIL("the guest did not run");
		usleep(100);
	}
}

/* The calling thread's vcpu runs the endless ring-3 loop um_spin. */
static void setup_spin(void)
{
	setup_user_long_mode(vm, 0x10000, 0x4000);
	EDIT_REGS(regs, regs.rdi = 0x3000);
}

/* Runs the vcpu on the calling thread until a SIGALRM ends kvm_run; the guest must
 * have made progress. */
static void run_a_little(const char *where)
{
	uint64_t before = *counter;
	watchdog_start(20);
	errno = 0;
	int r = kvm_run();
	watchdog_stop();
	if (r != -1 || errno != EINTR)
		FAIL("%s: kvm_run returned %d (%s)", where, r, r == -1 ? strerror(errno) : exit_name(r));
	if (*counter == before)
		FAIL("%s: the guest did not run", where);
}

/* Creates (arg NULL) or attaches the vcpu and ends the thread with a raw exit: no
 * thread-local destructor runs. */
static void *raw_exit(void *arg)
{
	if (arg)
		OK(kvm_attach_vcpu(vcpu_fd));
	else {
		vcpu_fd = OK(kvm_create_vcpu(vm, 0));
		setup_spin();
	}
	atomic_store(&dying_tid, gettid());
	syscall(SYS_exit, 0);
	return NULL;
}

/* Starts `fn` on a thread that ends raw, and waits until the kernel has reaped it. The
 * thread is never joined: glibc would reuse its stack for a later thread, which
 * AddressSanitizer's runtime cannot follow after a raw exit (make check-asan). */
static void run_raw_thread(void *(*fn)(void *), void *arg, int sig)
{
	pthread_t t;
	atomic_store(&dying_tid, 0);
	CHECK(pthread_create(&t, NULL, fn, arg) == 0);
	if (sig) {
		wait_guest_runs();
		CHECK(pthread_kill(t, sig) == 0);
	}
	double deadline = now() + 30;
	int tid;
	while (!(tid = atomic_load(&dying_tid)) || syscall(SYS_tgkill, getpid(), tid, 0) == 0) {
		if (now() > deadline)
			FAIL("the thread did not end");
		usleep(100);
	}
	CHECK_EQ(errno, ESRCH);
}

/* Ends the thread with a raw exit from a signal handler while it is inside kvm_run. */
static void exit_from_handler(int sig)
{
	(void)sig;
	syscall(SYS_exit, 0);
}

static void *dies_in_kvm_run(void *arg)
{
	(void)arg;
	OK(kvm_attach_vcpu(vcpu_fd));
	atomic_store(&dying_tid, gettid());
	errno = 0;
	int r = kvm_run();
	FAIL("kvm_run returned %d (%s)", r, strerror(errno));
	return NULL;
}

static sigjmp_buf jump;
static void jump_out(int sig)
{
	(void)sig;
	siglongjmp(jump, 1);
}

static int r_detach = -2, e_detach, r_attach = -2, r_run = -2, e_run, jumped;

/* Runs the guest until SIGUSR1's handler siglongjmp()s out of kvm_run, then detaches,
 * attaches, runs again and exits owning the vcpu. */
static void *jumps_out(void *arg)
{
	(void)arg;
	OK(kvm_attach_vcpu(vcpu_fd));
	if (sigsetjmp(jump, 1) == 0) {
		atomic_store(&phase, 1);
		errno = 0;
		int r = kvm_run();
		FAIL("kvm_run returned %d (%s) before the signal", r, strerror(errno));
	}
	jumped = 1;
	errno = 0;
	r_detach = kvm_detach_vcpu();
	e_detach = errno;
	r_attach = kvm_attach_vcpu(vcpu_fd);
	/* Once more, now with a kick to end it. */
	OK(kvm_kick_vcpu(vcpu_fd));
	errno = 0;
	r_run = kvm_run();
	e_run = errno;
	return NULL;
}

/* A vcpu whose owner is gone must behave as a detached one. */
static void check_orphan(const char *where)
{
	if (kvm_kick_vcpu(vcpu_fd) != 0)
		FAIL("%s: kvm_kick_vcpu of an orphaned vcpu: %s", where, strerror(errno));
	if (kvm_attach_vcpu(vcpu_fd) != 0)
		FAIL("%s: kvm_attach_vcpu of an orphaned vcpu: %s", where, strerror(errno));
	/* The kick is answered by the next kvm_run, on the new owner. */
	errno = 0;
	int r = kvm_run();
	if (r != -1 || errno != EINTR)
		FAIL("%s: the kick was lost: kvm_run returned %d", where, r);
	run_a_little(where);
	OK(kvm_detach_vcpu());
}

int main(void)
{
	require_kvm();
	vm = vm_with_memory(0x200000);
	load_blob(vm, 0x4000, BLOB(um_spin));
	counter = kvm_guest_memory(vm, 0x3000, 8);
	CHECK(counter);
	pthread_t t;

	/* The thread that created the vcpu exits raw: kick, attach and run work. */
	run_raw_thread(raw_exit, NULL, 0);
	check_orphan("raw exit after create");

	/* Again after an attach, and then the VM is destroyed without attaching first. */
	run_raw_thread(raw_exit, (void *)1, 0);
	check_orphan("raw exit after attach");
	run_raw_thread(raw_exit, (void *)1, 0);
	if (kvm_destroy_vm(vm) != 0)
		FAIL("kvm_destroy_vm with an orphaned vcpu: %s", strerror(errno));
	if (count_kvm_fds() != 0 || count_kvm_mappings() != 0)
		FAIL("kvm_destroy_vm left %d fds and %d mappings", count_kvm_fds(), count_kvm_mappings());

	/* The owner dies inside kvm_run (SIGUSR2's handler exits the thread raw). */
	vm = vm_with_memory(0x200000);
	load_blob(vm, 0x4000, BLOB(um_spin));
	counter = kvm_guest_memory(vm, 0x3000, 8);
	vcpu_fd = OK(kvm_create_vcpu(vm, 0));
	setup_spin();
	OK(kvm_detach_vcpu());
	struct sigaction sa = { .sa_handler = exit_from_handler };
	CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
	run_raw_thread(dies_in_kvm_run, NULL, SIGUSR2);
	check_orphan("raw exit inside kvm_run");

	/* A handler siglongjmp()s out of kvm_run: the thread can still detach. */
	sa.sa_handler = jump_out;
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	CHECK(pthread_create(&t, NULL, jumps_out, NULL) == 0);
	double deadline = now() + 30;
	while (!atomic_load(&phase)) {
		if (now() > deadline)
			FAIL("the thread did not start");
		usleep(100);
	}
	wait_guest_runs();
	CHECK(pthread_kill(t, SIGUSR1) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(jumped);
	if (r_detach != 0)
		FAIL("kvm_detach_vcpu after siglongjmp out of kvm_run: %s", strerror(e_detach));
	CHECK_EQ(r_attach, 0);
	CHECK_EQ(r_run, -1);
	CHECK_EQ(e_run, EINTR);
	/* It exited owning the vcpu: released as at any thread exit. */
	OK(kvm_attach_vcpu(vcpu_fd));
	run_a_little("after siglongjmp");
	end_vm(vm);
	return 0;
}
