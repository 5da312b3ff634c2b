/* Guest-chosen addresses and lengths never become host pointers outside guest memory: kvm_guest_memory edges, string I/O and MMIO data inside the run area, page-table walks at slot edges. */
#define _GNU_SOURCE
#include "harness.h"
#include <sys/mman.h>

static int vm;
static long mmap_size;

/* The I/O data of the current exit, bounds-checked against the run area. */
static uint8_t *io_data(struct kvm_run *run)
{
	/* Each term is checked on its own, so nothing can wrap. */
	uint64_t off = run->io.data_offset, len = (uint64_t)run->io.size * run->io.count;
	if (off < sizeof(struct kvm_run) || off > (uint64_t)mmap_size ||
	    len > (uint64_t)mmap_size - off)
		FAIL("I/O data at 0x%llx, %llu bytes: outside the run area of %ld bytes",
		     (unsigned long long)off, (unsigned long long)len, mmap_size);
	return (uint8_t *)run + run->io.data_offset;
}

static void lookup_edges(void)
{
	/* Slots: 0 [0, 0x10000), 1 [0x10000, 0x12000) right after it, and 2 the last
	 * page below 4 GiB. */
	OK(kvm_set_memory_region(vm, 1, 0, 0x10000, 0x2000));
	OK(kvm_set_memory_region(vm, 2, 0, 0xfffff000, 0x1000));
	uint8_t *s0 = kvm_guest_memory(vm, 0, 0x10000);
	uint8_t *s1 = kvm_guest_memory(vm, 0x10000, 0x2000);
	uint8_t *s2 = kvm_guest_memory(vm, 0xfffff000, 0x1000);
	CHECK(s0 && s1 && s2);

	/* Inside: the first and last byte of each slot, and each whole slot. */
	CHECK(kvm_guest_memory(vm, 0xffff, 1) == s0 + 0xffff);
	CHECK(kvm_guest_memory(vm, 0x11fff, 1) == s1 + 0x1fff);
	CHECK(kvm_guest_memory(vm, 0xffffffff, 1) == s2 + 0xfff);
	CHECK(kvm_guest_memory(vm, 0x10000, 1) == s1);
	/* One past, one before, straddling the boundary of adjacent slots. */
	CHECK_ERR(kvm_guest_memory(vm, 0x12000, 1), EFAULT);
	CHECK_ERR(kvm_guest_memory(vm, 0x11fff, 2), EFAULT);
	CHECK_ERR(kvm_guest_memory(vm, 0xffff, 2), EFAULT);            /* slots 0 and 1 */
	CHECK_ERR(kvm_guest_memory(vm, 0, 0x10001), EFAULT);
	CHECK_ERR(kvm_guest_memory(vm, 0xffffefff, 2), EFAULT);
	CHECK_ERR(kvm_guest_memory(vm, 0xffffffff, 2), EFAULT);
	CHECK_ERR(kvm_guest_memory(vm, 0x100000000ULL, 1), EFAULT);
	/* The top of the 64-bit space and lengths that wrap. */
	CHECK_ERR(kvm_guest_memory(vm, UINT64_MAX, 1), EFAULT);
	CHECK_ERR(kvm_guest_memory(vm, UINT64_MAX - 0xfff, 0x1000), EFAULT);
	CHECK_ERR(kvm_guest_memory(vm, 0x1000, UINT64_MAX), EFAULT);
	CHECK_ERR(kvm_guest_memory(vm, 0x1000, UINT64_MAX - 0xfff), EFAULT);  /* end = 0 */
	CHECK_ERR(kvm_guest_memory(vm, 0x1000, UINT64_MAX - 0xffe), EFAULT);  /* end = 1 */
	CHECK_ERR(kvm_guest_memory(vm, 0xfffff000, 1ULL << 63), EFAULT);
	CHECK_ERR(kvm_guest_memory(vm, 0, 0), EFAULT);

	/* Moving slot 1 keeps its memory: the old address is refused, the new one gives
	 * the same host bytes. (string_io checks that the bytes are the guest's.) */
	s1[0x1fff] = 0xa5;
	OK(kvm_set_memory_region(vm, 1, 0, 0x40000, 0x2000));
	CHECK_ERR(kvm_guest_memory(vm, 0x11fff, 1), EFAULT);
	uint8_t *moved = kvm_guest_memory(vm, 0x41fff, 1);
	CHECK(moved == s1 + 0x1fff);
	CHECK_EQ(*moved, 0xa5);
	/* Deleted: refused, and the host memory is gone. */
	OK(kvm_set_memory_region(vm, 1, 0, 0, 0));
	CHECK_ERR(kvm_guest_memory(vm, 0x40000, 1), EFAULT);
	CHECK(!is_mapped(s1));
	OK(kvm_set_memory_region(vm, 2, 0, 0, 0));
	CHECK(!is_mapped(s2));
}

