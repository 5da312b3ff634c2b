/* kvm_enable_dirty_ring: the dirty log behind the KVM dirty ring means what the bitmap
 * means. A verifier on the model of the kernel's dirty_log_test runs in both modes, on 1
 * and on 4 vcpus: ring-3 guests write to pseudo-random pages of a 16 MiB slot while this
 * thread harvests at random intervals and copies every reported page to a mirror; at the
 * end (vcpus stopped, one last harvest) the mirror must equal guest memory byte for byte
 * (no page missed) and every page ever reported must have been written. Then: a ring that
 * fills while nobody harvests, slots added and deleted between harvests, a memory alias,
 * manual protection, a harvest racing kvm_destroy_vm, and every errno. */
#include "harness.h"
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CODE 0x4000
#define PT 0x10000
#define SLOT 1
#define SLOT_GPA 0x400000ULL
#define PAGES 4096ULL                 /* 16 MiB */
#define SLOT_SIZE (PAGES * 4096)
#define ROUNDS 120
#define WRITES_PER_EXIT 16

static uint32_t ring_bytes;           /* the smallest ring this host takes */
static int ring_max;                  /* what KVM_CAP_DIRTY_LOG_RING(_ACQ_REL) reports */

/* Sets up the calling thread's new vcpu `id` of `vm` to run the writer on `pages` pages
 * at `gpa` (each vcpu with page tables of its own: setting them up rewrites them). */
static void writer_vcpu(int vm, unsigned id, uint64_t gpa, uint64_t pages)
{
	OK(kvm_create_vcpu(vm, id));
	setup_user_long_mode(vm, PT + 0x4000 * id, CODE);
	EDIT_REGS(r, r.rdi = gpa; r.rsi = pages - 1; r.r8 = 0x9e3779b97f4a7c15ULL * (id + 1);
		  r.r9 = (uint64_t)(id + 1) << 40; r.r12 = WRITES_PER_EXIT);
}

/* Runs the calling thread's writer for `exits` reports (never another exit). */
static void write_for(long exits)
{
	for (long i = 0; i < exits; i++)
		run_until_out(0x20);
}

/* ---- the verifier ---------------------------------------------------------------- */

struct writer { int vm; unsigned id; long exits; pthread_t t; };
static int stop;

static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	writer_vcpu(w->vm, w->id, SLOT_GPA, PAGES);
	struct timespec nap = { 0, 20000 };
	for (long n = 0; !__atomic_load_n(&stop, __ATOMIC_ACQUIRE); n++) {
		run_until_out(0x20);
		__atomic_store_n(&w->exits, n + 1, __ATOMIC_RELEASE);
		if (n % 4 == 0)
			nanosleep(&nap, NULL);     /* rounds that leave pages clean */
	}
	OK(kvm_detach_vcpu());
	return NULL;
}

/* Reads the slot's log; copies each reported page to `mirror` and marks it in `ever`.
 * Returns how many pages were reported. */
static long harvest(int vm, uint8_t *mirror, uint8_t *ever)
{
	static uint64_t bm[PAGES / 64];
	OK(kvm_get_dirty_log(vm, SLOT, bm));
	const uint8_t *mem = kvm_guest_memory(vm, SLOT_GPA, SLOT_SIZE);
	CHECK(mem != NULL);
	long n = 0;
	for (uint64_t p = 0; p < PAGES; p++)
		if (bm[p / 64] >> (p % 64) & 1) {
			memcpy(mirror + p * 4096, mem + p * 4096, 4096);
			ever[p] = 1;
			n++;
		}
	return n;
}

static int page_is_zero(const uint8_t *p)
{
	for (int i = 0; i < 4096; i++)
		if (p[i])
			return 0;
	return 1;
}

