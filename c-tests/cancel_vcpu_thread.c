/* pthread_cancel (deferred) of threads inside libkvm calls (first /dev/kvm open, kvm_run's EINTR path, kvm_detach_vcpu, kvm_save_vcpu, kvm_destroy_vm) neither aborts nor is acted on there; the cancelled thread's vcpu is released when it exits. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

static int vm, vcpu_fd;
static volatile uint64_t *counter; /* um_spin's counter, guest 0x3000 */
static atomic_int ready, go;
/* What the cancelled thread saw; written before its last cancellation point. */
static int r_open = -2, r_run = -2, e_run, r_detach = -2, r_attach = -2, r_save = -2;
static int r_destroy = -2, r_create = -2, e_create;

/* The functions of the threads that are cancelled. AddressSanitizer does not unpoison
 * the stack redzones of frames that a cancellation unwinds, so the thread's exit
 * (libkvm's thread-local destructor, which releases the vcpu) would later be reported
 * for touching that stack: these frames get no redzones (make check-asan). */
#define CANCELLED __attribute__((no_sanitize_address))

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Tells the main thread it is ready and waits, without a cancellation point, until the
 * main thread has cancelled it: the cancellation is then pending at the next one. */
static void wait_for_cancel(void)
{
	atomic_store(&ready, 1);
	while (!atomic_load(&go))
		;
}

/* Cancels `t` once it is ready, then joins it: it must end cancelled. `kick` keeps
 * kicking vcpu_fd meanwhile (a thread inside the guest needs it to leave). */
static void cancel_and_join(pthread_t t, int kick)
{
	double deadline = now() + 30;
	while (!atomic_load(&ready)) {
		if (now() > deadline)
			FAIL("the thread did not get ready");
		usleep(100);
	}
	CHECK(pthread_cancel(t) == 0);
	atomic_store(&go, 1);
	void *res;
	for (;;) {
		if (kick)
			OK(kvm_kick_vcpu(vcpu_fd));
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		int e = pthread_timedjoin_np(t, &res, &ts);
		if (e == 0)
			break;
		CHECK_EQ(e, ETIMEDOUT);
		if (now() > deadline)
			FAIL("the cancelled thread did not end");
	}
	if (res != PTHREAD_CANCELED)
		FAIL("the thread was not cancelled (it returned %p)", res);
	atomic_store(&ready, 0);
	atomic_store(&go, 0);
}

/* The first call that needs /dev/kvm opens it, with a cancellation pending. */
CANCELLED static void *first_open(void *arg)
{
	(void)arg;
	wait_for_cancel();
	r_open = kvm_get_api_version();
	pthread_testcancel();
	return NULL;
}

/* Owns the vcpu and runs the endless guest; a kick ends kvm_run with EINTR (the
 * cancellation pending since before kvm_run), then the thread's own cancellation point. */
CANCELLED static void *run_guest(void *arg)
{
	(void)arg;
	OK(kvm_attach_vcpu(vcpu_fd));
	wait_for_cancel();
	errno = 0;
	r_run = kvm_run();
	e_run = errno;
	pthread_testcancel();
	return NULL;
}

/* Detaches and attaches with a cancellation pending, then is cancelled at its own
 * cancellation point while it owns the vcpu. */
CANCELLED static void *detach_attach(void *arg)
{
	(void)arg;
	OK(kvm_attach_vcpu(vcpu_fd));
	wait_for_cancel();
	/* A kick pending on the thread: detaching drains it. */
	OK(kvm_kick_vcpu(vcpu_fd));
	r_detach = kvm_detach_vcpu();
	r_attach = kvm_attach_vcpu(vcpu_fd);
	/* Saving completes a pending exit with KVM_RUN; its EINTR path drains too. */
	OK(kvm_kick_vcpu(vcpu_fd));
	size_t len = 0;
	errno = 0;
	r_save = kvm_save_vcpu(NULL, &len);
	if (r_save == -1 && errno == E2BIG) /* only asked for the size */
		r_save = 0;
	pthread_testcancel();
	return NULL;
}

/* A whole VM lifetime with a cancellation pending: create, vcpu, destroy (which closes
 * the fds). */
