/* At vm.max_map_count, deleting slots either frees their memory or fails with ENOMEM leaving the slot intact, and nothing libkvm mapped outlives kvm_destroy_vm. */
#define _GNU_SOURCE
#include "harness.h"
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL
#define NSLOTS 200

/* This process's own one-page mappings, alternately PROT_NONE and PROT_READ so that
 * neighbours do not merge: each takes one of the process's vm.max_map_count VMAs. */
static void **fills;
static long nfill, cap;

static void fill_to_limit(void)
{
	for (;;) {
		void *p = mmap(NULL, PAGE, nfill & 1 ? PROT_READ : PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED) {
			CHECK(errno == ENOMEM);
			return;
		}
		CHECK(nfill < cap);
		fills[nfill++] = p;
	}
}

static void free_fills(void)
{
	while (nfill > 0)
		CHECK(munmap(fills[--nfill], PAGE) == 0);
}

/* Whether the page at `p` is mapped (mincore fails with ENOMEM where nothing is). */
static int mapped(const void *p)
{
	unsigned char v;
	if (mincore((void *)((uintptr_t)p & ~(PAGE - 1)), PAGE, &v) == 0)
		return 1;
	CHECK(errno == ENOMEM);
	return 0;
}

static uint64_t gpa_of(int slot)
{
	return 0x100000 + (uint64_t)slot * 0x10000;
}

/* Deletes `slot`: either it is gone and its memory unmapped (1), or the call failed with
 * ENOMEM and the slot is exactly as before, memory and contents (0). */
static int delete_slot(int vm, int slot, uint8_t *host, size_t len)
{
	errno = 0;
	int r = kvm_set_memory_region(vm, slot, 0, 0, 0);
	if (r == 0) {
		if (mapped(host))
			FAIL("slot %d deleted (returned 0), but its memory at %p is still mapped",
			     slot, (void *)host);
		return 1;
	}
	if (r != -1 || errno != ENOMEM)
		FAIL("deleting slot %d: returned %d, errno %d (%s); expected 0 or ENOMEM", slot,
		     r, errno, strerror(errno));
	CHECK(kvm_guest_memory(vm, gpa_of(slot), len) == host);
	CHECK(mapped(host) && mapped(host + len - 1));
	CHECK_EQ(host[0], (uint8_t)slot);
	CHECK_EQ(host[len - 1], (uint8_t)~slot);
	return 0;
}

static uint8_t *make_slot(int vm, int slot, size_t len, int touch)
{
	OK(kvm_set_memory_region(vm, slot, 0, gpa_of(slot), len));
	uint8_t *h = kvm_guest_memory(vm, gpa_of(slot), len);
	CHECK(h != NULL);
	if (touch) {
		h[0] = (uint8_t)slot;
		h[len - 1] = (uint8_t)~slot;
	}
	return h;
}

/* The hostile program's case: many slots, every other one deleted at the limit. */
static void every_other_slot(void)
{
	static uint8_t *host[NSLOTS];
	static int gone[NSLOTS];
	int vm = OK(kvm_create_vm());
	for (int i = 0; i < NSLOTS; i++)
		host[i] = make_slot(vm, i, 2 * PAGE, 1);
	fill_to_limit();
	int freed = 0, refused = 0;
	for (int i = 0; i < NSLOTS; i += 2) {
		gone[i] = delete_slot(vm, i, host[i], 2 * PAGE);
		gone[i] ? freed++ : refused++;
	}
	free_fills();
	/* With VMAs to spare again, the refused deletes succeed. */
	for (int i = 0; i < NSLOTS; i += 2)
		if (!gone[i])
			CHECK(delete_slot(vm, i, host[i], 2 * PAGE));
	for (int i = 1; i < NSLOTS; i += 2)
		CHECK(mapped(host[i]) && host[i][0] == (uint8_t)i);
	OK(kvm_destroy_vm(vm));
	for (int i = 0; i < NSLOTS; i++)
		if (mapped(host[i]))
			FAIL("slot %d's memory at %p outlived kvm_destroy_vm", i, (void *)host[i]);
	printf("every other of %d slots deleted at the map limit: %d freed at once, %d refused with ENOMEM and freed later\n",
	       NSLOTS, freed, refused);
}

/* Maps one page at `at` exactly as libkvm maps guest memory (anonymous, private,
 * no-reserve, not inherited by fork), so that it can merge with a slot's mapping. */
