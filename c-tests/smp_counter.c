/* 4 vcpus in 4 threads each add 1 to one guest counter 100 000 times with a lock-prefixed instruction, in real mode (emulated) and in ring 3 (native): the totals are exact. */
#include "harness.h"
#include <pthread.h>
#include <time.h>

#define VCPUS 4
#define ADDS 100000

static int vm;
static pthread_barrier_t start;
static double phase_time[2];

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void *vcpu_thread(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	OK(kvm_create_vcpu(vm, id));
	struct kvm_regs r;

	/* Real mode: `lock xadd` through KVM's instruction emulator. */
	setup_real_mode(0x1000);
	OK(kvm_get_regs(&r));
	r.rdi = 0x3000;
	r.rcx = ADDS;
	OK(kvm_set_regs(&r));
	pthread_barrier_wait(&start);
	double t0 = now();
	CHECK_EQ(run_until_out(0x10), 0);
	run_expect(KVM_EXIT_HLT);
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rcx & 0xffffffff, 0);
	pthread_barrier_wait(&start);
	if (id == 0)
		phase_time[0] = now() - t0;

	/* 64-bit ring 3: `lock incl` as the hardware runs it. */
	setup_user_long_mode(vm, 0x10000, 0x4000);
	OK(kvm_get_regs(&r));
	r.rdi = 0x3004;
	r.rcx = ADDS;
	OK(kvm_set_regs(&r));
	pthread_barrier_wait(&start);
	t0 = now();
	run_until_out(0x10);
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rcx, 0);
	pthread_barrier_wait(&start);
	if (id == 0)
		phase_time[1] = now() - t0;
	OK(kvm_detach_vcpu());
	return NULL;
}

int main(void)
{
	require_kvm();
	vm = vm_with_memory(4 << 20);
	load_blob(vm, 0x1000, BLOB(rm_xadd));
	load_blob(vm, 0x4000, BLOB(um_incl));
	volatile uint32_t *counters = kvm_guest_memory(vm, 0x3000, 8);
	CHECK(counters != NULL);
	CHECK(pthread_barrier_init(&start, NULL, VCPUS) == 0);
	pthread_t t[VCPUS];
	for (uintptr_t i = 0; i < VCPUS; i++)
		CHECK(pthread_create(&t[i], NULL, vcpu_thread, (void *)i) == 0);
	for (int i = 0; i < VCPUS; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	CHECK_EQ(counters[0], VCPUS * ADDS);
	CHECK_EQ(counters[1], VCPUS * ADDS);
	printf("%d vcpus x %d adds: lock xadd in real mode %.2f s, lock incl in ring 3 %.3f s\n",
	       VCPUS, ADDS, phase_time[0], phase_time[1]);
	OK(kvm_destroy_vm(vm));
	return 0;
}