static void verifier(uint32_t ring, unsigned vcpus)
{
	char phase[80];
	snprintf(phase, sizeof(phase), "verifier, %s, %u vcpus", ring ? "ring" : "bitmap", vcpus);
	watchdog_phase(phase, 60);
	int vm = vm_with_memory(0x200000);
	if (ring)
		OK(kvm_enable_dirty_ring(vm, ring));
	OK(kvm_set_memory_region(vm, SLOT, KVM_MEM_LOG_DIRTY_PAGES, SLOT_GPA, SLOT_SIZE));
	load_blob(vm, CODE, BLOB(um_dirty_writer));
	uint8_t *mirror = calloc(PAGES, 4096), *ever = calloc(PAGES, 1);
	CHECK(mirror && ever);
	struct writer w[4];
	__atomic_store_n(&stop, 0, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < vcpus; i++) {
		w[i] = (struct writer){ vm, i, 0, 0 };
		CHECK(pthread_create(&w[i].t, NULL, writer_thread, &w[i]) == 0);
	}
	unsigned seed = 15 + vcpus;
	long most = 0, least = PAGES, total = 0;
	/* A long round: every writer writes four times its ring's entries. */
	const long long_exits = ring ? 4 * ring / 16 / WRITES_PER_EXIT : 64;
	for (int round = 0; round < ROUNDS; round++) {
		struct timespec t = { 0, rand_r(&seed) % 3000000 };
		if (round % 8 == 7) {
			/* Long: until each writer has gone that far (progress, not time). */
			long start[4];
			for (unsigned i = 0; i < vcpus; i++)
				start[i] = __atomic_load_n(&w[i].exits, __ATOMIC_ACQUIRE);
			t.tv_nsec = 1000000;
			for (unsigned i = 0; i < vcpus; i++)
				while (__atomic_load_n(&w[i].exits, __ATOMIC_ACQUIRE) < start[i] + long_exits)
					nanosleep(&t, NULL);
		} else {
			nanosleep(&t, NULL);       /* short, at random */
		}
		long n = harvest(vm, mirror, ever);
		most = n > most ? n : most;
		least = n < least ? n : least;
		total += n;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < vcpus; i++)
		CHECK(pthread_join(w[i].t, NULL) == 0);
	total += harvest(vm, mirror, ever);

	const uint8_t *mem = kvm_guest_memory(vm, SLOT_GPA, SLOT_SIZE);
	long missed = 0, never_written = 0, written = 0;
	for (uint64_t p = 0; p < PAGES; p++) {
		missed += memcmp(mirror + p * 4096, mem + p * 4096, 4096) != 0;
		never_written += ever[p] && page_is_zero(mem + p * 4096);
		written += !page_is_zero(mem + p * 4096);
	}
	printf("%s: %d rounds, %ld pages reported (%ld to %ld in a round), %ld written, "
	       "%ld missed, %ld reported but never written\n", phase, ROUNDS, total, least,
	       most, written, missed, never_written);
	CHECK_EQ(missed, 0);
	CHECK_EQ(never_written, 0);
	CHECK(written > (long)PAGES / 2);          /* the guests really wrote */
	CHECK(least < (long)PAGES);                /* and some rounds left pages clean */
	/* More pages in one round than the rings hold: kvm_run harvested full rings (each
	 * long round writes four times the entries of each ring, on random pages). */
	if (ring)
		CHECK(most > (long)(vcpus * ring / 16));
	free(mirror);
	free(ever);
	OK(kvm_destroy_vm(vm));
}

/* ---- exact reports on one vcpu ------------------------------------------------------ */

/* Checks that slot `slot`'s log (`pages` pages at `gpa`) holds exactly the pages whose
 * contents differ from `before` (the guest's values never repeat), then takes a copy of
 * the slot into `before` for the next check. */
static void expect_written(int vm, unsigned slot, uint64_t gpa, uint64_t pages, uint8_t *before)
{
	uint64_t *bm = calloc((pages + 63) / 64 + 1, 8);
	CHECK(bm != NULL);
	bm[(pages + 63) / 64] = 0xa5a5a5a5a5a5a5a5ULL;
	OK(kvm_get_dirty_log(vm, slot, bm));
	CHECK_EQ(bm[(pages + 63) / 64], 0xa5a5a5a5a5a5a5a5ULL);
	const uint8_t *mem = kvm_guest_memory(vm, gpa, pages * 4096);
	CHECK(mem != NULL);
	for (uint64_t p = 0; p < pages; p++) {
		int wrote = memcmp(before + p * 4096, mem + p * 4096, 4096) != 0;
		int dirty = bm[p / 64] >> (p % 64) & 1;
		if (wrote != dirty)
			FAIL("slot %u page %llu: %s", slot, (unsigned long long)p,
			     wrote ? "written but not reported" : "reported but not written");
	}
	memcpy(before, mem, pages * 4096);
	free(bm);
}