static void string_io(void)
{
	/* rep outsb of 0x2345 bytes from 0x20000 (slot 1) and rep insw of 0x3000 words
	 * into 0x30000: the guest picks the counts, KVM splits them into exits, and every
	 * exit's data lies inside the run area. */
	OK(kvm_set_memory_region(vm, 1, 0, 0x20000, 0x20000));
	uint8_t *src = kvm_guest_memory(vm, 0x20000, 0x10000);
	uint8_t *dst = kvm_guest_memory(vm, 0x30000, 0x6000);
	CHECK(src && dst);
	for (int i = 0; i < 0x10000; i++)
		src[i] = (uint8_t)(i * 7 + 3);
	load_blob(vm, 0x1000, BLOB(mb_string_io));
	setup_real_mode(0x1000);
	EDIT_SREGS(s, s.ds.selector = 0x2000; s.ds.base = 0x20000; s.es.selector = 0x3000; s.es.base = 0x30000);
	EDIT_REGS(r, r.rcx = 0x2345; r.rsi = 0; r.rdx = 0x3000; r.rdi = 0);

	struct kvm_run *run = kvm_run_area();
	uint32_t out_bytes = 0, in_words = 0, exits = 0, max_count = 0;
	for (;;) {
		int reason;
		do
			reason = kvm_run();
		while (reason == -1 && errno == EINTR);
		CHECK(reason >= 0);
		if (reason == KVM_EXIT_HLT)
			break;
		CHECK_EQ(reason, KVM_EXIT_IO);
		exits++;
		uint8_t *data = io_data(run);
		if (run->io.count > max_count)
			max_count = run->io.count;
		if (run->io.port == 0x30) {
			CHECK_EQ(run->io.direction, KVM_EXIT_IO_OUT);
			CHECK_EQ(run->io.size, 1);
			for (uint32_t i = 0; i < run->io.count; i++)
				if (data[i] != src[out_bytes + i])
					FAIL("out byte %u is 0x%x, guest memory has 0x%x", out_bytes + i,
					     data[i], src[out_bytes + i]);
			out_bytes += run->io.count;
		} else {
			CHECK_EQ(run->io.port, 0x31);
			CHECK_EQ(run->io.direction, KVM_EXIT_IO_IN);
			CHECK_EQ(run->io.size, 2);
			for (uint32_t i = 0; i < run->io.count; i++) {
				uint16_t w = (uint16_t)(0x5000 + in_words + i);
				memcpy(data + 2 * i, &w, 2);
			}
			in_words += run->io.count;
		}
	}
	CHECK_EQ(out_bytes, 0x2345);
	CHECK_EQ(in_words, 0x3000);
	for (uint32_t i = 0; i < 0x3000; i++) {
		uint16_t w;
		memcpy(&w, dst + 2 * i, 2);
		if (w != (uint16_t)(0x5000 + i))
			FAIL("in word %u landed as 0x%x", i, w);
	}
	printf("string I/O: %u exits, at most %u items each, data always inside the %ld-byte run area\n",
	       exits, max_count, mmap_size);
	OK(kvm_set_memory_region(vm, 1, 0, 0, 0));
}

static void wide_mmio(void)
{
	/* 8- and 16-byte accesses: the data never exceeds run->mmio.data[8]. */
	load_blob(vm, 0x1000, BLOB(mb_wide_mmio));
	memcpy(kvm_guest_memory(vm, 0x3000, 16), "0123456789abcdef", 16);
	setup_long_mode(vm, 0x8000, 0x1000);
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	s.cr4 |= 0x600;              /* OSFXSR | OSXMMEXCPT: SSE allowed */
	s.cr0 = (s.cr0 & ~4ULL) | 2; /* no EM, MP */
	OK(kvm_set_sregs(&s));
	struct kvm_run *run = kvm_run_area();

	run_expect(KVM_EXIT_MMIO);
	check_mmio(0x20000, 8, 1);
	uint64_t v;
	memcpy(&v, run->mmio.data, 8);
	CHECK_EQ(v, 0x1122334455667788ULL);

	run_expect(KVM_EXIT_MMIO);
	check_mmio(0x20008, 8, 0);
	v = 0x0807060504030201ULL;
	memcpy(run->mmio.data, &v, 8);
	CHECK_EQ(run_until_out(0x10), 0x04030201);
	CHECK_EQ(run_until_out(0x11), 0x08070605);

	/* 16 bytes: two exits of at most 8. */
	char got[16];
	uint32_t n = 0;
	while (n < 16) {
		run_expect(KVM_EXIT_MMIO);
		CHECK(run->mmio.len >= 1 && run->mmio.len <= sizeof(run->mmio.data));
		CHECK_EQ(run->mmio.is_write, 1);
		CHECK_EQ(run->mmio.phys_addr, 0x20010 + n);
		memcpy(got + n, run->mmio.data, run->mmio.len);
		n += run->mmio.len;
	}
	CHECK(memcmp(got, "0123456789abcdef", 16) == 0);
	run_expect(KVM_EXIT_HLT);
}

