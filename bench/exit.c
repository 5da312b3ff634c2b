/* Benchmark 1: the plain exit loop, kvm_run() against ioctl(KVM_RUN). */
#include "bench.h"
#include <sys/ioctl.h>

static long iters;
static struct raw_vm raw;

static double lib_round(void *arg)
{
	(void)arg;
	uint64_t t0 = now_ns();
	for (long i = 0; i < iters; i++)
		if (kvm_run() != KVM_EXIT_IO)
			DIE("libkvm: unexpected exit (%s)", strerror(errno));
	return (double)(now_ns() - t0) / (double)iters;
}

static double raw_round(void *arg)
{
	(void)arg;
	uint64_t t0 = now_ns();
	for (long i = 0; i < iters; i++)
		if (ioctl(raw.vcpu, KVM_RUN, 0) < 0 || raw.run->exit_reason != KVM_EXIT_IO)
			DIE("raw: unexpected exit (%s)", strerror(errno));
	return (double)(now_ns() - t0) / (double)iters;
}

int main(void)
{
	iters = bench_iters(500);
	int vm = lib_vm_create(0x10000, 0, 0x1000, BLOB(bench_out));
	TRY(kvm_create_vcpu(vm, 0));
	/* Set up through libkvm as an application would (this reads the special
	 * registers once). */
	lib_setup_real_mode(0x1000);

	raw_vm_create(&raw, 0x10000, 0);
	raw_vcpu_create(&raw, 0);
	raw_load(&raw, 0x1000, BLOB(bench_out));
	raw_setup_real_mode(&raw, 0x1000);

	/* Warm up both; 200 exits are also enough for libkvm to stop asking the kernel
	 * for the special registers read once at setup (an epoch is 64 exits). */
	for (int i = 0; i < 200; i++) {
		lib_run_expect(KVM_EXIT_IO);
		raw_run_expect(&raw, KVM_EXIT_IO);
	}
	compare("1 exit loop (kvm_run)", bench_rounds(101), lib_round, raw_round, NULL, 1.02);

	raw_vm_destroy(&raw);
	TRY(kvm_detach_vcpu());
	TRY(kvm_destroy_vm(vm));
	return 0;
}
