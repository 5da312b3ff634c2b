/* 4 vcpus in 4 threads each add 1 to one guest counter 100 000 times with lock-prefixed instructions, in real mode (emulated) and in ring 3 (native): the totals are exact, and the vcpus' adds interleaved. */
#include "harness.h"
#include <pthread.h>
#include <time.h>

#define VCPUS 4
#define ADDS 100000

static int vm;
static pthread_barrier_t phase;
static double seconds[2];
/* Per phase and vcpu: the counter's value before the vcpu's first and last add. */
static uint32_t first[2][VCPUS], last[2][VCPUS];

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Runs the calling thread's vcpu through one phase: rendezvous word at `meet`, counter
 * at `counter`. */
static void add(int p, unsigned id, uint64_t meet, uint64_t counter)
{
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rsi = meet;
	r.rdi = counter;
	r.rdx = VCPUS;
	r.rcx = ADDS;
	OK(kvm_set_regs(&r));
	pthread_barrier_wait(&phase);
	double t0 = now();
	run_until_out(0x10);
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rcx & 0xffffffff, 0);
	first[p][id] = (uint32_t)r.rbp;
	last[p][id] = (uint32_t)r.rbx;
	pthread_barrier_wait(&phase);
	if (id == 0)
		seconds[p] = now() - t0;
}

static void *vcpu_thread(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	OK(kvm_create_vcpu(vm, id));
	setup_real_mode(0x1000);
	add(0, id, 0x3008, 0x3000); /* `lock xadd` through KVM's instruction emulator */
	setup_user_long_mode(vm, 0x10000, 0x4000);
	add(1, id, 0x300c, 0x3004); /* `lock xadd` as the processor runs it */
	OK(kvm_detach_vcpu());
	return NULL;
}

/* How many vcpus saw adds of others between their first and last. */
static int interleaved(int p)
{
	int n = 0;
	for (int i = 0; i < VCPUS; i++) {
		CHECK(last[p][i] - first[p][i] >= ADDS - 1);
		n += last[p][i] - first[p][i] > ADDS - 1;
	}
	return n;
}

int main(void)
{
	require_kvm();
	watchdog_phase("4 vcpus adding, in real mode and in ring 3", 120);
	vm = vm_with_memory(4 << 20);
	load_blob(vm, 0x1000, BLOB(rm_xadd));
	load_blob(vm, 0x4000, BLOB(um_xadd));
	volatile uint32_t *counters = kvm_guest_memory(vm, 0x3000, 16);
	CHECK(counters != NULL);
	CHECK(pthread_barrier_init(&phase, NULL, VCPUS) == 0);
	pthread_t t[VCPUS];
	for (uintptr_t i = 0; i < VCPUS; i++)
		CHECK(pthread_create(&t[i], NULL, vcpu_thread, (void *)i) == 0);
	for (int i = 0; i < VCPUS; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	CHECK_EQ(counters[0], VCPUS * ADDS);
	CHECK_EQ(counters[1], VCPUS * ADDS);
	CHECK_EQ(counters[2], VCPUS); /* everyone met */
	CHECK_EQ(counters[3], VCPUS);
	int mixed[2] = { interleaved(0), interleaved(1) };
	printf("%d vcpus x %d adds: real mode (emulated) %.2f s, %d vcpus saw others' adds "
	       "in between; ring 3 (native) %.4f s, %d vcpus saw others' adds\n",
	       VCPUS, ADDS, seconds[0], mixed[0], seconds[1], mixed[1]);
	/* The emulated phase is long enough that the vcpus certainly ran at the same time
	 * (the native one may finish within one time slice: its figure is for information). */
	CHECK(mixed[0] >= 2);
	OK(kvm_destroy_vm(vm));
	return 0;
}
