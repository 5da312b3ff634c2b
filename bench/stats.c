/* Benchmark 9: every statistic of 256 vcpus read from one thread while every vcpu is
 * inside kvm_run, with kvm_stats_read(fd, -1, ...) on each vcpu fd; beside it QEMU's way
 * (query-stats: run_on_cpu() on each vcpu in turn, i.e. kick it out of KVM_RUN, read on
 * its own thread, let it run again). One vcpu per host CPU runs a guest that never exits
 * on its own (64-bit ring 3, native speed on kvm_pvm); the others are halted in their
 * guest, blocked inside KVM_RUN on the in-kernel irqchip: 256 spinning vcpus on a 2-CPU
 * host make every kick wait for the scheduler (BENCHMARKS.md has that figure). Also
 * counted: the exits the reads cause: the vcpus' returns from kvm_run and the kernel's
 * signal_exits (both exact), and its "exits" against an equally long window without
 * reads (the host's own interrupts make that one noisy). */
#define _GNU_SOURCE
#include "bench.h"
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <sys/ioctl.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define MAX_VCPUS 256
#define GUEST 0x4000
#define HALT 0x1000
#define PAGE_TABLES 0x10000

#define ROOM 512                      /* values per vcpu, at most */

static int vm, nv, nspin, total, fds[MAX_VCPUS], counts[MAX_VCPUS], i_exits, i_signals;
/* The raw side: each vcpu's own statistics fd, read with pread(2) at its data block. */
static int raw_fds[MAX_VCPUS];
static off_t raw_data[MAX_VCPUS];
static uint64_t *values;              /* nv * total: every value of every vcpu */
static _Atomic int started, stop;
static _Atomic int asked[MAX_VCPUS];  /* QEMU's way: "read your statistics" */
static _Atomic long returns;          /* returns from kvm_run, every vcpu */
static pthread_t threads[MAX_VCPUS];
static sem_t answered;                /* QEMU's way: a vcpu has read its statistics */

static void *vcpu_thread(void *arg)
{
	int i = (int)(intptr_t)arg;
	fds[i] = TRY(kvm_create_vcpu(vm, (unsigned)i));
	if (i < nspin)
		lib_setup_user_long_mode(vm, PAGE_TABLES, GUEST);
	else
		lib_setup_real_mode(HALT);
	/* The first call opens the statistics: on the vcpu's thread, before it runs. */
	counts[i] = TRY(kvm_stats_read(fds[i], -1, NULL, 0));
	raw_fds[i] = TRY(ioctl(fds[i], KVM_GET_STATS_FD, 0));
	struct kvm_stats_header hdr;
	if (pread(raw_fds[i], &hdr, sizeof(hdr), 0) != sizeof(hdr))
		DIE("pread of the statistics header: %s", strerror(errno));
	raw_data[i] = hdr.data_offset;
	if (counts[i] > ROOM)
		DIE("%d values per vcpu: more than this benchmark's room", counts[i]);
	atomic_fetch_add(&started, 1);
	for (;;) {
		int r = kvm_run();
		atomic_fetch_add(&returns, 1);
		if (r != -1 || errno != EINTR)
			DIE("vcpu %d: kvm_run returned %d (%s), expected a kick", i, r, strerror(errno));
		if (atomic_load(&stop))
			break;
		if (atomic_load(&asked[i])) {
			TRY(kvm_stats_read(fds[i], -1, values + (size_t)i * ROOM, ROOM));
			atomic_store(&asked[i], 0);
			sem_post(&answered);
		}
	}
	TRY(kvm_detach_vcpu());
	return NULL;
}

/* One query the libkvm way: every value of every vcpu, from this thread. */
static void query_libkvm(void)
{
	for (int i = 0; i < nv; i++)
		TRY(kvm_stats_read(fds[i], -1, values + (size_t)i * ROOM, ROOM));
}

/* One query with the raw fds: the floor (one pread per vcpu). */
static void query_raw(void)
{
	size_t n = (size_t)total * sizeof(uint64_t);
	for (int i = 0; i < nv; i++)
		if (pread(raw_fds[i], values + (size_t)i * ROOM, n, raw_data[i]) != (ssize_t)n)
			DIE("pread: %s", strerror(errno));
}

/* One query QEMU's way: each vcpu in turn is kicked, reads on its thread, runs again. */
static void query_qemu(void)
{
	for (int i = 0; i < nv; i++) {
		atomic_store(&asked[i], 1);
		TRY(kvm_kick_vcpu(fds[i]));
		while (sem_wait(&answered) != 0)
			;
	}
}

static uint64_t sum_of(int index)
{
	uint64_t s = 0, v;
	for (int i = 0; i < nv; i++) {
		TRY(kvm_stats_read(fds[i], index, &v, 1));
		s += v;
	}
	return s;
}

struct round { double us, returns, signals, exits, idle_exits; };

/* q queries one way; the cost of one (µs) and what they added per query. */
static struct round measure(void (*query)(void), int q)
{
	struct round r;
	long ret0 = atomic_load(&returns);
	uint64_t s0 = sum_of(i_signals), e0 = sum_of(i_exits);
	uint64_t t0 = now_ns();
	for (int k = 0; k < q; k++)
		query();
	uint64_t t1 = now_ns();
	uint64_t e1 = sum_of(i_exits), s1 = sum_of(i_signals);
	r.returns = (double)(atomic_load(&returns) - ret0) / q;
	/* The same time again without a query: the background rate of exits. */
	struct timespec idle = { (time_t)((t1 - t0) / 1000000000), (long)((t1 - t0) % 1000000000) };
	uint64_t e2a = sum_of(i_exits);
	nanosleep(&idle, NULL);
	uint64_t e2 = sum_of(i_exits);
	r.us = (double)(t1 - t0) / q / 1000.0;
	r.signals = (double)(s1 - s0) / q;
	r.exits = (double)(e1 - e0) / q;
	r.idle_exits = (double)(e2 - e2a) / q;
	return r;
}

