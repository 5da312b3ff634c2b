/* XSAVE, debug registers, SREGS2, ONE_REG, XCRs, TSC frequency and nested state against what the guest reads and writes. */
#include "harness.h"

#define MSR_IA32_SYSENTER_CS 0x174
#define X86_MSR_REG(i) (KVM_REG_X86 | KVM_REG_SIZE_U64 | 2ULL << 32 | (i))

/* CPUID 0xD.0 EBX for `xcr0`: the end of the furthest enabled component, at least the
 * legacy area plus header (576). */
static uint32_t xsave_size_for(struct kvm_cpuid2 *c, uint64_t xcr0)
{
	uint32_t size = 576;
	for (int i = 2; i < 63; i++) {
		struct kvm_cpuid_entry2 *e = cpuid_leaf(c, 0xd, i);
		if ((xcr0 >> i & 1) && e && e->ebx + e->eax > size)
			size = e->ebx + e->eax;
	}
	return size;
}

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	protected_mode_vcpu(vm, 0, 0x2000, BLOB(pm_vcpu_state));
	struct kvm_cpuid2 *cpuid = supported_cpuid();
	OK(kvm_set_cpuid(cpuid));

	/* --- XSAVE: the guest's XMM0 appears in kvm_get_xsave; the XMM1 the host set with
	 * kvm_set_xsave is what the guest stores. */
	int size = OK(kvm_get_xsave_size());
	CHECK(size >= 4096);
	struct kvm_xsave *xs = calloc(1, size);
	CHECK(xs != NULL);
	uint8_t pattern[16], pattern2[16];
	for (int i = 0; i < 16; i++) {
		pattern[i] = (uint8_t)(0xa0 + i);
		pattern2[i] = (uint8_t)(0x50 + 3 * i);
	}
	memcpy(kvm_guest_memory(vm, 0x3000, 16), pattern, 16);
	run_until_out(0x70);
	CHECK_EQ(kvm_get_xsave(xs, size), size);
	CHECK(memcmp((uint8_t *)xs->region + 160, pattern, 16) == 0);   /* XMM0 */
	CHECK_ERR(kvm_get_xsave(xs, size - 1), E2BIG);
	CHECK_ERR(kvm_set_xsave(xs, size - 1), E2BIG);
	/* A buffer smaller than struct kvm_xsave: E2BIG, and nothing written past it. */
	uint8_t small[17] = {0};
	CHECK_ERR(kvm_get_xsave((struct kvm_xsave *)small, 16), E2BIG);
	CHECK_ERR(kvm_set_xsave((const struct kvm_xsave *)small, 16), E2BIG);
	CHECK_EQ(small[16], 0);
	memcpy((uint8_t *)xs->region + 176, pattern2, 16);                /* XMM1 */
	OK(kvm_set_xsave(xs, size));
	run_until_out(0x71);
	CHECK(memcmp(kvm_guest_memory(vm, 0x3100, 16), pattern2, 16) == 0);

	/* --- Debug registers. */
	struct kvm_debugregs d;
	OK(kvm_get_debugregs(&d));
	d.db[0] = 0x1234;
	OK(kvm_set_debugregs(&d));
	CHECK_EQ(run_until_out(0x50), 0x1234);
	run_until_out(0x51);
	OK(kvm_get_debugregs(&d));
	CHECK_EQ(d.db[1], 0x5678);
	d.dr7 = 1ULL << 40;                       /* reserved upper bits */
	CHECK_ERR(kvm_set_debugregs(&d), EINVAL);

	/* --- SREGS2: CR2 set by the host, CR3 loaded by the guest. */
	struct kvm_sregs2 s2;
	OK(kvm_get_sregs2(&s2));
	CHECK_EQ(s2.flags & KVM_SREGS2_FLAGS_PDPTRS_VALID, 0);   /* no PAE paging */
	s2.cr2 = 0xdeadb000;
	OK(kvm_set_sregs2(&s2));
	CHECK_EQ(run_until_out(0x60), 0xdeadb000);
	run_until_out(0x61);
	OK(kvm_get_sregs2(&s2));
	CHECK_EQ(s2.cr3, 0x5000);
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));                    /* the two forms agree */
	CHECK_EQ(s.cr3, 0x5000);
	s2.flags = 0x80;
	CHECK_ERR(kvm_set_sregs2(&s2), EINVAL);

	/* --- ONE_REG on an MSR. */
	CHECK_EQ(run_until_out(0x80), 0x4242);
	uint64_t v = 0;
	struct kvm_one_reg reg = { .id = X86_MSR_REG(MSR_IA32_SYSENTER_CS), .addr = (uintptr_t)&v };
	OK(kvm_get_one_reg(&reg));
	CHECK_EQ(v, 0x4242);
	v = 0x77;
	OK(kvm_set_one_reg(&reg));
	CHECK_EQ(run_until_out(0x81), 0x77);
	reg.id = X86_MSR_REG(0x12345678);
	CHECK(kvm_get_one_reg(&reg) == -1 && (errno == EINVAL || errno == ENOENT));
	reg.id = X86_MSR_REG(MSR_IA32_SYSENTER_CS);
	reg.addr = 0;
	CHECK_ERR(kvm_get_one_reg(&reg), EFAULT);

	/* --- XCR0: set by the host, the guest's CPUID 0xD reports the XSAVE size for it;
	 * set by the guest (XSETBV), read by the host. */
	struct kvm_xcrs x;
	OK(kvm_get_xcrs(&x));
	CHECK_EQ(x.nr_xcrs, 1);
	CHECK_EQ(x.xcrs[0].xcr, 0);
	CHECK_EQ(x.xcrs[0].value, 1);             /* x87 only after reset */
	struct kvm_cpuid_entry2 *d0 = cpuid_leaf(cpuid, 0xd, 0);
	CHECK(d0 != NULL);
	uint64_t xcr0 = (d0->eax & 4) ? 7 : 3;    /* with AVX where the host has it */
	x.xcrs[0].value = xcr0;
	OK(kvm_set_xcrs(&x));
	CHECK_EQ(run_until_out(0x40), xsave_size_for(cpuid, xcr0));
	run_until_out(0x41);
	OK(kvm_get_xcrs(&x));
	CHECK_EQ(x.xcrs[0].value, 3);
	CHECK_EQ(run_until_out(0x42), 576);
	run_expect(KVM_EXIT_HLT);
	x.xcrs[0].value = 2;                      /* SSE without x87 */
	CHECK_ERR(kvm_set_xcrs(&x), EINVAL);

	/* --- TSC frequency. */
	int khz = OK(kvm_get_tsc_khz());
	CHECK(khz > 0);
	if (kvm_check_extension(vm, KVM_CAP_TSC_CONTROL) > 0) {
		OK(kvm_set_tsc_khz((uint32_t)khz / 2));
		CHECK_EQ(OK(kvm_get_tsc_khz()), khz / 2);
		OK(kvm_set_tsc_khz((uint32_t)khz));
		CHECK_EQ(OK(kvm_get_tsc_khz()), khz);
	} else {
		/* Without TSC scaling KVM cannot run the guest's TSC slower than the host's:
		 * a lower frequency is refused and changes nothing. */
		CHECK_ERR(kvm_set_tsc_khz((uint32_t)khz / 2), EINVAL);
		CHECK_EQ(OK(kvm_get_tsc_khz()), khz);
		skip_section("kvm_set_tsc_khz to another frequency", "KVM_CAP_TSC_CONTROL is 0");
	}

	/* --- Nested state. */
	int max_nested = kvm_check_extension(vm, KVM_CAP_NESTED_STATE);
	struct kvm_nested_state *ns = calloc(1, max_nested > 4096 ? max_nested : 4096);
	CHECK(ns != NULL);
	ns->size = 4096;
	if (max_nested > 0) {
		OK(kvm_get_nested_state(ns));
		OK(kvm_set_nested_state(ns));
		/* What was set reads back the same. */
		uint32_t got = ns->size;
		struct kvm_nested_state *again = calloc(1, 4096);
		CHECK(again != NULL);
		again->size = 4096;
		OK(kvm_get_nested_state(again));
		CHECK_EQ(again->size, got);
		CHECK(memcmp(again, ns, got) == 0);
		free(again);
		/* A buffer smaller than the state: E2BIG (kvm_get_nested_state(3)). */
		ns->size = sizeof(*ns) - 1;
		CHECK_ERR(kvm_get_nested_state(ns), E2BIG);
	} else {
		skip_section("kvm_get/set_nested_state of a real state", "KVM_CAP_NESTED_STATE is 0");
		CHECK_ERR(kvm_get_nested_state(ns), EOPNOTSUPP);
		CHECK_ERR(kvm_set_nested_state(ns), EOPNOTSUPP);
	}

	/* --- Bad pointers, and no vcpu. */
	CHECK_ERR(kvm_get_xsave(NULL, 4096), EFAULT);
	CHECK_ERR(kvm_set_xsave(NULL, 4096), EFAULT);
	CHECK_ERR(kvm_get_sregs2(NULL), EFAULT);
	CHECK_ERR(kvm_set_sregs2(NULL), EFAULT);
	CHECK_ERR(kvm_get_xcrs(NULL), EFAULT);
	CHECK_ERR(kvm_set_xcrs(NULL), EFAULT);
	CHECK_ERR(kvm_get_debugregs(NULL), EFAULT);
	CHECK_ERR(kvm_set_debugregs(NULL), EFAULT);
	CHECK_ERR(kvm_get_nested_state(NULL), EFAULT);
	CHECK_ERR(kvm_set_nested_state(NULL), EFAULT);
	CHECK_ERR(kvm_get_one_reg(NULL), EFAULT);
	CHECK_ERR(kvm_set_one_reg(NULL), EFAULT);
	OK(kvm_detach_vcpu());
	CHECK_ERR(kvm_get_xsave_size(), ESRCH);
	CHECK_ERR(kvm_get_xsave(xs, size), ESRCH);
	CHECK_ERR(kvm_get_sregs2(&s2), ESRCH);
	CHECK_ERR(kvm_get_xcrs(&x), ESRCH);
	CHECK_ERR(kvm_get_debugregs(&d), ESRCH);
	CHECK_ERR(kvm_get_tsc_khz(), ESRCH);
	CHECK_ERR(kvm_set_tsc_khz(1000), ESRCH);
	CHECK_ERR(kvm_get_one_reg(&reg), ESRCH);
	CHECK_ERR(kvm_get_nested_state(ns), ESRCH);
	OK(kvm_destroy_vm(vm));
	free(ns);
	free(xs);
	free(cpuid);
	return 0;
}
