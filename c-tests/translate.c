/* kvm_translate with the test's own page tables gives the physical address they name, with the right writeable and usermode bits. */
#include "harness.h"
#include <pthread.h>

static void expect(uint64_t linear, int valid, uint64_t phys, int writeable, int usermode)
{
	uint64_t pa = 0x5a5a;
	uint8_t v = 9, w = 9, u = 9;
	OK(kvm_translate(linear, &pa, &v, &w, &u));
	if (v != valid || (valid && pa != phys) || w != writeable || u != usermode)
		FAIL("translate 0x%llx: valid %u phys 0x%llx writeable %u usermode %u; expected %d 0x%llx %d %d",
		     (unsigned long long)linear, v, (unsigned long long)pa, w, u, valid,
		     (unsigned long long)phys, writeable, usermode);
}

static void *no_vcpu(void *arg)
{
	uint64_t pa;
	uint8_t v, w, u;
	CHECK_ERR(kvm_translate(0, &pa, &v, &w, &u), ESRCH);
	return arg;
}

static uint32_t *at(int vm, uint64_t gpa)
{
	uint32_t *p = kvm_guest_memory(vm, gpa, 4);
	CHECK(p != NULL);
	return p;
}

static void thirty_two_bit(void)
{
	int vm = vm_with_memory(0x20000);
	load_blob(vm, 0x2000, BLOB(pm_paging));
	uint32_t *pd = kvm_guest_memory(vm, 0x10000, 0x3000), *pt = pd + 1024, *pt2 = pd + 2048;
	CHECK(pd != NULL);
	pd[0] = 0x11000 | 7;                 /* -> pt, user, writable */
	pd[1] = 0x00000000 | 0x83;           /* 4 MiB page at 0, supervisor, writable */
	pd[2] = 0x12000 | 5;                 /* -> pt2, user, read-only */
	for (uint32_t i = 0; i < 0x20; i++)
		pt[i] = i << 12 | 3;             /* identity, supervisor, writable */
	pt[0x40] = 0x5000 | 7;               /* user, writable */
	pt[0x41] = 0x6000 | 1;               /* supervisor, read-only */
	pt[0x42] = 0x7000 | 5;               /* user, read-only */
	pt2[0] = 0x8000 | 7;                 /* read-only through the PDE */
	*at(vm, 0x5010) = 0x5eed;
	*at(vm, 0x1234) = 0x4321;

	OK(kvm_create_vcpu(vm, 0));
	setup_protected_mode(0x2000);
	/* Paging off: every address is its own, with no protection. */
	expect(0x5010, 1, 0x5010, 1, 1);
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	s.cr3 = 0x10000;
	s.cr4 |= 0x10;                       /* PSE */
	s.cr0 |= 0x80000000;                 /* PG */
	OK(kvm_set_sregs(&s));
	OK(kvm_get_sregs(&s));
	if (!(s.cr0 & 0x80000000)) {
		/* Some hosts (kvm_pvm) page only in long mode and drop CR0.PG here. */
		skip_section("32-bit paging", "the host drops CR0.PG outside long mode (kvm_pvm)");
		end_vm(vm);
		return;
	}

	/* The guest uses the mappings. */
	CHECK_EQ(run_until_out(0x10), 0x5eed);
	run_until_out(0x11);
	CHECK_EQ(*at(vm, 0x5020), 0xabcd1234);
	CHECK_EQ(run_until_out(0x12), 0x4321);

	expect(0x40010, 1, 0x5010, 1, 1);
	expect(0x41abc, 1, 0x6abc, 0, 0);
	expect(0x42008, 1, 0x7008, 0, 1);
	expect(0x43000, 0, 0, 0, 0);         /* PTE not present */
	expect(0x2000, 1, 0x2000, 1, 0);
	expect(0x401234, 1, 0x1234, 1, 0);   /* 4 MiB page */
	expect(0x800123, 1, 0x8123, 0, 1);
	expect(0xc00000, 0, 0, 0, 0);        /* PDE not present */

	end_vm(vm);
}

static void four_level(void)
{
	int vm = vm_with_memory(0x40000);
	load_blob(vm, 0x2000, BLOB(lm_paging));
	OK(kvm_create_vcpu(vm, 0));
	/* The host's CPUID, for 1 GiB pages where it has them. */
	struct kvm_cpuid2 *c = supported_cpuid();
	OK(kvm_set_cpuid(c));
	int gbpages = 0;
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0x80000001)
			gbpages = !!(c->entries[i].edx & (1u << 26));
	free(c);
	/* Identity-mapped 2 MiB supervisor pages from the harness, changed below. */
	setup_long_mode(vm, 0x20000, 0x2000);
	uint64_t *pml4 = kvm_guest_memory(vm, 0x20000, 0x4000), *pdpt = pml4 + 512,
		 *pd = pml4 + 1024, *pt = pml4 + 1536;
	CHECK(pml4 != NULL);
	pml4[0] |= 4;                        /* user */
	pdpt[0] |= 4;
	pdpt[1] = 0x40000000 | 0x87;         /* 1 GiB page, user, writable */
	pdpt[2] = 0;
	pd[1] = 0x23000 | 7;                 /* -> pt */
	pd[2] = 0x600000 | 0x85;             /* 2 MiB page at 6 MiB, user, read-only */
	memset(pt, 0, 4096);
	pt[5] = 0x9000 | 5;                  /* user, read-only */
	pt[6] = 0xa000 | 7;                  /* user, writable */
	*at(vm, 0x9010) = 0x99;

	CHECK_EQ(run_until_out(0x10), 0x99);
	run_until_out(0x11);
	CHECK_EQ(*at(vm, 0xa008), 0x77);
	run_expect(KVM_EXIT_HLT);

	expect(0x2000, 1, 0x2000, 1, 0);     /* 2 MiB supervisor page */
	expect(0x205abc, 1, 0x9abc, 0, 1);
	expect(0x206008, 1, 0xa008, 1, 1);
	expect(0x207000, 0, 0, 0, 0);
	expect(0x412345, 1, 0x612345, 0, 1);
	if (gbpages)
		expect(0x40001234, 1, 0x40001234, 1, 1);
	else
		skip_section("1 GiB pages", "KVM_GET_SUPPORTED_CPUID has no PDPE1GB (0x80000001 EDX bit 26)");
	expect(0x80000000, 0, 0, 0, 0);
	expect(0x8000000000ULL, 0, 0, 0, 0); /* PML4 entry 1 */

	/* Bad input. */
	uint64_t pa;
	uint8_t v, w, u;
	CHECK_ERR(kvm_translate(0x2000, NULL, &v, &w, &u), EFAULT);
	CHECK_ERR(kvm_translate(0x2000, &pa, NULL, &w, &u), EFAULT);
	CHECK_ERR(kvm_translate(0x2000, &pa, &v, NULL, &u), EFAULT);
	CHECK_ERR(kvm_translate(0x2000, &pa, &v, &w, NULL), EFAULT);
	/* The same pointer for three results is allowed: written in order, usermode last. */
	v = 0xff;
	OK(kvm_translate(0x80000000, &pa, &v, &v, &v));
	CHECK_EQ(v, 0);
	on_thread(no_vcpu, NULL);

	end_vm(vm);
}

int main(void)
{
	require_kvm();
	thirty_two_bit();
	four_level();
	return 0;
}