/* A ring that fills while nobody harvests: kvm_run harvests it (the writer only ever
 * exits to port 0x20), and the one harvest afterwards reports exactly what was written. */
static void full_ring_unharvested(void)
{
	watchdog_phase("full ring, nobody harvests", 60);
	int vm = vm_with_memory(0x200000);
	OK(kvm_enable_dirty_ring(vm, ring_bytes));
	OK(kvm_set_memory_region(vm, SLOT, KVM_MEM_LOG_DIRTY_PAGES, SLOT_GPA, SLOT_SIZE));
	load_blob(vm, CODE, BLOB(um_dirty_writer));
	writer_vcpu(vm, 0, SLOT_GPA, PAGES);
	uint8_t *before = calloc(PAGES, 4096);
	CHECK(before != NULL);
	/* Many times the ring's entries. */
	write_for(ring_bytes / 16 * 8 / WRITES_PER_EXIT + 1);
	expect_written(vm, SLOT, SLOT_GPA, PAGES, before);
	write_for(100);
	expect_written(vm, SLOT, SLOT_GPA, PAGES, before);
	expect_written(vm, SLOT, SLOT_GPA, PAGES, before);      /* nothing new */
	free(before);
	end_vm(vm);
}

/* Slots added and deleted between harvests: entries still in the rings for a slot that
 * went never show in a later slot of the same number; the other slots' do not get lost. */
static void slots_change(void)
{
	watchdog_phase("slots added and deleted between harvests", 60);
	const uint64_t pages2 = 256, gpa2 = 0x2000000, gpa2b = 0x3000000;
	int vm = vm_with_memory(0x200000);
	OK(kvm_enable_dirty_ring(vm, 1 << 16));
	OK(kvm_set_memory_region(vm, SLOT, KVM_MEM_LOG_DIRTY_PAGES, SLOT_GPA, SLOT_SIZE));
	OK(kvm_set_memory_region(vm, 2, KVM_MEM_LOG_DIRTY_PAGES, gpa2, pages2 * 4096));
	load_blob(vm, CODE, BLOB(um_dirty_writer));
	writer_vcpu(vm, 0, gpa2, pages2);
	uint8_t *before = calloc(PAGES, 4096), *before2 = calloc(pages2, 4096);
	CHECK(before && before2);
	write_for(8);
	expect_written(vm, 2, gpa2, pages2, before2);
	write_for(8);                                /* unharvested entries of slot 2 ... */
	OK(kvm_set_memory_region(vm, 2, 0, 0, 0));   /* ... which goes, */
	OK(kvm_set_memory_region(vm, 2, KVM_MEM_LOG_DIRTY_PAGES, gpa2b, pages2 * 4096));
	memset(before2, 0, pages2 * 4096);
	expect_written(vm, 2, gpa2b, pages2, before2);   /* and is new: empty */
	/* Slot 1 written, then slot 3 added before the harvest: slot 1 loses nothing. */
	EDIT_REGS(r, r.rdi = SLOT_GPA; r.rsi = PAGES - 1);
	write_for(8);
	OK(kvm_set_memory_region(vm, 3, KVM_MEM_LOG_DIRTY_PAGES, 0x5000000, 0x10000));
	expect_written(vm, SLOT, SLOT_GPA, PAGES, before);
	/* The new slot 2 logs. */
	EDIT_REGS(r, r.rdi = gpa2b; r.rsi = pages2 - 1);
	write_for(8);
	expect_written(vm, 2, gpa2b, pages2, before2);
	/* Writes through a memory alias into slot 1 count as writes to slot 1. */
	struct kvm_memory_alias alias = { .slot = 0, .guest_phys_addr = 0x6000000,
					  .memory_size = 64 * 4096, .target_phys_addr = SLOT_GPA };
	OK(kvm_set_memory_alias(vm, &alias));
	EDIT_REGS(r, r.rdi = alias.guest_phys_addr; r.rsi = 63);
	write_for(8);
	expect_written(vm, SLOT, SLOT_GPA, PAGES, before);
	alias.memory_size = 0;
	OK(kvm_set_memory_alias(vm, &alias));
	EDIT_REGS(r, r.rdi = gpa2b; r.rsi = pages2 - 1);
	/* Logging turned off and on again: the slot starts clean. */
	write_for(8);
	OK(kvm_set_memory_region(vm, 2, 0, gpa2b, pages2 * 4096));
	uint64_t bm[4];
	CHECK_ERR(kvm_get_dirty_log(vm, 2, bm), EINVAL);
	OK(kvm_set_memory_region(vm, 2, KVM_MEM_LOG_DIRTY_PAGES, gpa2b, pages2 * 4096));
	memcpy(before2, kvm_guest_memory(vm, gpa2b, pages2 * 4096), pages2 * 4096);
	expect_written(vm, 2, gpa2b, pages2, before2);
	free(before);
	free(before2);
	end_vm(vm);
}

