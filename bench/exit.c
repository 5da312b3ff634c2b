/* Benchmark 1: the plain exit loop, kvm_run() against ioctl(KVM_RUN); and, raw against
 * raw, what the kernel's own work on each KVM_RUN costs where libkvm asks for it. */
#include "bench.h"
#include <sys/ioctl.h>

static long iters;

/* One raw side: a vcpu, and what the kernel copies into its run area on each exit. */
struct raw_side {
	struct raw_vm vm;
	uint64_t valid_regs;
};

static struct raw_side raw, raw_masked;

static double lib_round(void *arg)
{
	(void)arg;
	return lib_exit_loop(iters);
}

static double raw_round(void *arg)
{
	struct raw_side *s = arg;
	s->vm.run->kvm_valid_regs = s->valid_regs;
	return raw_exit_loop(&s->vm, iters);
}

/* The plain raw side, whatever the argument (for raw-against-raw lines). */
static double raw_plain_round(void *arg)
{
	(void)arg;
	uint64_t valid = raw.valid_regs;
	raw.valid_regs = 0;
	double t = raw_round(&raw);
	raw.valid_regs = valid;
	return t;
}

static void raw_setup(struct raw_side *s)
{
	raw_vm_create(&s->vm, 0x10000, 0);
	raw_vcpu_create(&s->vm, 0);
	raw_load(&s->vm, 0x1000, BLOB(bench_out));
	raw_setup_real_mode(&s->vm, 0x1000);
}

int main(void)
{
	iters = bench_iters(500);
	int rounds = bench_rounds(101);
	int vm = lib_vm_create(0x10000, 0, 0x1000, BLOB(bench_out));
	TRY(kvm_create_vcpu(vm, 0));
	/* Set up through libkvm as an application would (this reads the special
	 * registers once). */
	lib_setup_real_mode(0x1000);

	raw_setup(&raw);
	/* A raw vcpu with a signal mask of its own, as the kick makes libkvm set on every
	 * vcpu (and QEMU on its own): the kernel swaps the thread's signal mask on every
	 * entry and exit. */
	raw_setup(&raw_masked);
	struct {
		struct kvm_signal_mask h;
		uint64_t set;
	} mask = { .h.len = 8, .set = 0 };
	TRY(ioctl(raw_masked.vm.vcpu, KVM_SET_SIGNAL_MASK, &mask));

	/* Warm up; 200 exits are also enough for libkvm to stop asking the kernel for
	 * the special registers read once at setup (an epoch is 64 exits). */
	for (int i = 0; i < 200; i++) {
		lib_run_expect(KVM_EXIT_IO);
		raw_run_expect(&raw.vm, KVM_EXIT_IO);
		raw_run_expect(&raw_masked.vm, KVM_EXIT_IO);
	}
	compare("1 exit loop (kvm_run)", rounds, lib_round, raw_round, &raw, 1.02);
	bench_labels[1] = "rawmsk";
	compare("1 the same, raw with a vcpu signal mask", rounds / 2 + 1, lib_round, raw_round,
		&raw_masked, 0);

	/* What the kernel's work costs, raw against raw. */
	bench_labels[0] = "mask";
	bench_labels[1] = "none";
	compare("1 raw, vcpu signal mask set", rounds / 2 + 1, raw_round, raw_plain_round,
		&raw_masked, 0);
	/* Why libkvm stops asking for registers the thread no longer reads. */
	bench_labels[0] = "copy";
	raw.valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS;
	compare("1 raw, kernel copies regs+sregs+events out", rounds / 2 + 1, raw_round,
		raw_plain_round, &raw, 0);
	raw.valid_regs = KVM_SYNC_X86_SREGS;
	compare("1 raw, kernel copies sregs out", rounds / 2 + 1, raw_round, raw_plain_round, &raw,
		0);

	raw_vm_destroy(&raw.vm);
	raw_vm_destroy(&raw_masked.vm);
	TRY(kvm_detach_vcpu());
	TRY(kvm_destroy_vm(vm));
	return 0;
}