int main(void)
{
	int rounds = bench_rounds(11);
	int q = (int)bench_iters(20);
	if (q < 1)
		q = 1;
	int max = kvm_check_extension(-1, KVM_CAP_MAX_VCPUS);
	nv = max < MAX_VCPUS ? max : MAX_VCPUS;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	nspin = cpus < 1 ? 1 : cpus > nv ? nv : (int)cpus;
	vm = lib_vm_create(0x200000, 0, GUEST, BLOB(bench_spin64));
	struct blob halt = BLOB(bench_halt);
	void *h = kvm_guest_memory(vm, HALT, (size_t)(halt.end - halt.start));
	if (!h)
		DIE("kvm_guest_memory: %s", strerror(errno));
	memcpy(h, halt.start, (size_t)(halt.end - halt.start));
	TRY(kvm_create_irqchip(vm));
	sem_init(&answered, 0, 0);
	values = calloc((size_t)nv * ROOM, sizeof(uint64_t));
	if (!values)
		DIE("out of memory");
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	for (int i = 0; i < nv; i++)
		if (pthread_create(&threads[i], &attr, vcpu_thread, (void *)(intptr_t)i) != 0)
			DIE("pthread_create");
	while (atomic_load(&started) < nv)
		sched_yield();
	/* Open already (each vcpu's first call, on its thread): these never wait. */
	total = counts[0];
	for (int i = 1; i < nv; i++)
		if (counts[i] != total)
			DIE("vcpu %d has %d values, vcpu 0 %d", i, counts[i], total);
	i_exits = TRY(kvm_stats_lookup(fds[0], "exits"));
	i_signals = TRY(kvm_stats_lookup(fds[0], "signal_exits"));
	/* Let every vcpu get into its guest. */
	struct timespec settle = { 0, 200 * 1000 * 1000 };
	nanosleep(&settle, NULL);

	struct round lib[64], qemu[64], raw[64];
	double lus[64], qus[64], rus[64], ratio[64], rratio[64], lexits[64], qexits[64];
	if (rounds > 64)
		rounds = 64;
	double lib_returns = 0, lib_signals = 0, qemu_returns = 0, qemu_signals = 0;
	query_libkvm(); /* warm: the first pass of each side pays for cold caches */
	query_raw();
	for (int r = 0; r < rounds; r++) {
		if (r % 2 == 0) {
			lib[r] = measure(query_libkvm, q);
			qemu[r] = measure(query_qemu, q);
		} else {
			qemu[r] = measure(query_qemu, q);
			lib[r] = measure(query_libkvm, q);
		}
		raw[r] = measure(query_raw, q);
		if (raw[r].returns != 0)
			DIE("raw preads made vcpus exit");
		rus[r] = raw[r].us;
		rratio[r] = lib[r].us / raw[r].us;
		lus[r] = lib[r].us;
		qus[r] = qemu[r].us;
		ratio[r] = lib[r].us / qemu[r].us;
		lexits[r] = lib[r].exits - lib[r].idle_exits;
		qexits[r] = qemu[r].exits - qemu[r].idle_exits;
		lib_returns += lib[r].returns;
		lib_signals += lib[r].signals;
		qemu_returns += qemu[r].returns;
		qemu_signals += qemu[r].signals;
	}
	/* What the guests did: they ran (the background exits of a running vcpu) and QEMU's
	 * way stopped each of them once per query. */
	if (lib_returns != 0 || lib_signals != 0)
		DIE("the libkvm reads made vcpus exit: %.2f returns, %.2f signal exits per query",
		    lib_returns / rounds, lib_signals / rounds);
	if (qemu_returns / rounds < nv)
		DIE("QEMU's way stopped %.1f vcpus per query, not %d", qemu_returns / rounds, nv);

	bench_labels[0] = "libkvm";
	bench_labels[1] = "kick";
	char name[64];
	snprintf(name, sizeof(name), "8 every statistic of %d vcpus in kvm_run", nv);
	double lmed = median(lus, rounds), qmed = median(qus, rounds);
	report(name, "us", lmed, qmed, median(ratio, rounds), 0);
	bench_labels[1] = "pread";
	report("8 the same / raw pread of each stats fd", "us", lmed, median(rus, rounds),
	       median(rratio, rounds), 0);
	report_note("%-44s %d values per vcpu, %d vcpus spinning, %d halted; goal < 1000 us: %s",
		    "8 the libkvm read", total, nspin, nv - nspin, lmed < 1000 ? "met" : "MISSED");
	report_note("%-44s libkvm %.2f, kick %.2f (kvm_run returns); signal exits %.2f, %.2f",
		    "8 exits per query, exact", lib_returns / rounds / 1.0, qemu_returns / rounds,
		    lib_signals / rounds, qemu_signals / rounds);
	report_note("%-44s libkvm %+.1f, kick %+.1f (\"exits\", minus an idle window's)",
		    "8 exits per query, all vcpus, median", median(lexits, rounds), median(qexits, rounds));
	if (nv < MAX_VCPUS)
		report_note("%-44s KVM_CAP_MAX_VCPUS is %d: %d vcpus, not 256", "8 note", max, nv);

	atomic_store(&stop, 1);
	for (int i = 0; i < nv; i++)
		TRY(kvm_kick_vcpu(fds[i]));
	for (int i = 0; i < nv; i++) {
		pthread_join(threads[i], NULL);
		close(raw_fds[i]);
	}
	TRY(kvm_destroy_vm(vm));
	free(values);
	return 0;
}
