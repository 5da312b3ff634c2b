/* kvm_create_vcpu that fails after creating the vcpu (called while its thread is being torn down) leaves no vcpu registered, keeps only the kernel vcpu (one fd), and the retry with that id succeeds. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>

static int vm;
static pthread_key_t key;
static int result = 1, err;

/* Runs after the thread's own thread-locals are gone, libkvm's included. */
static void at_exit(void *arg)
{
	(void)arg;
	errno = 0;
	result = kvm_create_vcpu(vm, 1);
	err = errno;
}

static void *thread(void *arg)
{
	(void)arg;
	/* Touch libkvm's thread-local, so that it is torn down before the key. */
	CHECK_ERR(kvm_run(), ESRCH);
	CHECK(pthread_setspecific(key, (void *)1) == 0);
	return NULL;
}

int main(void)
{
	require_kvm();
	vm = vm_with_memory(0x10000);
	OK(kvm_create_vcpu(vm, 0));
	OK(kvm_detach_vcpu());
	CHECK(pthread_key_create(&key, at_exit) == 0);
	int before = count_kvm_fds();
	on_thread(thread, NULL);
	if (result != -1) {
		/* The C library ran the key destructor first: nothing to test here. */
		OK(kvm_destroy_vm(vm));
		skip_test("this C library runs pthread key destructors before thread-locals' "
			  "(the order the test needs)");
	}
	CHECK_EQ(err, ESRCH);
	/* The kernel cannot delete the vcpu it created: libkvm keeps that one fd (closed by
	 * kvm_destroy_vm) for a retry with the same id, which completes it. */
	CHECK_EQ(count_kvm_fds(), before + 1);
	int fd = kvm_create_vcpu(vm, 1);
	if (fd < 0)
		FAIL("retry of vcpu 1: %s", strerror(errno));
	CHECK_EQ(count_kvm_fds(), before + kvm_fds_per_vcpu());
	end_vm(vm);
	return 0;
}