static void unmapped_host_memory(void)
{
	/* A slot whose host memory the caller made inaccessible: the guest's access is
	 * the kernel's to refuse. It ends in EFAULT from kvm_run, or, where KVM emulates
	 * the access, in an MMIO exit for that address; never in a host crash. */
	void *none = mmap(NULL, 0x1000, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(none != MAP_FAILED);
	OK(kvm_set_user_memory_region(vm, 3, 0, 0x100000, 0x1000, none));
	static const uint8_t reads_1m[] = {
		0xb8, 0xff, 0xff,       /* mov $0xffff, %ax */
		0x8e, 0xd8,             /* mov %ax, %ds */
		0xa0, 0x10, 0x00,       /* mov (0x10), %al: 0xffff0 + 0x10 = 0x100000 */
		0xe6, 0x10,             /* out %al, $0x10 */
		0xf4,                   /* hlt */
	};
	memcpy(kvm_guest_memory(vm, 0x1000, sizeof(reads_1m)), reads_1m, sizeof(reads_1m));
	setup_real_mode(0x1000);
	int r = kvm_run();
	if (r == -1) {
		CHECK_EQ(errno, EFAULT);
		printf("inaccessible host memory: kvm_run failed with EFAULT\n");
	} else {
		CHECK_EQ(r, KVM_EXIT_MMIO);
		struct kvm_run *run = kvm_run_area();
		check_mmio(0x100000, 1, 0);
		run->mmio.data[0] = 0x77;
		CHECK_EQ(run_until_out(0x10), 0x77);
		run_expect(KVM_EXIT_HLT);
		printf("inaccessible host memory: an MMIO exit for its guest address\n");
	}
	OK(kvm_set_memory_region(vm, 3, 0, 0, 0));
	munmap(none, 0x1000);
}

static void page_table_walk(void)
{
	/* kvm_translate reads guest page tables at guest-chosen addresses (CR3, then each
	 * entry). Tables whose entries are the last 8 bytes of the slot: PML4 at 0xf000,
	 * PDPT at 0xe000, PD at 0xd000, each using entry 511, map the top 2 MiB of the
	 * address space onto guest-physical 0. */
	setup_long_mode(vm, 0x8000, 0x1000);
	uint64_t *pml4 = kvm_guest_memory(vm, 0xf000, 0x1000);
	uint64_t *pdpt = kvm_guest_memory(vm, 0xe000, 0x1000);
	uint64_t *pd = kvm_guest_memory(vm, 0xd000, 0x1000);
	CHECK(pml4 && pdpt && pd);
	memset(pml4, 0, 0x1000);
	memset(pdpt, 0, 0x1000);
	memset(pd, 0, 0x1000);
	pml4[511] = 0xe000 | 3;
	pdpt[511] = 0xd000 | 3;
	pd[511] = 0x83;
	EDIT_SREGS(s, s.cr3 = 0xf000);
	uint64_t phys;
	uint8_t valid, wr, user;
	OK(kvm_translate(0xffffffffffe01234ULL, &phys, &valid, &wr, &user));
	CHECK_EQ(valid, 1);
	CHECK_EQ(phys, 0x1234);
	CHECK_EQ(wr, 1);
	CHECK_EQ(user, 0);
	/* An entry pointing past every slot, and CR3 outside them: not mapped, no crash. */
	pdpt[511] = 0xfffff000 | 3;
	OK(kvm_translate(0xffffffffffe01234ULL, &phys, &valid, &wr, &user));
	CHECK_EQ(valid, 0);
	pdpt[511] = 0x10000 | 3; /* one past the slot's end */
	OK(kvm_translate(0xffffffffffe01234ULL, &phys, &valid, &wr, &user));
	CHECK_EQ(valid, 0);
	struct kvm_sregs s;
	s.cr3 = 0x7ffff000;
	OK(kvm_set_sregs(&s));
	OK(kvm_translate(0x1000, &phys, &valid, &wr, &user));
	CHECK_EQ(valid, 0);
}

int main(void)
{
	require_kvm();
	mmap_size = kvm_get_vcpu_mmap_size();
	CHECK(mmap_size >= (long)sizeof(struct kvm_run));
	vm = vm_with_memory(0x10000);
	OK(kvm_create_vcpu(vm, 0));
	lookup_edges();
	string_io();
	unmapped_host_memory();
	wide_mmio();
	page_table_walk();
	end_vm(vm);
	return 0;
}