/* With KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, reading keeps the log and kvm_clear_dirty_log
 * clears it, on the ring as on the bitmap. */
static void manual_protect(void)
{
	watchdog_phase("manual protection on the ring", 60);
	int vm = vm_with_memory(0x200000);
	OK(kvm_enable_dirty_ring(vm, 1 << 16));
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, .args = { 3 } };
	CHECK_ERR(kvm_enable_cap(vm, &cap), EINVAL);          /* INITIALLY_SET: refused */
	cap.args[0] = 1;
	OK(kvm_enable_cap(vm, &cap));
	OK(kvm_set_memory_region(vm, SLOT, KVM_MEM_LOG_DIRTY_PAGES, SLOT_GPA, SLOT_SIZE));
	load_blob(vm, CODE, BLOB(um_dirty_writer));
	writer_vcpu(vm, 0, SLOT_GPA, PAGES);
	write_for(4);
	static uint64_t a[PAGES / 64], b[PAGES / 64];
	OK(kvm_get_dirty_log(vm, SLOT, a));
	OK(kvm_get_dirty_log(vm, SLOT, b));
	CHECK(memcmp(a, b, sizeof(a)) == 0);                   /* kept */
	long n = 0;
	for (size_t i = 0; i < PAGES / 64; i++)
		n += __builtin_popcountll(a[i]);
	CHECK(n > 0);
	/* Clear the first 64 pages' bits only. */
	struct kvm_clear_dirty_log clr = { .slot = SLOT, .first_page = 0, .num_pages = 64,
					   .dirty_bitmap = a };
	OK(kvm_clear_dirty_log(vm, &clr));
	OK(kvm_get_dirty_log(vm, SLOT, b));
	CHECK_EQ(b[0], 0);
	CHECK(memcmp(a + 1, b + 1, sizeof(a) - 8) == 0);
	/* The whole slot, then a write is reported again. */
	clr.num_pages = PAGES;
	clr.dirty_bitmap = b;
	OK(kvm_clear_dirty_log(vm, &clr));
	OK(kvm_get_dirty_log(vm, SLOT, a));
	for (size_t i = 0; i < PAGES / 64; i++)
		CHECK_EQ(a[i], 0);
	write_for(1);
	OK(kvm_get_dirty_log(vm, SLOT, a));
	n = 0;
	for (size_t i = 0; i < PAGES / 64; i++)
		n += __builtin_popcountll(a[i]);
	CHECK(n > 0 && n <= WRITES_PER_EXIT);
	/* Through the escape hatch too: off (reading clears again), INITIALLY_SET refused. */
	cap.args[0] = 0;
	OK(kvm_vm_ioctl(vm, KVM_ENABLE_CAP, &cap));
	write_for(1);
	OK(kvm_get_dirty_log(vm, SLOT, a));
	OK(kvm_get_dirty_log(vm, SLOT, b));
	n = 0;
	for (size_t i = 0; i < PAGES / 64; i++) {
		n += __builtin_popcountll(a[i]);
		CHECK_EQ(b[i], 0);
	}
	CHECK(n > 0);
	cap.args[0] = 3;
	CHECK_ERR(kvm_vm_ioctl(vm, KVM_ENABLE_CAP, &cap), EINVAL);
	/* Bad input, as the kernel answers it for the bitmap. */
	clr.first_page = 1;
	CHECK_ERR(kvm_clear_dirty_log(vm, &clr), EINVAL);
	clr.first_page = 64;
	clr.num_pages = 65;
	CHECK_ERR(kvm_clear_dirty_log(vm, &clr), EINVAL);
	clr.num_pages = PAGES;                                 /* past the end */
	CHECK_ERR(kvm_clear_dirty_log(vm, &clr), EINVAL);
	clr.first_page = 0;
	clr.dirty_bitmap = NULL;
	CHECK_ERR(kvm_clear_dirty_log(vm, &clr), EFAULT);
	clr.dirty_bitmap = a;
	clr.slot = 0;                                          /* does not log */
	CHECK_ERR(kvm_clear_dirty_log(vm, &clr), ENOENT);
	end_vm(vm);
}

