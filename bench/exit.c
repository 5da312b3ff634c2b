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
	/* arg: what the kernel is asked to copy into the run area on each exit. */
	raw.run->kvm_valid_regs = arg ? *(uint64_t *)arg : 0;
	uint64_t t0 = now_ns();
	for (long i = 0; i < iters; i++)
		if (ioctl(raw.vcpu, KVM_RUN, 0) < 0 || raw.run->exit_reason != KVM_EXIT_IO)
			DIE("raw: unexpected exit (%s)", strerror(errno));
	return (double)(now_ns() - t0) / (double)iters;
}

static double raw_round_none(void *arg)
{
	(void)arg;
	return raw_round(NULL);
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

	/* Why libkvm stops asking for registers the thread no longer reads: the kernel's
	 * copy on every exit, here raw with everything against raw with nothing. */
	static uint64_t all = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS;
	static uint64_t sregs = KVM_SYNC_X86_SREGS;
	bench_labels[0] = "copy";
	bench_labels[1] = "none";
	compare("1 raw, kernel copies regs+sregs+events out", bench_rounds(101) / 2 + 1,
		raw_round, raw_round_none, &all, 0);
	compare("1 raw, kernel copies sregs out", bench_rounds(101) / 2 + 1, raw_round,
		raw_round_none, &sregs, 0);

	raw_vm_destroy(&raw);
	TRY(kvm_detach_vcpu());
	TRY(kvm_destroy_vm(vm));
	return 0;
}
