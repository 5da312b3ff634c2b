/* kvm_destroy_vm fails with EBUSY while vcpus of the VM run in other threads, and succeeds, leaving nothing behind, once those threads have detached or exited. */
#include "harness.h"
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define N 3

static int vm;
static atomic_int fds[N];

static void *vcpu_thread(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	int fd = OK(kvm_create_vcpu(vm, id));
	/* Page tables of its own: another thread's setup must not rewrite the tables
	 * this vcpu is running on. */
	setup_user_long_mode(vm, 0x10000 + 0x3000 * id, 0x4000);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rdi = 0x3000 + 8 * id;
	OK(kvm_set_regs(&r));
	atomic_store(&fds[id], fd);
	errno = 0;
	CHECK_EQ(kvm_run(), -1); /* an endless loop, until kicked */
	CHECK_EQ(errno, EINTR);
	if (id != 1)
		OK(kvm_detach_vcpu());
	return NULL; /* vcpu 1's thread exits owning it */
}

int main(void)
{
	require_kvm();
	watchdog_phase("vcpus running in other threads, each until kicked", 30);
	CHECK(kvm_get_api_version() == 12);
	int fds0 = count_fds(), kvm0 = count_kvm_fds(), maps0 = count_kvm_mappings();
	vm = vm_with_memory(4 << 20);
	load_blob(vm, 0x4000, BLOB(um_spin));
	volatile uint64_t *counters = kvm_guest_memory(vm, 0x3000, 8 * N);
	CHECK(counters != NULL);

	pthread_t t[N];
	for (uintptr_t i = 0; i < N; i++)
		CHECK(pthread_create(&t[i], NULL, vcpu_thread, (void *)i) == 0);
	for (int i = 0; i < N; i++) /* every guest is running */
		while (!counters[i])
			usleep(1000);

	CHECK_ERR(kvm_destroy_vm(vm), EBUSY);
	for (int i = 0; i < N; i++) {
		OK(kvm_kick_vcpu(atomic_load(&fds[i])));
		CHECK(pthread_join(t[i], NULL) == 0);
		if (i < N - 1)
			CHECK_ERR(kvm_destroy_vm(vm), EBUSY); /* the others still run */
	}
	OK(kvm_destroy_vm(vm));
	CHECK_EQ(count_kvm_fds(), kvm0);
	CHECK_EQ(count_kvm_mappings(), maps0);
	CHECK_EQ(count_fds(), fds0);
	CHECK_ERR(kvm_kick_vcpu(atomic_load(&fds[0])), EBADF);
	CHECK_ERR(kvm_destroy_vm(vm), EBADF);
	return 0;
}
