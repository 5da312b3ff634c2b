/* An internal panic (injected with LIBKVM_TEST_PANIC) comes out as -1 or NULL with ENOTRECOVERABLE, prints nothing, releases its locks, and libkvm keeps working. */
/*
 * LIBKVM_TEST_PANIC=<fd> makes every lookup of VM <fd> panic inside libkvm while the
 * registry lock is held (src/error.rs, test_panic_point; read once, at the first VM
 * lookup of the process). The library under test is the one `make` builds: if it were
 * built with panic = "abort", this test would die of SIGABRT instead of passing.
 */
#define _GNU_SOURCE
#include "harness.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

static int poisoned, healthy;

/* Runs `call` with stderr redirected to a pipe; fails if libkvm wrote anything. */
#define SILENT(call) ({ int p_[2]; CHECK(pipe2(p_, O_CLOEXEC | O_NONBLOCK) == 0); \
	fflush(stderr); int saved_ = dup(2); dup2(p_[1], 2); \
	__typeof__(call) r_ = (call); int e_ = errno; \
	dup2(saved_, 2); close(saved_); char c_; \
	if (read(p_[0], &c_, 1) == 1) FAIL("%s wrote to stderr", #call); \
	close(p_[0]); close(p_[1]); errno = e_; r_; })

static void *panics_too(void *arg)
{
	(void)arg;
	for (int i = 0; i < 200; i++) {
		CHECK_ERR(kvm_set_memory_region(poisoned, 1, 0, 0x100000, 4096), ENOTRECOVERABLE);
		CHECK(kvm_guest_memory(healthy, 0x1000, 1) != NULL);
	}
	return NULL;
}

int main(void)
{
	require_kvm();
	/* kvm_create_vm looks nothing up: make both VMs, then name the one to poison. */
	poisoned = OK(kvm_create_vm());
	healthy = OK(kvm_create_vm());
	char fd[16];
	snprintf(fd, sizeof(fd), "%d", poisoned);
	CHECK(setenv("LIBKVM_TEST_PANIC", fd, 1) == 0);

	/* Every kind of entry point: int, pointer, fd-creating, pass-through. */
	CHECK_ERR(SILENT(kvm_set_memory_region(poisoned, 0, 0, 0, 0x10000)), ENOTRECOVERABLE);
	CHECK_ERR(SILENT(kvm_guest_memory(poisoned, 0, 1)), ENOTRECOVERABLE);
	CHECK_ERR(SILENT(kvm_create_vcpu(poisoned, 0)), ENOTRECOVERABLE);
	CHECK_ERR(SILENT(kvm_check_extension(poisoned, KVM_CAP_USER_MEMORY)), ENOTRECOVERABLE);
	CHECK_ERR(SILENT(kvm_vm_ioctl(poisoned, KVM_CHECK_EXTENSION, NULL)), ENOTRECOVERABLE);
	CHECK_ERR(SILENT(kvm_create_irqchip(poisoned)), ENOTRECOVERABLE);
	CHECK_EQ(count_kvm_fds(), 2); /* the failed kvm_create_vcpu left no fd */

	/* The locks the panics held were released: the other VM works, from this thread
	 * and from another that keeps hitting the panic at the same time. */
	OK(kvm_set_memory_region(healthy, 0, 0, 0, 0x10000));
	pthread_t t;
	CHECK(pthread_create(&t, NULL, panics_too, NULL) == 0);
	real_mode_vcpu(healthy, 0, 0x1000, BLOB(rm_report));
	EDIT_REGS(r, r.rsi = 0x1234);
	CHECK_EQ(run_until_out(0x10), 0x2468);
	CHECK(pthread_join(t, NULL) == 0);

	/* fork() takes the locks too: it would hang if a panic had leaked one. */
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		CHECK_ERR(kvm_guest_memory(poisoned, 0, 1), EBADF); /* inherited: not the child's */
		exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);

	/* Destroying needs no lookup: the poisoned VM goes away cleanly. */
	OK(kvm_destroy_vm(poisoned));
	end_vm(healthy);
	printf("6 kinds of entry point panicked: -1/NULL with ENOTRECOVERABLE, nothing printed, "
	       "locks released\n");
	return 0;
}
