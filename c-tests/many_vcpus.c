/* 256 vcpus in 256 threads each run their guest to HLT at once; once all are released (half detach, half exit owning theirs) and the VM destroyed, no fd or mapping remains. */
#include "harness.h"
#include <pthread.h>

#define N 256

static int vm;
static pthread_barrier_t all_ran;

static void *vcpu_thread(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	OK(kvm_create_vcpu(vm, id));
	setup_real_mode(0x1000);
	EDIT_REGS(r, r.rdi = 0x4000 + 4 * id; r.rax = 0xc0de0000 | id);
	run_expect(KVM_EXIT_HLT);
	pthread_barrier_wait(&all_ran); /* all N vcpus exist, owned, at once */
	if (id % 2)
		OK(kvm_detach_vcpu());
	return NULL; /* even ids exit owning their vcpu */
}

int main(void)
{
	require_kvm();
	CHECK(kvm_get_api_version() == 12); /* opens /dev/kvm before the baseline */
	int fds0 = count_fds(), kvm0 = count_kvm_fds(), maps0 = count_kvm_mappings();
	if (kvm_check_extension(-1, KVM_CAP_MAX_VCPUS) < N)
		skip_test("KVM_CAP_MAX_VCPUS is below 256");

	vm = vm_with_memory(0x10000);
	load_blob(vm, 0x1000, BLOB(rm_store_halt));
	CHECK(pthread_barrier_init(&all_ran, NULL, N) == 0);
	pthread_attr_t attr;
	CHECK(pthread_attr_init(&attr) == 0);
	CHECK(pthread_attr_setstacksize(&attr, 256 << 10) == 0);
	pthread_t t[N];
	for (uintptr_t i = 0; i < N; i++)
		CHECK(pthread_create(&t[i], &attr, vcpu_thread, (void *)i) == 0);
	for (int i = 0; i < N; i++)
		CHECK(pthread_join(t[i], NULL) == 0);

	uint32_t *words = kvm_guest_memory(vm, 0x4000, 4 * N);
	CHECK(words != NULL);
	for (uint32_t i = 0; i < N; i++)
		CHECK_EQ(words[i], 0xc0de0000 | i);
	/* Released but not destroyed: the VM and its vcpus are still there. */
	CHECK_EQ(count_kvm_fds(), kvm0 + 1 + N * kvm_fds_per_vcpu());
	CHECK_EQ(count_kvm_mappings(), maps0 + N);
	OK(kvm_destroy_vm(vm));
	CHECK_EQ(count_kvm_fds(), kvm0);
	CHECK_EQ(count_kvm_mappings(), maps0);
	CHECK_EQ(count_fds(), fds0);
	return 0;
}
