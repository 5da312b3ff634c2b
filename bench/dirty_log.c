/* Benchmark 6: the dirty log of a 1 GiB slot with 10% of its pages dirty (every tenth
 * page, written by the guest), fetched and reset: kvm_get_dirty_log() against
 * ioctl(KVM_GET_DIRTY_LOG). */
#include "bench.h"
#include <sys/ioctl.h>

#define SLOT_SIZE (1ULL << 30)
#define PAGES (SLOT_SIZE / 4096)
/* Pages 0, 10, 20, ... below 1 GiB. */
#define DIRTY ((PAGES + 9) / 10)

static uint64_t bitmap[PAGES / 64];
static struct raw_vm raw;

static long popcount(void)
{
	long n = 0;
	for (size_t i = 0; i < PAGES / 64; i++)
		n += __builtin_popcountll(bitmap[i]);
	return n;
}

static void check(const char *who)
{
	long n = popcount();
	if (n != (long)DIRTY)
		DIE("%s: %ld dirty pages, expected %llu", who, n, (unsigned long long)DIRTY);
	for (uint64_t p = 0; p < PAGES; p += 10)
		if (!(bitmap[p / 64] & (1ULL << (p % 64))))
			DIE("%s: page %llu not dirty", who, (unsigned long long)p);
}

#ifdef HAVE_KVM_GET_DIRTY_LOG
static int lib_vm;

static double lib_round(void *arg)
{
	(void)arg;
	lib_run_expect(KVM_EXIT_IO); /* the guest dirties its pages */
	memset(bitmap, 0, sizeof(bitmap));
	uint64_t t0 = now_ns();
	TRY(kvm_get_dirty_log(lib_vm, 0, bitmap));
	double t = (double)(now_ns() - t0);
	check("libkvm");
	return t;
}
#endif

static double raw_round(void *arg)
{
	(void)arg;
	raw_run_expect(&raw, KVM_EXIT_IO);
	memset(bitmap, 0, sizeof(bitmap));
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bitmap };
	uint64_t t0 = now_ns();
	TRY(ioctl(raw.vm, KVM_GET_DIRTY_LOG, &log));
	double t = (double)(now_ns() - t0);
	check("raw");
	return t;
}

int main(void)
{
	int rounds = bench_rounds(31);
	raw_vm_create(&raw, SLOT_SIZE, KVM_MEM_LOG_DIRTY_PAGES);
	raw_vcpu_create(&raw, 0);
	raw_load(&raw, 0x1000, BLOB(bench_dirty));
	raw_setup_protected_mode(&raw, 0x1000);
	/* Warm up: the first pass faults the pages in. */
	(void)raw_round(NULL);
#ifdef HAVE_KVM_GET_DIRTY_LOG
	lib_vm = lib_vm_create(SLOT_SIZE, KVM_MEM_LOG_DIRTY_PAGES, 0x1000, BLOB(bench_dirty));
	TRY(kvm_create_vcpu(lib_vm, 0));
	lib_setup_protected_mode(0x1000);
	(void)lib_round(NULL);
	compare("6 dirty log, 1 GiB slot, 10% dirty", rounds, lib_round, raw_round, NULL, 1.05);
	TRY(kvm_detach_vcpu());
	TRY(kvm_destroy_vm(lib_vm));
#else
	double *t = calloc((size_t)rounds, sizeof(double));
	if (!t)
		DIE("out of memory");
	for (int i = 0; i < rounds; i++)
		t[i] = raw_round(NULL);
	report_note("%-44s libkvm: kvm_get_dirty_log() not in this build; raw median %.1f ns",
		    "6 dirty log, 1 GiB slot, 10% dirty", median(t, rounds));
#endif
	raw_vm_destroy(&raw);
	return 0;
}
