/* Benchmark 8: the dirty ring (kvm_enable_dirty_ring). Harvest and re-arm of a 1 GiB slot
 * with 0.01 %, 0.1 %, 1 % and 10 % of its pages dirtied by the guest (every 10000th,
 * 1000th, 100th, 10th page; and 0.02 % and 0.05 %, around the crossover), each as one
 * kvm_get_dirty_log(): libkvm on the ring against
 * the raw ring ioctls written by hand (collect the entries into a zeroed bitmap, hand
 * them back, KVM_RESET_DIRTY_RINGS), and libkvm on the ring against libkvm on the bitmap
 * (today's path, KVM_GET_DIRTY_LOG). Then the plain exit loop with the ring on, kvm_run()
 * against ioctl(KVM_RUN). */
#include "bench.h"
#include <sys/ioctl.h>
#include <sys/mman.h>

#define SLOT_SIZE (1ULL << 30)
#define PAGES (SLOT_SIZE / 4096)
#define RING_BYTES (1u << 20)          /* 65536 entries: a 10 % round fits */

static uint64_t bitmap[PAGES / 64];
static uint64_t stride;                /* pages */
static int ring_vm, bitmap_vm, ring_vcpu, bitmap_vcpu;

/* The raw ring: a VM with the ring enabled by hand, its vcpu's ring mapped. */
static struct raw_vm raw;
static struct kvm_dirty_gfn *raw_ring;
static uint32_t raw_fetch;

static void check(const char *who)
{
	long n = 0;
	for (size_t i = 0; i < PAGES / 64; i++)
		n += __builtin_popcountll(bitmap[i]);
	long want = (long)((PAGES + stride - 1) / stride);
	if (n != want)
		DIE("%s: %ld dirty pages, expected %ld", who, n, want);
	for (uint64_t p = 0; p < PAGES; p += stride)
		if (!(bitmap[p / 64] & (1ULL << (p % 64))))
			DIE("%s: page %llu not dirty", who, (unsigned long long)p);
}

/* Sets ESI of the calling thread's vcpu (libkvm) to the stride. */
static void lib_stride(void)
{
	struct kvm_regs r;
	TRY(kvm_get_regs(&r));
	r.rsi = stride * 4096;
	TRY(kvm_set_regs(&r));
}

/* One harvest of libkvm's VM `vm` whose vcpu is `vcpu_fd`. */
static double lib_harvest(int vm, int vcpu_fd)
{
	TRY(kvm_attach_vcpu(vcpu_fd));
	lib_stride();
	lib_run_expect(KVM_EXIT_IO);        /* the guest dirties its pages */
	TRY(kvm_detach_vcpu());
	memset(bitmap, 0xff, sizeof(bitmap));
	uint64_t t0 = now_ns();
	TRY(kvm_get_dirty_log(vm, 0, bitmap));
	double t = (double)(now_ns() - t0);
	check(vm == ring_vm ? "libkvm ring" : "libkvm bitmap");
	return t;
}

static double lib_ring_round(void *arg) { (void)arg; return lib_harvest(ring_vm, ring_vcpu); }
static double lib_bitmap_round(void *arg) { (void)arg; return lib_harvest(bitmap_vm, bitmap_vcpu); }

static double raw_ring_round(void *arg)
{
	(void)arg;
	struct kvm_regs r;
	TRY(ioctl(raw.vcpu, KVM_GET_REGS, &r));
	r.rsi = stride * 4096;
	TRY(ioctl(raw.vcpu, KVM_SET_REGS, &r));
	raw_run_expect(&raw, KVM_EXIT_IO);
	memset(bitmap, 0xff, sizeof(bitmap));
	uint64_t t0 = now_ns();
	memset(bitmap, 0, sizeof(bitmap));
	const uint32_t mask = RING_BYTES / sizeof(struct kvm_dirty_gfn) - 1;
	uint32_t n = 0;
	for (;;) {
		struct kvm_dirty_gfn *e = &raw_ring[raw_fetch & mask];
		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & 1))
			break;
		if (e->slot == 0 && e->offset < PAGES)
			bitmap[e->offset / 64] |= 1ULL << (e->offset % 64);
		__atomic_store_n(&e->flags, 2, __ATOMIC_RELEASE);
		raw_fetch++;
		n++;
	}
	if (n)
		TRY(ioctl(raw.vm, KVM_RESET_DIRTY_RINGS, 0));
	double t = (double)(now_ns() - t0);
	check("raw ring");
	return t;
}

/* ---- the exit loop with the ring on ---------------------------------------------- */

static long iters;
static struct raw_vm raw_exit;

/* libkvm's exit loop on vcpu `*(int *)arg` (attached for the round). */
static double lib_exit_round(void *arg)
{
	TRY(kvm_attach_vcpu(*(int *)arg));
	double t = lib_exit_loop(iters);
	TRY(kvm_detach_vcpu());
	return t;
}

static double raw_exit_round(void *arg)
{
	(void)arg;
	return raw_exit_loop(&raw_exit, iters);
}

static int ring_on_fd, ring_off_fd;
static double lib_ring_on_round(void *arg) { (void)arg; return lib_exit_round(&ring_on_fd); }
static double lib_ring_off_round(void *arg) { (void)arg; return lib_exit_round(&ring_off_fd); }

static void raw_enable_ring(struct raw_vm *r)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL, .args = { RING_BYTES } };
	TRY(ioctl(r->vm, KVM_ENABLE_CAP, &cap));
}

