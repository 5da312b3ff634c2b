/* 10 000 create/run/destroy cycles of a VM with memory and vcpus: fds, mappings and resident memory stay flat. */
#include "harness.h"
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

static int vm;

static void *exits_owning_a_vcpu(void *arg)
{
	(void)arg;
	OK(kvm_create_vcpu(vm, 2));
	setup_real_mode(0x1000);
	run_expect(KVM_EXIT_HLT);
	return NULL; /* the thread's exit gives the vcpu up */
}

static void cycle(int i, void *user)
{
	vm = vm_with_memory(0x10000);
	OK(kvm_set_memory_region(vm, 1, KVM_MEM_LOG_DIRTY_PAGES, 0x100000, 0x200000));
	OK(kvm_set_user_memory_region(vm, 2, 0, 0x400000, 0x2000, user));
	*(uint8_t *)kvm_guest_memory(vm, 0x1000, 1) = 0xf4; /* hlt */
	OK(kvm_create_vcpu(vm, 0));
	setup_real_mode(0x1000);
	run_expect(KVM_EXIT_HLT);
	OK(kvm_detach_vcpu());
	OK(kvm_create_vcpu(vm, 1));
	OK(kvm_detach_vcpu());
	if (i % 500 == 0) {
		on_thread(exits_owning_a_vcpu, NULL);
	}
	OK(kvm_destroy_vm(vm));
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void)
{
	require_kvm();
	/* Under valgrind or AddressSanitizer (make check-valgrind, check-asan) their own
	 * mappings and memory come and go: their leak checks take over from the counts of
	 * mappings and resident memory. Valgrind runs fewer cycles. */
	const char *inst = getenv("LIBKVM_TEST_INSTRUMENTED");
	int instrumented = inst != NULL;
	const char *env = getenv("LEAK_CYCLES");
	int n = env ? atoi(env) : inst && strcmp(inst, "valgrind") == 0 ? 5000 : 10000;
	void *user = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(user != MAP_FAILED);

	/* Warm up (the first thread, /dev/kvm, allocator arenas), then take the baseline. */
	for (int i = 0; i < 50; i++)
		cycle(i, user);
	int fds0 = count_fds(), maps0 = count_mappings();
	long rss0 = proc_status_kb("VmRSS"), size0 = proc_status_kb("VmSize");
	check_no_kvm_leaks("after the warm-up");

	double t0 = now();
	for (int i = 1; i <= n; i++) {
		cycle(i, user);
		if (i % 1000 == 0) {
			/* Fds and mappings exactly back, every thousand cycles. */
			check_no_kvm_leaks("between cycles");
			CHECK_EQ(count_fds(), fds0);
			if (!instrumented)
				CHECK_EQ(count_mappings(), maps0);
			if (getenv("LEAK_VERBOSE"))
				printf("%d: VmRSS %ld kB\n", i, proc_status_kb("VmRSS"));
		}
	}
	double secs = now() - t0;
	check_no_kvm_leaks("after the cycles");
	CHECK_EQ(count_fds(), fds0);
	if (!instrumented)
		CHECK_EQ(count_mappings(), maps0);
	long rss = proc_status_kb("VmRSS"), size = proc_status_kb("VmSize");
	printf("%d cycles in %.1f s (%.0f us each); VmRSS %ld -> %ld kB, VmSize %ld -> %ld kB, "
	       "%d fds, %d mappings\n", n, secs, secs / n * 1e6, rss0, rss, size0, size, fds0, maps0);
	/* Flat: a leak of even 100 bytes a cycle would show as 1 MB here. */
	if (!instrumented && (rss > rss0 + 512 || size > size0 + 512))
		FAIL("memory grew: VmRSS %ld -> %ld kB, VmSize %ld -> %ld kB", rss0, rss, size0, size);
	munmap(user, 0x2000);
	return 0;
}