/* A harvest racing kvm_destroy_vm on another thread ends in EBADF, never a crash. */
static int racing_vm;
static void *harvest_until_gone(void *arg)
{
	(void)arg;
	static uint64_t bm[PAGES / 64];
	long n = 0;
	while (kvm_get_dirty_log(racing_vm, SLOT, bm) == 0)
		n++;
	CHECK_EQ(errno, EBADF);
	return (void *)n;
}

static void destroy_race(void)
{
	watchdog_phase("harvest racing kvm_destroy_vm", 60);
	for (int i = 0; i < 20; i++) {
		racing_vm = vm_with_memory(0x200000);
		OK(kvm_enable_dirty_ring(racing_vm, ring_bytes));
		OK(kvm_set_memory_region(racing_vm, SLOT, KVM_MEM_LOG_DIRTY_PAGES, SLOT_GPA,
					 SLOT_SIZE));
		load_blob(racing_vm, CODE, BLOB(um_dirty_writer));
		writer_vcpu(racing_vm, 0, SLOT_GPA, PAGES);
		write_for(50);
		OK(kvm_detach_vcpu());
		pthread_t t;
		CHECK(pthread_create(&t, NULL, harvest_until_gone, NULL) == 0);
		struct timespec d = { 0, 100000 * (i % 5) };
		nanosleep(&d, NULL);
		OK(kvm_destroy_vm(racing_vm));
		CHECK(pthread_join(t, NULL) == 0);
		CHECK_ERR(kvm_get_dirty_log(racing_vm, SLOT, (uint64_t[1]){ 0 }), EBADF);
	}
}

/* ---- kvm_enable_dirty_ring racing slot changes and dirty-log calls ------------------ */

struct enable_racer { int vm; long at; int started, done, get_err, set_err, made; };

/* Reads slot 2's log until the main thread's enable is over, and creates logging slot 3
 * meanwhile: neither may see the kernel on the ring before libkvm's bitmaps are. */
static void *race_enable(void *arg)
{
	struct enable_racer *r = arg;
	uint64_t bm[1];
	for (long n = 0; !__atomic_load_n(&r->done, __ATOMIC_ACQUIRE); n++) {
		if (kvm_get_dirty_log(r->vm, 2, bm) != 0 && !r->get_err)
			r->get_err = errno;
		__atomic_store_n(&r->started, 1, __ATOMIC_RELEASE);
		if (n == r->at) {
			if (kvm_set_memory_region(r->vm, 3, KVM_MEM_LOG_DIRTY_PAGES, 0x200000,
						  0x10000) == 0)
				r->made = 1;
			else
				r->set_err = errno;
		}
	}
	return NULL;
}

