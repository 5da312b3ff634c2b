/* Benchmark 4: kick latency, from kvm_kick_vcpu() on one thread to kvm_run() returning
 * (-1/EINTR) on the vcpu's owner, median and 99th percentile; beside it the raw
 * mechanism (immediate_exit and pthread_kill() of the thread in ioctl(KVM_RUN)) and one
 * exit round trip. */
#define _GNU_SOURCE
#include "bench.h"
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <time.h>

enum { IDLE, RUN_LIB, RUN_RAW, RETURNED, STOP };

static _Atomic int phase = IDLE;
static _Atomic uint64_t returned_at;
static pthread_t owner;
static int lib_vcpu;
static struct raw_vm raw;
/* The raw side's signal: one libkvm is unlikely to reserve. */
#define RAW_SIGNAL (SIGRTMAX - 1)

static void on_signal(int sig)
{
	(void)sig;
}

/* The owner: runs the spinning guest until kicked, as often as the kicker asks. */
static void *owner_thread(void *arg)
{
	(void)arg;
	TRY(kvm_attach_vcpu(lib_vcpu));
	for (;;) {
		int p;
		while ((p = atomic_load(&phase)) != RUN_LIB && p != RUN_RAW && p != STOP)
			sched_yield();
		if (p == STOP) {
			TRY(kvm_detach_vcpu());
			return NULL;
		}
		int r;
		if (p == RUN_LIB)
			r = kvm_run();
		else
			r = ioctl(raw.vcpu, KVM_RUN, 0);
		atomic_store(&returned_at, now_ns());
		raw.run->immediate_exit = 0;
		if (r != -1 || errno != EINTR)
			DIE("%s run returned %d (%s), expected EINTR", p == RUN_LIB ? "libkvm" : "raw",
			    r, strerror(errno));
		atomic_store(&phase, RETURNED);
	}
}

/* One kick: lets the owner get into the guest, kicks, and returns the latency (ns). */
static double kick_once(int which)
{
	atomic_store(&phase, which);
	/* Give the owner time to be in the guest (a kick before that is also fine: the
	 * next run returns at once, and the latency is still kick to return). */
	struct timespec pause = { 0, 200000 };
	nanosleep(&pause, NULL);
	uint64_t t0 = now_ns();
	if (which == RUN_RAW) {
		/* As QEMU does: immediate_exit covers a signal that lands before KVM_RUN. */
		raw.run->immediate_exit = 1;
		pthread_kill(owner, RAW_SIGNAL);
	} else {
#ifdef HAVE_KVM_KICK_VCPU
		TRY(kvm_kick_vcpu(lib_vcpu));
#endif
	}
	while (atomic_load(&phase) != RETURNED)
		sched_yield();
	atomic_store(&phase, IDLE);
	return (double)(atomic_load(&returned_at) - t0);
}

static double exit_round_trip(void)
{
	struct raw_vm r;
	raw_vm_create(&r, 0x10000, 0);
	raw_vcpu_create(&r, 0);
	raw_load(&r, 0x1000, BLOB(bench_out));
	raw_setup_real_mode(&r, 0x1000);
	enum { N = 2000 };
	static double t[N];
	for (int i = 0; i < N; i++) {
		uint64_t t0 = now_ns();
		raw_run_expect(&r, KVM_EXIT_IO);
		t[i] = (double)(now_ns() - t0);
	}
	raw_vm_destroy(&r);
	return median(t, N);
}

int main(void)
{
	int rounds = bench_rounds(10);
	long per_round = bench_iters(50);
	double exit_ns = exit_round_trip();

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	TRY(sigaction(RAW_SIGNAL, &sa, NULL));

	raw_vm_create(&raw, 0x10000, 0);
	raw_vcpu_create(&raw, 0);
	raw_load(&raw, 0x1000, BLOB(bench_spin));
	raw_setup_real_mode(&raw, 0x1000);

	/* The libkvm vcpu is created here and moves to the owner thread. */
	int vm = lib_vm_create(0x10000, 0, 0x1000, BLOB(bench_spin));
	lib_vcpu = TRY(kvm_create_vcpu(vm, 0));
	lib_setup_real_mode(0x1000);
	TRY(kvm_detach_vcpu());

	if (pthread_create(&owner, NULL, owner_thread, NULL) != 0)
		DIE("pthread_create");

	long n = rounds * per_round;
	double *lib = calloc((size_t)n, sizeof(double)), *rawl = calloc((size_t)n, sizeof(double));
	if (!lib || !rawl)
		DIE("out of memory");
	int have_kick = 0;
#ifdef HAVE_KVM_KICK_VCPU
	have_kick = 1;
#endif
	long nl = 0, nr = 0;
	for (int r = 0; r < rounds; r++) {
		for (int side = 0; side < 2; side++) {
			int lib_side = (side == 0) == (r % 2 == 0);
			for (long i = 0; i < per_round; i++) {
				if (lib_side && have_kick)
					lib[nl++] = kick_once(RUN_LIB);
				else if (!lib_side)
					rawl[nr++] = kick_once(RUN_RAW);
			}
		}
	}
	atomic_store(&phase, STOP);
	pthread_join(owner, NULL);

	double raw_med = median(rawl, (int)nr), raw_p99 = percentile(rawl, (int)nr, 0.99);
	if (have_kick) {
		double lib_med = median(lib, (int)nl), lib_p99 = percentile(lib, (int)nl, 0.99);
		report("4 kick latency, median (kvm_kick_vcpu)", "ns", lib_med, raw_med,
		       lib_med / raw_med, 0);
		report("4 kick latency, p99", "ns", lib_p99, raw_p99, lib_p99 / raw_p99, 0);
	} else {
		report_note("%-44s libkvm: kvm_kick_vcpu() not in this build; raw median %.1f ns, p99 %.1f ns",
			    "4 kick latency", raw_med, raw_p99);
	}
	report_note("%-44s %.1f ns (raw KVM_RUN, median); %ld kicks per side",
		    "4 one exit round trip, for scale", exit_ns, nr);

	raw_vm_destroy(&raw);
	TRY(kvm_destroy_vm(vm));
	return 0;
}