int main(void)
{
	int rounds = bench_rounds(31);
	if (ioctl(raw_kvm(), KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL) < (int)RING_BYTES) {
		report_note("%-44s no 1 MiB dirty ring (KVM_CAP_DIRTY_LOG_RING_ACQ_REL) here",
			    "8 dirty ring");
		return 0;
	}
	raw_vm_create(&raw, SLOT_SIZE, KVM_MEM_LOG_DIRTY_PAGES);
	raw_enable_ring(&raw);
	raw_vcpu_create(&raw, 0);
	raw_ring = mmap(NULL, RING_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, raw.vcpu,
			KVM_DIRTY_LOG_PAGE_OFFSET * 4096);
	if (raw_ring == MAP_FAILED)
		DIE("mmap ring: %s", strerror(errno));
	raw_load(&raw, 0x1000, BLOB(bench_dirty_stride));
	raw_setup_protected_mode(&raw, 0x1000);

	ring_vm = lib_vm_create(SLOT_SIZE, KVM_MEM_LOG_DIRTY_PAGES, 0x1000, BLOB(bench_dirty_stride));
	TRY(kvm_enable_dirty_ring(ring_vm, RING_BYTES));
	ring_vcpu = TRY(kvm_create_vcpu(ring_vm, 0));
	lib_setup_protected_mode(0x1000);
	TRY(kvm_detach_vcpu());
	bitmap_vm = lib_vm_create(SLOT_SIZE, KVM_MEM_LOG_DIRTY_PAGES, 0x1000, BLOB(bench_dirty_stride));
	bitmap_vcpu = TRY(kvm_create_vcpu(bitmap_vm, 0));
	lib_setup_protected_mode(0x1000);
	TRY(kvm_detach_vcpu());

	static const struct { uint64_t stride; const char *pct; double goal_bitmap; } F[] = {
		{ 10000, "0.01%", 0.2 }, { 5000, "0.02%", 0.2 }, { 2000, "0.05%", 0.2 },
		{ 1000, "0.1%", 0.2 }, { 100, "1%", 0 }, { 10, "10%", 0 },
	};
	for (size_t i = 0; i < sizeof(F) / sizeof(F[0]); i++) {
		char name[64];
		stride = F[i].stride;
		/* Warm up: the first pass faults the pages in on every side. */
		(void)raw_ring_round(NULL);
		(void)lib_ring_round(NULL);
		(void)lib_bitmap_round(NULL);
		bench_labels[0] = "libkvm";
		bench_labels[1] = "raw";
		snprintf(name, sizeof(name), "8 ring vs raw ring, 1 GiB, %s dirty", F[i].pct);
		compare(name, rounds, lib_ring_round, raw_ring_round, NULL, 1.05);
		bench_labels[0] = "ring";
		bench_labels[1] = "bitmap";
		snprintf(name, sizeof(name), "8 ring vs bitmap, 1 GiB, %s dirty", F[i].pct);
		compare(name, rounds, lib_ring_round, lib_bitmap_round, NULL, F[i].goal_bitmap);
	}
	TRY(kvm_destroy_vm(ring_vm));
	TRY(kvm_destroy_vm(bitmap_vm));
	munmap(raw_ring, RING_BYTES);
	raw_vm_destroy(&raw);

	/* The exit loop, the ring on both sides; then libkvm's loop with the ring on against
	 * the same without it, which isolates what the ring costs the run path. */
	iters = bench_iters(500);
	int vm = lib_vm_create(0x10000, KVM_MEM_LOG_DIRTY_PAGES, 0x1000, BLOB(bench_out));
	TRY(kvm_enable_dirty_ring(vm, RING_BYTES));
	ring_on_fd = TRY(kvm_create_vcpu(vm, 0));
	lib_setup_real_mode(0x1000);
	TRY(kvm_detach_vcpu());
	int vm_off = lib_vm_create(0x10000, KVM_MEM_LOG_DIRTY_PAGES, 0x1000, BLOB(bench_out));
	ring_off_fd = TRY(kvm_create_vcpu(vm_off, 0));
	lib_setup_real_mode(0x1000);
	TRY(kvm_detach_vcpu());
	raw_vm_create(&raw_exit, 0x10000, KVM_MEM_LOG_DIRTY_PAGES);
	raw_enable_ring(&raw_exit);
	raw_vcpu_create(&raw_exit, 0);
	raw_load(&raw_exit, 0x1000, BLOB(bench_out));
	raw_setup_real_mode(&raw_exit, 0x1000);
	(void)lib_ring_on_round(NULL);
	(void)lib_ring_off_round(NULL);
	(void)raw_exit_round(NULL);
	int exit_rounds = bench_rounds(101);
	bench_labels[0] = "libkvm";
	bench_labels[1] = "raw";
	compare("8 exit loop, dirty ring on", exit_rounds, lib_ring_on_round, raw_exit_round,
		NULL, 1.02);
	bench_labels[0] = "ring";
	bench_labels[1] = "bitmap";
	compare("8 exit loop, libkvm, ring on / off", exit_rounds, lib_ring_on_round,
		lib_ring_off_round, NULL, 0);
	TRY(kvm_destroy_vm(vm));
	TRY(kvm_destroy_vm(vm_off));
	raw_vm_destroy(&raw_exit);
	return 0;
}