static void enable_race(void)
{
	watchdog_phase("kvm_enable_dirty_ring racing slot changes", 60);
	long made = 0;
	for (int i = 0; i < 300; i++) {
		struct enable_racer r = { .vm = vm_with_memory(0x10000), .at = i % 4 };
		OK(kvm_set_memory_region(r.vm, 2, KVM_MEM_LOG_DIRTY_PAGES, 0x100000, 0x10000));
		pthread_t t;
		CHECK(pthread_create(&t, NULL, race_enable, &r) == 0);
		while (!__atomic_load_n(&r.started, __ATOMIC_ACQUIRE))
			sched_yield();
		OK(kvm_enable_dirty_ring(r.vm, ring_bytes));
		__atomic_store_n(&r.done, 1, __ATOMIC_RELEASE);
		CHECK(pthread_join(t, NULL) == 0);
		if (r.get_err)
			FAIL("round %d: kvm_get_dirty_log during the enable: %s", i,
			     strerror(r.get_err));
		CHECK_EQ(r.set_err, 0);
		/* Slot 3, made before, during or after the switch, logs on the ring. */
		uint64_t bm[1];
		if (r.made) {
			if (kvm_get_dirty_log(r.vm, 3, bm) != 0)
				FAIL("round %d: slot 3 without libkvm's bitmap: %s", i,
				     strerror(errno));
			made++;
		}
		OK(kvm_destroy_vm(r.vm));
	}
	printf("enable race: slot 3 made while enabling in %ld of 300 rounds\n", made);
	CHECK(made > 0);
}

/* ---- bad buffers: EFAULT, never SIGSEGV, on the ring as on the bitmap ---------------- */

/* `vm` has logging slot 2 of 16 pages. */
static void bad_buffers(int vm)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *gone = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *ro = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(gone != MAP_FAILED && ro != MAP_FAILED);
	CHECK(munmap(gone, pg) == 0);
	/* The bitmap ends where the mapping does: the next page is gone. */
	void *edge = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(edge != MAP_FAILED);
	CHECK(munmap((char *)edge + pg, pg) == 0);
	CHECK_ERR(kvm_get_dirty_log(vm, 2, (void *)1), EFAULT);
	CHECK_ERR(kvm_get_dirty_log(vm, 2, gone), EFAULT);
	CHECK_ERR(kvm_get_dirty_log(vm, 2, ro), EFAULT);
	CHECK_ERR(kvm_get_dirty_log(vm, 2, (char *)edge + pg - 4), EFAULT);
	OK(kvm_get_dirty_log(vm, 2, (char *)edge + pg - 8));
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, .args = { 1 } };
	if (kvm_check_extension(vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0) {
		OK(kvm_enable_cap(vm, &cap));
		struct kvm_clear_dirty_log clr = { .slot = 2, .first_page = 0, .num_pages = 16,
						   .dirty_bitmap = (void *)1 };
		CHECK_ERR(kvm_clear_dirty_log(vm, &clr), EFAULT);
		clr.dirty_bitmap = gone;
		CHECK_ERR(kvm_clear_dirty_log(vm, &clr), EFAULT);
		clr.dirty_bitmap = (char *)edge + pg - 4;
		CHECK_ERR(kvm_clear_dirty_log(vm, &clr), EFAULT);
		clr.dirty_bitmap = ro;                  /* readable is enough */
		OK(kvm_clear_dirty_log(vm, &clr));
		CHECK_ERR(kvm_get_dirty_log(vm, 2, gone), EFAULT);   /* keeping the log too */
		cap.args[0] = 0;
		OK(kvm_enable_cap(vm, &cap));
	} else {
		skip_section("kvm_clear_dirty_log EFAULT", "no KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2");
	}
	CHECK(munmap(ro, pg) == 0);
	CHECK(munmap(edge, pg) == 0);
}

/* ---- errnos ------------------------------------------------------------------------- */

