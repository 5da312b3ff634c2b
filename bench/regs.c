/* Benchmarks 2 and 3: an exit plus register traffic on every exit, through libkvm
 * (served from the sync-regs area where the kernel offers it) against the raw ioctls. */
#include "bench.h"
#include <sys/ioctl.h>

/* REGS_VS_EXIT: libkvm as REGS, the raw side only runs, with a vcpu signal mask as
 * libkvm's vcpu has (what register traffic through the sync-regs area costs over a bare
 * exit with the same guest). */
enum variant { REGS, SREGS, EVENTS, ALL, REGS_VS_EXIT };

static long iters;
/* The raw vcpu, and one with a vcpu signal mask like libkvm's (the kick sets one), for
 * comparing against a bare exit. */
static struct raw_vm raw, raw_masked;
static enum variant variant;
/* What the host last wrote to EBX on each side; the guest echoes it in EDX. */
static uint64_t lib_last, raw_last;

static double lib_round(void *arg)
{
	(void)arg;
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_vcpu_events e;
	uint64_t t0 = now_ns();
	for (long i = 0; i < iters; i++) {
		if (kvm_run() != KVM_EXIT_IO)
			DIE("libkvm: unexpected exit (%s)", strerror(errno));
		switch (variant) {
		case REGS:
		case REGS_VS_EXIT:
		case ALL:
			if (kvm_get_regs(&r) < 0)
				DIE("kvm_get_regs: %s", strerror(errno));
			if (variant == ALL && (kvm_get_sregs(&s) < 0 || kvm_get_vcpu_events(&e) < 0))
				DIE("kvm_get_sregs/events: %s", strerror(errno));
			if ((uint32_t)r.rdx != (uint32_t)lib_last)
				DIE("libkvm: guest saw 0x%llx, host wrote 0x%llx",
				    (unsigned long long)r.rdx, (unsigned long long)lib_last);
			r.rbx = ++lib_last;
			if (kvm_set_regs(&r) < 0)
				DIE("kvm_set_regs: %s", strerror(errno));
			break;
		case SREGS:
			if (kvm_get_sregs(&s) < 0)
				DIE("kvm_get_sregs: %s", strerror(errno));
			s.cr2 = (uint64_t)i;
			if (kvm_set_sregs(&s) < 0)
				DIE("kvm_set_sregs: %s", strerror(errno));
			break;
		case EVENTS:
			if (kvm_get_vcpu_events(&e) < 0 || kvm_set_vcpu_events(&e) < 0)
				DIE("kvm_get/set_vcpu_events: %s", strerror(errno));
			break;
		}
	}
	return (double)(now_ns() - t0) / (double)iters;
}

static double raw_round(void *arg)
{
	(void)arg;
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_vcpu_events e;
	struct raw_vm *v = variant == REGS_VS_EXIT ? &raw_masked : &raw;
	int fd = v->vcpu;
	uint64_t t0 = now_ns();
	for (long i = 0; i < iters; i++) {
		if (ioctl(fd, KVM_RUN, 0) < 0 || v->run->exit_reason != KVM_EXIT_IO)
			DIE("raw: unexpected exit (%s)", strerror(errno));
		switch (variant) {
		case REGS:
		case ALL:
			if (ioctl(fd, KVM_GET_REGS, &r) < 0)
				DIE("KVM_GET_REGS: %s", strerror(errno));
			if (variant == ALL && (ioctl(fd, KVM_GET_SREGS, &s) < 0 ||
					       ioctl(fd, KVM_GET_VCPU_EVENTS, &e) < 0))
				DIE("KVM_GET_SREGS/EVENTS: %s", strerror(errno));
			if ((uint32_t)r.rdx != (uint32_t)raw_last)
				DIE("raw: guest saw 0x%llx, host wrote 0x%llx",
				    (unsigned long long)r.rdx, (unsigned long long)raw_last);
			r.rbx = ++raw_last;
			if (ioctl(fd, KVM_SET_REGS, &r) < 0)
				DIE("KVM_SET_REGS: %s", strerror(errno));
			break;
		case SREGS:
			if (ioctl(fd, KVM_GET_SREGS, &s) < 0)
				DIE("KVM_GET_SREGS: %s", strerror(errno));
			s.cr2 = (uint64_t)i;
			if (ioctl(fd, KVM_SET_SREGS, &s) < 0)
				DIE("KVM_SET_SREGS: %s", strerror(errno));
			break;
		case EVENTS:
			if (ioctl(fd, KVM_GET_VCPU_EVENTS, &e) < 0 ||
			    ioctl(fd, KVM_SET_VCPU_EVENTS, &e) < 0)
				DIE("KVM_GET/SET_VCPU_EVENTS: %s", strerror(errno));
			break;
		case REGS_VS_EXIT:
			break;
		}
	}
	return (double)(now_ns() - t0) / (double)iters;
}

/* The guest echoes EBX one exit later: resynchronise the host's idea of it. */
static void resync(void)
{
	struct kvm_regs r;
	TRY(kvm_get_regs(&r));
	lib_last = r.rbx;
	TRY(ioctl(raw.vcpu, KVM_GET_REGS, &r));
	raw_last = r.rbx;
	/* One exit so that EDX holds the echo. */
	lib_run_expect(KVM_EXIT_IO);
	raw_run_expect(&raw, KVM_EXIT_IO);
}

static void run(enum variant v, const char *name, double goal)
{
	variant = v;
	resync();
	/* Warm up both (libkvm learns which registers the thread reads). */
	lib_round(NULL);
	raw_round(NULL);
	compare(name, bench_rounds(51), lib_round, raw_round, NULL, goal);
}

int main(void)
{
	iters = bench_iters(200);
	int vm = lib_vm_create(0x10000, 0, 0x1000, BLOB(bench_echo));
	TRY(kvm_create_vcpu(vm, 0));
	lib_setup_real_mode(0x1000);

	raw_vm_create(&raw, 0x10000, 0);
	raw_vcpu_create(&raw, 0);
	raw_load(&raw, 0x1000, BLOB(bench_echo));
	raw_setup_real_mode(&raw, 0x1000);
	raw_vm_create(&raw_masked, 0x10000, 0);
	raw_vcpu_create(&raw_masked, 0);
	raw_load(&raw_masked, 0x1000, BLOB(bench_echo));
	raw_setup_real_mode(&raw_masked, 0x1000);
	struct {
		struct kvm_signal_mask h;
		uint64_t set;
	} mask = { .h.len = 8, .set = 0 };
	TRY(ioctl(raw_masked.vcpu, KVM_SET_SIGNAL_MASK, &mask));

	run(REGS, "2 exit + get_regs + set_regs", 0.55);
	bench_labels[1] = "exit";
	run(REGS_VS_EXIT, "2 the same, against a bare raw exit (masked)", 0);
	bench_labels[1] = "raw";
	run(SREGS, "3 exit + get_sregs + set_sregs", 0);
	run(EVENTS, "3 exit + get_vcpu_events + set_vcpu_events", 0);
	run(ALL, "3 exit + get regs, sregs, events + set_regs", 0);

	raw_vm_destroy(&raw);
	raw_vm_destroy(&raw_masked);
	TRY(kvm_detach_vcpu());
	TRY(kvm_destroy_vm(vm));
	return 0;
}