static void *like_libkvm(void *at)
{
	void *p = mmap(at, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	CHECK(p == at);
	CHECK(madvise(p, PAGE, MADV_DONTFORK) == 0);
	return p;
}

/* A VM with three one-page slots, h[0..2], whose free neighbours around slot 1 (if
 * libkvm left them free) are mapped like libkvm's memory so that they merge with slot 1
 * into one VMA (*around, NULL where a neighbour was taken); slot 1 holds 1 at its start
 * and ~1 at its end, written after the merge so that the VMAs' anon_vma did not stop it. */
static int vm_with_merged_slot(uint8_t *h[3], void *around[2])
{
	int vm = OK(kvm_create_vm());
	for (int i = 0; i < 3; i++)
		h[i] = make_slot(vm, i, PAGE, 0);
	around[0] = like_libkvm(h[1] + PAGE);
	around[1] = like_libkvm(h[1] - PAGE);
	h[1][0] = 1;
	h[1][PAGE - 1] = (uint8_t)~1;
	return vm;
}

static void unmap_around(void *around[2])
{
	for (int i = 0; i < 2; i++)
		if (around[i])
			CHECK(munmap(around[i], PAGE) == 0);
}

/* A slot whose memory is in the middle of one VMA (neighbours merged with it on both
 * sides): unmapping it needs a split, which fails at the limit. The delete must then
 * report ENOMEM with the slot intact. */
static void slot_inside_a_merged_mapping(void)
{
	uint8_t *h[3];
	void *around[2];
	int vm = vm_with_merged_slot(h, around);
	fill_to_limit();
	int gone = delete_slot(vm, 1, h[1], PAGE);
	free_fills();
	if (!gone)
		CHECK(delete_slot(vm, 1, h[1], PAGE));
	unmap_around(around);
	OK(kvm_destroy_vm(vm));
	for (int i = 0; i < 3; i++)
		CHECK(!mapped(h[i]));
	printf("slot inside a merged mapping at the limit: %s\n",
	       gone ? "deleted and unmapped at once" : "ENOMEM, slot intact; deleted later");
}

/* The same merged slot, with kvm_destroy_vm at the limit: its memory is given back at
 * once, and its address range unmapped as soon as VMAs are free again. */
static void merged_slot_destroyed_at_the_limit(void)
{
	uint8_t *h[3];
	void *around[2];
	int vm = vm_with_merged_slot(h, around);
	fill_to_limit();
	OK(kvm_destroy_vm(vm));
	int late = mapped(h[1]);
	/* Still mapped: the pages were given back (they read as zero again). */
	if (late)
		CHECK_EQ(h[1][0], 0);
	free_fills();
	unmap_around(around);
	OK(kvm_destroy_vm(vm_with_memory(0x1000))); /* libkvm's next change of mappings */
	for (int i = 0; i < 3; i++)
		if (mapped(h[i]))
			FAIL("slot %d's memory at %p outlived kvm_destroy_vm and the next VM", i,
			     (void *)h[i]);
	printf("merged slot, VM destroyed at the limit: %s\n",
	       late ? "pages given back at once, range unmapped later" : "unmapped at once");
}

/* kvm_destroy_vm at the limit releases every mapping (at once, or at libkvm's next
 * mapping change once VMAs are free again). */
static void destroy_at_the_limit(void)
{
	static uint8_t *host[NSLOTS];
	int vm = OK(kvm_create_vm());
	for (int i = 0; i < NSLOTS; i++)
		host[i] = make_slot(vm, i, 2 * PAGE, 1);
	fill_to_limit();
	OK(kvm_destroy_vm(vm));
	int late = 0;
	for (int i = 0; i < NSLOTS; i++)
		late += mapped(host[i]);
	free_fills();
	OK(kvm_destroy_vm(vm_with_memory(0x1000)));
	for (int i = 0; i < NSLOTS; i++)
		if (mapped(host[i]))
			FAIL("slot %d's memory at %p outlived kvm_destroy_vm and the next VM", i,
			     (void *)host[i]);
	printf("VM of %d slots destroyed at the map limit: %d mappings released later\n", NSLOTS,
	       late);
}

int main(void)
{
	require_kvm();
	/* Valgrind and AddressSanitizer make mappings of their own as the program runs:
	 * at the map limit they would fail themselves, not libkvm. */
	const char *inst = getenv("LIBKVM_TEST_INSTRUMENTED");
	if (inst) {
		printf("not run under %s: it needs mappings of its own at vm.max_map_count\n", inst);
		return 0;
	}
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	CHECK(f != NULL);
	CHECK(fscanf(f, "%ld", &cap) == 1);
	fclose(f);
	cap += 1000;
	fills = malloc(cap * sizeof(*fills));
	CHECK(fills != NULL);
	every_other_slot();
	slot_inside_a_merged_mapping();
	merged_slot_destroyed_at_the_limit();
	destroy_at_the_limit();
	free(fills);
	return 0;
}