static void errnos(void)
{
	watchdog_phase("errnos", 60);
	CHECK_ERR(kvm_enable_dirty_ring(-1, ring_bytes), EBADF);
	int vm = vm_with_memory(0x10000);
	CHECK_ERR(kvm_enable_dirty_ring(vm, 0), EINVAL);
	CHECK_ERR(kvm_enable_dirty_ring(vm, 2048), EINVAL);             /* below a page */
	CHECK_ERR(kvm_enable_dirty_ring(vm, 3 * 4096), EINVAL);         /* not a power of 2 */
	CHECK_ERR(kvm_enable_dirty_ring(vm, 2u * (uint32_t)ring_max), EINVAL); /* too big */
	CHECK_ERR(kvm_enable_dirty_ring(vm, 0x80000000u), EINVAL);
	/* The capability is still refused through the other ways in. */
	struct kvm_enable_cap cap = { .cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL,
				      .args = { ring_bytes } };
	CHECK_ERR(kvm_enable_cap(vm, &cap), EINVAL);
	CHECK_ERR(kvm_vm_ioctl(vm, KVM_ENABLE_CAP, &cap), EINVAL);
	/* INITIALLY_SET first: then the ring is refused. */
	cap = (struct kvm_enable_cap){ .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, .args = { 3 } };
	OK(kvm_enable_cap(vm, &cap));
	CHECK_ERR(kvm_enable_dirty_ring(vm, ring_bytes), EINVAL);
	cap.args[0] = 0;
	OK(kvm_enable_cap(vm, &cap));
	OK(kvm_enable_dirty_ring(vm, ring_bytes));
	CHECK_ERR(kvm_enable_dirty_ring(vm, ring_bytes), EBUSY);        /* twice */
	CHECK_ERR(kvm_enable_dirty_ring(vm, 2 * ring_bytes), EBUSY);
	/* The dirty log's own errnos, on the ring. */
	uint64_t bm[2];
	CHECK_ERR(kvm_get_dirty_log(vm, 0, bm), EINVAL);                /* slot does not log */
	CHECK_ERR(kvm_get_dirty_log(vm, 5, bm), ENOENT);
	CHECK_ERR(kvm_get_dirty_log(vm, 0, NULL), EFAULT);
	OK(kvm_set_memory_region(vm, 2, KVM_MEM_LOG_DIRTY_PAGES, 0x100000, 0x10000));
	OK(kvm_get_dirty_log(vm, 2, bm));
	CHECK_EQ(bm[0], 0);
	bad_buffers(vm);
	OK(kvm_destroy_vm(vm));
	/* The same bad buffers in bitmap mode: the kernel's EFAULT. */
	vm = vm_with_memory(0x10000);
	OK(kvm_set_memory_region(vm, 2, KVM_MEM_LOG_DIRTY_PAGES, 0x100000, 0x10000));
	bad_buffers(vm);
	OK(kvm_destroy_vm(vm));
	/* After the first vcpu: EBUSY, even once it is gone from the thread. */
	vm = vm_with_memory(0x10000);
	OK(kvm_create_vcpu(vm, 0));
	CHECK_ERR(kvm_enable_dirty_ring(vm, ring_bytes), EBUSY);
	OK(kvm_detach_vcpu());
	CHECK_ERR(kvm_enable_dirty_ring(vm, ring_bytes), EBUSY);
	OK(kvm_destroy_vm(vm));
}

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	int acq = OK(kvm_check_extension(vm, KVM_CAP_DIRTY_LOG_RING_ACQ_REL));
	int plain = OK(kvm_check_extension(vm, KVM_CAP_DIRTY_LOG_RING));
	ring_max = acq ? acq : plain;
	if (!ring_max) {
		CHECK_ERR(kvm_enable_dirty_ring(vm, 4096), EOPNOTSUPP);
		OK(kvm_destroy_vm(vm));
		verifier(0, 1);
		verifier(0, 4);
		skip_test("KVM_CAP_DIRTY_LOG_RING is 0: no dirty ring on this host");
	}
	OK(kvm_destroy_vm(vm));
	/* The smallest ring the kernel takes (it keeps some entries in reserve). */
	for (ring_bytes = 4096; ring_bytes <= (uint32_t)ring_max; ring_bytes *= 2) {
		vm = vm_with_memory(0x10000);
		int r = kvm_enable_dirty_ring(vm, ring_bytes);
		CHECK(r == 0 || errno == EINVAL);
		OK(kvm_destroy_vm(vm));
		if (r == 0)
			break;
	}
	CHECK(ring_bytes <= (uint32_t)ring_max);
	printf("dirty ring: at most %d bytes, smallest %u\n", ring_max, ring_bytes);

	verifier(0, 1);
	verifier(ring_bytes, 1);
	verifier(0, 4);
	verifier(ring_bytes, 4);
	full_ring_unharvested();
	slots_change();
	manual_protect();
	destroy_race();
	enable_race();
	errnos();
	return 0;
}