CANCELLED static void *lifetime(void *arg)
{
	(void)arg;
	wait_for_cancel();
	int v = kvm_create_vm();
	if (v >= 0 && kvm_set_memory_region(v, 0, 0, 0, 0x10000) == 0) {
		errno = 0;
		r_create = kvm_create_vcpu(v, 0);
		e_create = errno;
		if (r_create >= 0)
			kvm_detach_vcpu();
		r_destroy = kvm_destroy_vm(v);
	}
	pthread_testcancel();
	return NULL;
}

/* Cancellation disabled around the calls: nothing changes, and the thread is cancelled
 * at its first cancellation point after enabling it again. */
CANCELLED static void *disabled(void *arg)
{
	(void)arg;
	int old;
	CHECK(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old) == 0);
	OK(kvm_attach_vcpu(vcpu_fd));
	wait_for_cancel();
	OK(kvm_kick_vcpu(vcpu_fd));
	errno = 0;
	r_run = kvm_run();
	e_run = errno;
	r_detach = kvm_detach_vcpu();
	r_attach = kvm_attach_vcpu(vcpu_fd);
	CHECK(pthread_setcancelstate(old, NULL) == 0);
	pthread_testcancel();
	FAIL("not cancelled at pthread_testcancel");
	return NULL;
}

static void start(void *(*fn)(void *), int kick)
{
	pthread_t t;
	CHECK(pthread_create(&t, NULL, fn, NULL) == 0);
	cancel_and_join(t, kick);
}

/* The cancelled thread's vcpu is free again: this thread takes it, and it still runs
 * the guest (the counter moves until a SIGALRM ends kvm_run). */
static void vcpu_still_works(const char *where)
{
	if (kvm_attach_vcpu(vcpu_fd) != 0)
		FAIL("%s: the cancelled thread's vcpu cannot be attached: %s", where, strerror(errno));
	uint64_t before = *counter;
	double deadline = now() + 10;
	watchdog_start(20);
	/* The first EINTRs may answer kicks of the cancelled thread still owed. */
	while (*counter == before && now() < deadline) {
		errno = 0;
		int r = kvm_run();
		if (r != -1 || errno != EINTR)
			FAIL("%s: kvm_run returned %d (%s)", where, r, r == -1 ? strerror(errno) : exit_name(r));
	}
	watchdog_stop();
	if (*counter == before)
		FAIL("%s: the guest did not run", where);
	OK(kvm_detach_vcpu());
}

int main(int argc, char **argv)
{
	require_kvm();
	/* Must be the first call of the process that needs /dev/kvm. */
	const char *only = argc > 1 ? argv[1] : NULL;
	if (!only || !strcmp(only, "open")) {
		start(first_open, 0);
		CHECK(r_open >= 0);
	}

	vm = vm_with_memory(0x200000);
	load_blob(vm, 0x4000, BLOB(um_spin));
	counter = kvm_guest_memory(vm, 0x3000, 8);
	CHECK(counter);
	vcpu_fd = OK(kvm_create_vcpu(vm, 0));
	setup_user_long_mode(vm, 0x10000, 0x4000);
	struct kvm_regs regs;
	OK(kvm_get_regs(&regs));
	regs.rdi = 0x3000;
	OK(kvm_set_regs(&regs));
	OK(kvm_detach_vcpu());

	if (!only || !strcmp(only, "run")) {
		start(run_guest, 1);
		CHECK_EQ(r_run, -1);
		CHECK_EQ(e_run, EINTR);
		vcpu_still_works("run");
	}
	if (!only || !strcmp(only, "detach")) {
		start(detach_attach, 0);
		CHECK_EQ(r_detach, 0);
		CHECK_EQ(r_attach, 0);
		CHECK_EQ(r_save, 0);
		vcpu_still_works("detach");
	}
	if (!only || !strcmp(only, "destroy")) {
		int fds = count_kvm_fds();
		start(lifetime, 0);
		if (r_create < 0)
			FAIL("kvm_create_vcpu failed: %s", strerror(e_create));
		CHECK_EQ(r_destroy, 0);
		CHECK_EQ(count_kvm_fds(), fds);
	}
	if (!only || !strcmp(only, "disabled")) {
		r_run = r_detach = r_attach = -2;
		start(disabled, 0);
		CHECK_EQ(r_run, -1);
		CHECK_EQ(e_run, EINTR);
		CHECK_EQ(r_detach, 0);
		CHECK_EQ(r_attach, 0);
		vcpu_still_works("disabled");
	}
	OK(kvm_destroy_vm(vm));
	return 0;
}
