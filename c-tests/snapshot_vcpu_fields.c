/* Every section of a vcpu blob, restored by another process, holds the distinctive values set before the save, read back field by field and observed by the guest. */
/* The source sets a distinctive value in every part of the vcpu's state (general,
 * special and debug registers, XSAVE with x87, SSE and AVX state, XCR0, MSRs, CPUID,
 * events with a pending NMI (KVM never reports the SIPI vector), the local APIC), saves the vcpu and the VM, and goes on
 * running the guest itself; it saves again while the guest halts (MP state), and a
 * vcpu of a VM without irqchip that kvm_interrupt still holds a vector for. A fresh
 * process (this test, exec'd) restores each blob into a fresh VM of the same shape,
 * reads every field back against what the source read before saving, and runs the
 * guest, which observes the values itself: the NMI taken first, the registers, a DR0
 * breakpoint that fires, XMM values, the x87 control word, MSRs, the brand string, the
 * XSAVE size for XCR0, its APIC registers and an interrupt through it, the halt that
 * holds until an interrupt, and the held vector. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MEM 0x10000
#define LOAD 0x1000
#define IVT 0x800               /* the IDTR base the host sets (real mode) */
#define XS_MAX 16384
#define MSRS_MAX 256

#define RAX 0xa1a1a1a1c0de0001ULL
#define RBX 0xb1b1b1b1c0de0002ULL
#define RCX 0x00000000c1c1c1c1ULL
#define RDX 0x00000000d1d1d1d1ULL
#define RSI 0x5151515151515151ULL
#define RDI 0xd0d0d0d0d0d0d0d0ULL
#define RBP 0x00000000000b0b0bULL
#define RSP 0x7ff0ULL
#define R8 0x0808080808080808ULL
#define R15 0x1515151515151515ULL
#define RFLAGS 0x403ULL         /* DF and CF, IF clear */
#define CR2 0xc2c2c2c2ULL
#define FS_BASE 0x3300
#define FS_MAGIC 0xf5f5a5a5u
#define DR1 0x11110000ULL
#define DR2 0x22220000ULL
#define DR3 0x33330000ULL
#define DR7 0x603ULL            /* L0 G0 (DR0, execute), GE, bit 10 */
#define FCW 0x027f              /* 53-bit precision */
#define MXCSR 0x9fc0            /* FZ, DAZ */
#define LDR 0x5a000000u
#define LVTT 0x000100efu        /* masked, vector 0xef */
#define TDCR 0x3u               /* divide by 16 */
#define LVTERR 0x000000feu

static const struct { uint32_t index; uint64_t value; } msr_values[] = {
	{ 0x174, 0x0000000000001234ULL },          /* SYSENTER_CS */
	{ 0x175, 0x00000000e5e5e5e5ULL },          /* SYSENTER_ESP */
	{ 0x176, 0x00000000e1e1e1e1ULL },          /* SYSENTER_EIP */
	{ 0xc0000081, 0x002300104b4b0000ULL },     /* STAR */
	{ 0xc0000082, 0xffffffff81234560ULL },     /* LSTAR */
	{ 0xc0000083, 0xffffffff8abcdef0ULL },     /* CSTAR */
	{ 0xc0000084, 0x0000000000047700ULL },     /* SF_MASK */
	{ 0xc0000102, 0xffff888812345000ULL },     /* KERNEL_GS_BASE */
	{ 0x277, 0x0105040601050406ULL },          /* PAT */
};
#define MSR_TSC 0x10
/* Far above any TSC a host can have counted since boot (2^62 cycles is a century at
 * 1 GHz), so that reading it back tells a written TSC from a host's that ignored the
 * write whatever the host's uptime (2^44 was within reach of a day-old host's TSC). */
#define TSC 0x4000000000000000ULL
#define MSR_TSC_AUX 0xc0000103

static const char brand[16] = "libkvm-fidelity";
static int tsc_set;             /* the host's IA32_TSC takes a value written to it */
static int tsc_khz_set;         /* the TSC frequency set (KVM_CAP_TSC_CONTROL), or 0 */

/* What a process reads of its vcpu: every getter. */
struct dump {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_sregs2 sregs2;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dregs;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_lapic_state lapic;
	int has_lapic, has_sregs2, tsc_khz;
	uint32_t nmsrs, ncpuid, xsave_size;
	struct kvm_msr_entry msrs[MSRS_MAX];
	struct kvm_cpuid_entry2 cpuid[256];
	uint8_t xsave[XS_MAX];
};

static uint64_t msr_get(uint32_t index, int *ok)
{
	struct { struct kvm_msrs h; struct kvm_msr_entry e; } m = { .h.nmsrs = 1, .e.index = index };
	int n = OK(kvm_get_msrs(&m.h));
	*ok = n == 1;
	return m.e.data;
}

static void msr_set(uint32_t index, uint64_t value)
{
	struct { struct kvm_msrs h; struct kvm_msr_entry e; } m = {
		.h.nmsrs = 1, .e.index = index, .e.data = value };
	if (OK(kvm_set_msrs(&m.h)) != 1)
		FAIL("KVM refused MSR 0x%x = 0x%llx", index, (unsigned long long)value);
}

static void take_dump(int vm, struct dump *d)
{
	memset(d, 0, sizeof(*d));
	OK(kvm_get_regs(&d->regs));
	OK(kvm_get_sregs(&d->sregs));
	d->has_sregs2 = kvm_check_extension(vm, KVM_CAP_SREGS2) > 0;
	if (d->has_sregs2)
		OK(kvm_get_sregs2(&d->sregs2));
	OK(kvm_get_fpu(&d->fpu));
	OK(kvm_get_xcrs(&d->xcrs));
	OK(kvm_get_debugregs(&d->dregs));
	OK(kvm_get_vcpu_events(&d->events));
	OK(kvm_get_mp_state(&d->mp));
	d->has_lapic = kvm_get_lapic(&d->lapic) == 0;
	d->tsc_khz = OK(kvm_get_tsc_khz());
	d->xsave_size = (uint32_t)OK(kvm_get_xsave_size());
	CHECK(d->xsave_size <= XS_MAX);
	CHECK_EQ(kvm_get_xsave((struct kvm_xsave *)d->xsave, d->xsave_size), d->xsave_size);
	struct kvm_cpuid2 *c = cpuid_alloc(256);
	OK(kvm_vcpu_ioctl(KVM_GET_CPUID2, c));
	d->ncpuid = c->nent;
	memcpy(d->cpuid, c->entries, c->nent * sizeof(c->entries[0]));
	free(c);
	/* Every MSR of the index list that the vcpu lets the host read. */
	struct kvm_msr_list probe = { .nmsrs = 0 };
	CHECK_ERR(kvm_get_msr_index_list(&probe), E2BIG);
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * 4);
	CHECK(l != NULL);
	l->nmsrs = probe.nmsrs;
	OK(kvm_get_msr_index_list(l));
	for (uint32_t i = 0; i < l->nmsrs; i++) {
		int ok;
		uint64_t v = msr_get(l->indices[i], &ok);
		if (ok) {
			CHECK(d->nmsrs < MSRS_MAX);
			d->msrs[d->nmsrs++] = (struct kvm_msr_entry){ .index = l->indices[i], .data = v };
		}
	}
	free(l);
}

#define SAME(field) do { if (memcmp(&a->field, &b->field, sizeof(a->field)) != 0) \
	FAIL("restored " #field " differs from the saved vcpu's"); } while (0)

/* The restored vcpu's state `b` against the source's `a`, read just before its save. */
static void compare(const struct dump *a, const struct dump *b)
{
	SAME(regs);
	SAME(sregs);
	CHECK_EQ(a->has_sregs2, b->has_sregs2);
	SAME(sregs2);
	SAME(fpu);
	SAME(xcrs);
	SAME(dregs);
	SAME(events);
	SAME(mp);
	CHECK_EQ(a->has_lapic, b->has_lapic);
	/* The local APIC, register by register (16 bytes each) but the current count of
	 * the timer (0x390), which runs (here it is stopped: both 0). */
	for (int off = 0; off < KVM_APIC_REG_SIZE; off += 16)
		if (memcmp(a->lapic.regs + off, b->lapic.regs + off, 16) != 0)
			FAIL("restored APIC register 0x%03x: 0x%08x, saved 0x%08x", off,
			     *(const uint32_t *)(b->lapic.regs + off),
			     *(const uint32_t *)(a->lapic.regs + off));
	CHECK_EQ(a->tsc_khz, b->tsc_khz);
	CHECK_EQ(a->xsave_size, b->xsave_size);
	/* The whole XSAVE area: legacy region (x87, MXCSR, XMM), header, components. */
	for (uint32_t i = 0; i < a->xsave_size; i++)
		if (a->xsave[i] != b->xsave[i])
			FAIL("restored XSAVE byte %u: 0x%02x, saved 0x%02x", i, b->xsave[i], a->xsave[i]);
	CHECK_EQ(a->ncpuid, b->ncpuid);
	CHECK(memcmp(a->cpuid, b->cpuid, a->ncpuid * sizeof(a->cpuid[0])) == 0);
	CHECK_EQ(a->nmsrs, b->nmsrs);
	for (uint32_t i = 0; i < a->nmsrs; i++) {
		CHECK_EQ(a->msrs[i].index, b->msrs[i].index);
		uint64_t sv = a->msrs[i].data, rv = b->msrs[i].data;
		if (a->msrs[i].index == MSR_TSC) {
			/* The TSC went on from the saved value (a few seconds at most where the
			 * host lets it be set; else it is the host's, which also went on). */
			if (rv < sv || (tsc_set && rv - sv > 10ULL * 1000 * (uint64_t)a->tsc_khz))
				FAIL("restored TSC 0x%llx, saved 0x%llx", (unsigned long long)rv,
				     (unsigned long long)sv);
			continue;
		}
		if (sv != rv)
			FAIL("restored MSR 0x%x: 0x%llx, saved 0x%llx", a->msrs[i].index,
			     (unsigned long long)rv, (unsigned long long)sv);
	}
}

/* ---- the guest -------------------------------------------------------------------- */

#define ADDR(sym) ({ extern const uint8_t sym[]; (uint32_t)(sym - rm_vcpu_fields_start + LOAD); })
extern const uint8_t rm_vcpu_fields_start[];

static int avx;                 /* XCR0 includes AVX (the host offers it) */
static uint32_t xsave_size_avx; /* CPUID 0xD.0 EBX for XCR0 = x87|SSE|AVX */

static uint8_t xmm3[16], xmm5[16], ymm3_hi[16];

static void patterns(void)
{
	for (int i = 0; i < 16; i++) {
		xmm3[i] = (uint8_t)(0x30 + 7 * i);
		xmm5[i] = (uint8_t)(0xc5 ^ (i * 13));
		ymm3_hi[i] = (uint8_t)(0xe3 - 5 * i);
	}
}

/* The VM and its vcpu (the calling thread's) with the guest loaded, before its first
 * run: with `irqchip`, the machine every restore in this test goes into. */
static int machine(int irqchip)
{
	int vm = vm_with_memory(MEM);
	if (irqchip)
		OK(kvm_create_irqchip(vm));
	OK(kvm_create_vcpu(vm, 0));
	return vm;
}

#define EXPECT(port, value) do { uint32_t v_ = run_until_out_within(port, 5); if (v_ != (uint32_t)(value)) \
	FAIL("the guest reported 0x%x on port 0x%x, expected 0x%x (%s)", v_, port, \
	     (uint32_t)(value), #value); } while (0)

/* The guest from just after its port 0x10 to its halt (port 0xd7): every value it
 * observes. The same in the source's own run and in the restored one. */
static void guest_observes(int vm)
{
	EXPECT(0xe1, 2);                          /* the pending NMI, first */
	EXPECT(0xb0, (uint32_t)RAX);
	EXPECT(0xb1, (uint32_t)RBX);
	EXPECT(0xb2, (uint32_t)RCX);
	EXPECT(0xb3, (uint32_t)RDX);
	EXPECT(0xb4, (uint32_t)RSI);
	EXPECT(0xb5, (uint32_t)RDI);
	EXPECT(0xb6, (uint32_t)RBP);
	EXPECT(0xb7, (uint32_t)RSP);
	EXPECT(0xb8, (uint32_t)RFLAGS);
	EXPECT(0xb9, FS_MAGIC);                   /* read through FS's base */
	EXPECT(0xba, (uint32_t)CR2);
	EXPECT(0x30, (uint32_t)DR1);
	EXPECT(0x31, (uint32_t)DR2);
	EXPECT(0x32, (uint32_t)DR3);
	EXPECT(0x33, (uint32_t)DR7);
	run_until_out_within(0x34, 5);
	CHECK(memcmp(kvm_guest_memory(vm, 0x3100, 16), xmm3, 16) == 0);
	CHECK(memcmp(kvm_guest_memory(vm, 0x3110, 16), xmm5, 16) == 0);
	CHECK_EQ(*(uint16_t *)kvm_guest_memory(vm, 0x3120, 2), FCW);
	EXPECT(0xc0, (uint32_t)msr_values[1].value);
	EXPECT(0xc1, (uint32_t)msr_values[3].value);
	EXPECT(0xc2, (uint32_t)(msr_values[3].value >> 32));
	EXPECT(0xc3, (uint32_t)msr_values[7].value);
	EXPECT(0xc4, (uint32_t)(msr_values[7].value >> 32));
	EXPECT(0xc5, (uint32_t)msr_values[8].value);
	EXPECT(0xc6, (uint32_t)(msr_values[8].value >> 32));
	uint32_t tsc_hi = run_until_out_within(0xc7, 5);              /* the TSC went on from the saved value */
	if (tsc_set && (tsc_hi < (TSC >> 32) || tsc_hi >= (TSC >> 32) + 0x100))
		FAIL("the guest read TSC 0x%08x........, set to 0x%08x........", tsc_hi,
		     (uint32_t)(TSC >> 32));
	uint32_t b[4];
	memcpy(b, brand, 16);
	EXPECT(0x50, b[0]);
	EXPECT(0x51, b[1]);
	EXPECT(0x52, b[2]);
	EXPECT(0x53, b[3]);
	uint32_t xs = run_until_out_within(0x54, 5);
	if (avx)
		CHECK_EQ(xs, xsave_size_avx);     /* XCR0 = x87|SSE|AVX */
	EXPECT(0xd0, 0x10);                       /* TPR, set by the guest */
	EXPECT(0xd1, LDR);
	EXPECT(0xd2, 0x1ff);                      /* SVR, set by the guest */
	EXPECT(0xd3, LVTT);
	EXPECT(0xd4, TDCR);
	/* The breakpoint in DR0 fires: DR6.B0. */
	uint32_t dr6 = run_until_out_within(0xe2, 5);
	CHECK_EQ(dr6 & 0xf, 1);
	run_until_out_within(0xd5, 5);
	/* An interrupt through the restored local APIC (TPR 0x10 lets 0x80 through). */
	run_until_out_within(0xd6, 5);
	OK(kvm_interrupt(0x80));
	EXPECT(0xe0, 0x80);
	run_until_out_within(0xd7, 5);
}

/* The guest's CPUID: the host's, with a brand string of this test's. Set before the
 * first run (the kernel takes another CPUID only then). */
static void set_cpuid_fields(void)
{
	struct kvm_cpuid2 *c = cpuid_alloc(256);
	OK(kvm_get_supported_cpuid(c));
	struct kvm_cpuid_entry2 *e = cpuid_leaf(c, 0x80000002, 0);
	if (!e) {
		CHECK(c->nent < 256);
		e = &c->entries[c->nent++];
		memset(e, 0, sizeof(*e));
		e->function = 0x80000002;
	}
	memcpy(&e->eax, brand, 4);
	memcpy(&e->ebx, brand + 4, 4);
	memcpy(&e->ecx, brand + 8, 4);
	memcpy(&e->edx, brand + 12, 4);
	OK(kvm_set_cpuid(c));
	free(c);
}

/* Sets every other distinctive value on the calling thread's vcpu, stopped at port
 * 0x10. */
static void set_fields(void)
{
	struct kvm_cpuid2 *c = cpuid_alloc(256);
	OK(kvm_get_supported_cpuid(c));

	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rax = RAX; r.rbx = RBX; r.rcx = RCX; r.rdx = RDX;
	r.rsi = RSI; r.rdi = RDI; r.rbp = RBP; r.rsp = RSP;
	r.r8 = R8; r.r9 = R8 + 1; r.r10 = R8 + 2; r.r11 = R8 + 3;
	r.r12 = R15 - 3; r.r13 = R15 - 2; r.r14 = R15 - 1; r.r15 = R15;
	r.rflags = RFLAGS;
	OK(kvm_set_regs(&r));

	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	s.fs.selector = FS_BASE >> 4;
	s.fs.base = FS_BASE;
	s.gs.selector = 0x0456;
	s.gs.base = 0x4560;
	s.gdt.base = 0x4000;
	s.gdt.limit = 0x37;
	s.idt.base = IVT;
	s.idt.limit = 0x3ff;
	s.cr2 = CR2;
	s.cr4 |= 0x200 | (avx ? 0x40000 : 0);     /* OSFXSR, OSXSAVE */
	s.efer |= 1;                              /* SCE */
	OK(kvm_set_sregs(&s));

	if (avx) {
		struct kvm_xcrs x = { .nr_xcrs = 1, .xcrs = { { .xcr = 0, .value = 7 } } };
		OK(kvm_set_xcrs(&x));
	}
	int size = OK(kvm_get_xsave_size());
	uint8_t *xs = calloc(1, size);
	CHECK(xs != NULL);
	CHECK_EQ(kvm_get_xsave((struct kvm_xsave *)xs, size), size);
	memcpy(xs, &(uint16_t){ FCW }, 2);
	memcpy(xs + 24, &(uint32_t){ MXCSR }, 4);
	memcpy(xs + 160 + 3 * 16, xmm3, 16);
	uint64_t bv;
	memcpy(&bv, xs + 512, 8);
	bv |= 3;
	if (avx) {
		struct kvm_cpuid_entry2 *y = cpuid_leaf(c, 0xd, 2);
		CHECK(y != NULL && y->ebx + y->eax <= (uint32_t)size);
		memcpy(xs + y->ebx + 3 * 16, ymm3_hi, 16);
		bv |= 4;
	}
	memcpy(xs + 512, &bv, 8);
	OK(kvm_set_xsave((struct kvm_xsave *)xs, size));
	free(xs);
	free(c);

	for (size_t i = 0; i < sizeof(msr_values) / sizeof(msr_values[0]); i++)
		msr_set(msr_values[i].index, msr_values[i].value);
	/* Another TSC frequency, where the kernel can scale the TSC. */
	if (tsc_khz_set)
		OK(kvm_set_tsc_khz((uint32_t)tsc_khz_set));
	/* The TSC, where the host lets it be set (kvm_pvm keeps the host's TSC). */
	msr_set(MSR_TSC, TSC);
	int ok;
	uint64_t tsc = msr_get(MSR_TSC, &ok);
	tsc_set = ok && tsc >= TSC && tsc - TSC < (1ULL << 40);
	if (!tsc_set)
		skip_section("a TSC value of the test's", "the host's IA32_TSC ignores a value written "
			     "to it (it reads back the host's TSC)");

	struct kvm_lapic_state l;
	OK(kvm_get_lapic(&l));
	memcpy(l.regs + 0xd0, &(uint32_t){ LDR }, 4);
	memcpy(l.regs + 0x320, &(uint32_t){ LVTT }, 4);
	memcpy(l.regs + 0x370, &(uint32_t){ LVTERR }, 4);
	memcpy(l.regs + 0x3e0, &(uint32_t){ TDCR }, 4);
	OK(kvm_set_lapic(&l));

	struct kvm_debugregs d;
	OK(kvm_get_debugregs(&d));
	d.db[0] = ADDR(vf_breakpoint);
	d.db[1] = DR1;
	d.db[2] = DR2;
	d.db[3] = DR3;
	d.dr7 = DR7;
	OK(kvm_set_debugregs(&d));

	struct kvm_vcpu_events ev;
	OK(kvm_get_vcpu_events(&ev));
	ev.nmi.pending = 1;
	ev.nmi.masked = 0;
	ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING;
	OK(kvm_set_vcpu_events(&ev));
}

/* The values this test set, in the source's dump: the comparison of the restored dump
 * with it is then a comparison with them. */
static void check_dump_has_fields(const struct dump *d)
{
	CHECK_EQ(d->regs.rax, RAX);
	CHECK_EQ(d->regs.r8, R8);
	CHECK_EQ(d->regs.r15, R15);
	CHECK_EQ(d->regs.rflags, RFLAGS);
	CHECK_EQ(d->sregs.fs.base, FS_BASE);
	CHECK_EQ(d->sregs.gdt.base, 0x4000);
	CHECK_EQ(d->sregs.idt.base, IVT);
	CHECK_EQ(d->sregs.cr2, CR2);
	CHECK_EQ(d->sregs.efer & 1, 1);
	CHECK_EQ(d->fpu.fcw, FCW);
	/* MXCSR from the XSAVE area: KVM_GET_FPU leaves kvm_fpu.mxcsr 0 (Linux copies
	 * every other field of the legacy area but that one). */
	CHECK_EQ(*(const uint32_t *)(d->xsave + 24), MXCSR);
	CHECK(memcmp(d->fpu.xmm[3], xmm3, 16) == 0);
	CHECK(memcmp(d->fpu.xmm[5], xmm5, 16) == 0);
	if (avx)
		CHECK_EQ(d->xcrs.xcrs[0].value, 7);
	if (tsc_khz_set)
		CHECK_EQ(d->tsc_khz, tsc_khz_set);
	CHECK_EQ(d->dregs.db[1], DR1);
	CHECK_EQ(d->dregs.dr7, DR7);
	CHECK_EQ(d->events.nmi.pending, 1);
	CHECK(d->has_lapic);
	CHECK_EQ(*(const uint32_t *)(d->lapic.regs + 0xd0), LDR);
	CHECK_EQ(*(const uint32_t *)(d->lapic.regs + 0x370), LVTERR);
	CHECK_EQ(*(const uint32_t *)(d->lapic.regs + 0x80), 0x10);
	int seen = 0;
	for (uint32_t i = 0; i < d->nmsrs; i++)
		for (size_t k = 0; k < sizeof(msr_values) / sizeof(msr_values[0]); k++)
			if (d->msrs[i].index == msr_values[k].index) {
				CHECK_EQ(d->msrs[i].data, msr_values[k].value);
				seen++;
			}
	CHECK_EQ(seen, sizeof(msr_values) / sizeof(msr_values[0]));
}

static void load_ivt(int vm)
{
	uint16_t *ivt = kvm_guest_memory(vm, IVT, 0x400);
	CHECK(ivt != NULL);
	ivt[2 * 2] = (uint16_t)ADDR(vf_nmi);
	ivt[1 * 2] = (uint16_t)ADDR(vf_db);
	ivt[0x80 * 2] = (uint16_t)ADDR(vf_h80);
	ivt[0x81 * 2] = (uint16_t)ADDR(vf_h81);
	memcpy(kvm_guest_memory(vm, 0x3000, 16), xmm5, 16);
	memcpy(kvm_guest_memory(vm, FS_BASE, 4), &(uint32_t){ FS_MAGIC }, 4);
}

/* ---- blobs across processes ---------------------------------------------------------- */

/* Runs until `port`; kvm_run must return -1/EINTR (the watchdog) while the vcpu halts,
 * never an exit: the vcpu stays halted until the interrupt. */
static void stays_halted(void)
{
	watchdog_start(50);
	for (int i = 0; i < 4; i++) {
		errno = 0;
		int r = kvm_run();
		if (r != -1 || errno != EINTR)
			FAIL("a halted vcpu ran: kvm_run %d (%s), errno %d", r, exit_name(r), errno);
		struct kvm_mp_state mp;
		OK(kvm_get_mp_state(&mp));
		CHECK_EQ(mp.mp_state, KVM_MP_STATE_HALTED);
	}
	watchdog_stop();
}

/* The restoring process. */
static int restore(const char *path)
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	size_t vm_len, vcpu_len, halt_len, held_len, n;
	uint8_t *vm_blob = get_record(f, &vm_len), *vcpu_blob = get_record(f, &vcpu_len);
	uint8_t *mem = get_record(f, &n);
	CHECK_EQ(n, MEM);
	struct dump *before = get_record(f, &n), now;
	CHECK_EQ(n, sizeof(*before));
	uint8_t *halt_blob = get_record(f, &halt_len), *halt_mem = get_record(f, NULL);
	struct dump *halt_before = get_record(f, NULL);
	uint8_t *held_blob = get_record(f, &held_len), *held_mem = get_record(f, NULL);
	int *flags = get_record(f, NULL);
	fclose(f);
	avx = flags[0];
	xsave_size_avx = (uint32_t)flags[1];
	tsc_set = flags[2];
	patterns();

	/* Everything: a fresh VM of the same shape, memory copied, VM then vcpu. */
	int vm = machine(1);
	memcpy(kvm_guest_memory(vm, 0, MEM), mem, MEM);
	OK(kvm_restore_vm(vm, vm_blob, vm_len));
	OK(kvm_restore_vcpu(vcpu_blob, vcpu_len));
	take_dump(vm, &now);
	compare(before, &now);
	guest_observes(vm);
	end_vm(vm);

	/* MP state: halted, waiting for an interrupt. */
	vm = machine(1);
	memcpy(kvm_guest_memory(vm, 0, MEM), halt_mem, MEM);
	OK(kvm_restore_vcpu(halt_blob, halt_len));
	take_dump(vm, &now);
	compare(halt_before, &now);
	CHECK_EQ(now.mp.mp_state, KVM_MP_STATE_HALTED);
	stays_halted();
	OK(kvm_interrupt(0x81));
	EXPECT(0xe0, 0x81);
	run_until_out_within(0xd8, 5);
	run_until_out_within(0x3f, 5);
	end_vm(vm);

	/* Pending vectors: held by kvm_interrupt for a guest with interrupts off (no
	 * irqchip); taken as soon as it enables them. */
	vm = machine(0);
	memcpy(kvm_guest_memory(vm, 0, MEM), held_mem, MEM);
	OK(kvm_restore_vcpu(held_blob, held_len));
	CHECK_EQ(run_until_out_within(0x31, 5), 0x50);
	run_until_out_within(0x32, 5);
	end_vm(vm);

	free(vm_blob); free(vcpu_blob); free(mem); free(before); free(halt_blob);
	free(halt_mem); free(halt_before); free(held_blob); free(held_mem); free(flags);
	return 0;
}

int main(int argc, char **argv)
{
	require_kvm();
	deadline(20);      /* a lost interrupt, NMI or breakpoint hangs the guest */
	if (argc == 3 && strcmp(argv[1], "--restore") == 0)
		return restore(argv[2]);
	patterns();

	/* The host's XSAVE features: AVX in XCR0 where offered. */
	struct kvm_cpuid2 *c = cpuid_alloc(256);
	OK(kvm_get_supported_cpuid(c));
	struct kvm_cpuid_entry2 *x = cpuid_leaf(c, 0xd, 0), *y = cpuid_leaf(c, 0xd, 2);
	avx = x && y && (x->eax & 7) == 7;
	if (avx)
		xsave_size_avx = y->ebx + y->eax > 576 ? y->ebx + y->eax : 576;
	else
		skip_section("AVX state and XCR0 as the guest sees it",
			     "KVM_GET_SUPPORTED_CPUID leaf 0xD offers no AVX state");
	free(c);
	int vm0 = vm_with_memory(0x1000);
	if (kvm_check_extension(vm0, KVM_CAP_NESTED_STATE) <= 0)
		skip_section("nested state", "KVM_CAP_NESTED_STATE is 0");
	if (kvm_check_extension(vm0, KVM_CAP_TSC_CONTROL) > 0) {
		OK(kvm_create_vcpu(vm0, 0));
		tsc_khz_set = OK(kvm_get_tsc_khz()) * 3 / 4;
		OK(kvm_detach_vcpu());
	} else {
		skip_section("another TSC frequency", "KVM_CAP_TSC_CONTROL is 0 (the frequency is compared, "
			     "but it can only be the host's)");
	}
	OK(kvm_destroy_vm(vm0));

	int vm = machine(1);
	load_blob(vm, LOAD, BLOB(rm_vcpu_fields));
	load_ivt(vm);
	set_cpuid_fields();
	setup_unreal_mode(LOAD);
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	s.cr4 |= 0x200;                           /* OSFXSR, for the guest's MOVDQU */
	s.idt.base = IVT;
	OK(kvm_set_sregs(&s));
	run_until_out_within(0x10, 5);
	set_fields();

	size_t vm_len, vcpu_len, halt_len, held_len;
	struct dump *before = malloc(sizeof(*before)), *halt_before = malloc(sizeof(*before));
	CHECK(before && halt_before);
	take_dump(vm, before);
	check_dump_has_fields(before);
	uint8_t *vcpu_blob = save_vcpu_blob(&vcpu_len);
	uint8_t *vm_blob = save_vm_blob(vm, &vm_len);
	uint8_t *mem = malloc(MEM), *halt_mem = malloc(MEM), *held_mem = malloc(MEM);
	CHECK(mem && halt_mem && held_mem);
	memcpy(mem, kvm_guest_memory(vm, 0, MEM), MEM);
	/* The source goes on: the guest observes the same as after the restore. */
	guest_observes(vm);
	/* Halted (MP state HALTED) until an interrupt. */
	stays_halted();
	take_dump(vm, halt_before);
	CHECK_EQ(halt_before->mp.mp_state, KVM_MP_STATE_HALTED);
	uint8_t *halt_blob = save_vcpu_blob(&halt_len);
	memcpy(halt_mem, kvm_guest_memory(vm, 0, MEM), MEM);
	OK(kvm_interrupt(0x81));
	EXPECT(0xe0, 0x81);
	run_until_out_within(0xd8, 5);
	end_vm(vm);

	/* A vector held by kvm_interrupt (guests/snapshot.S's rm_held_irq). */
	vm = machine(0);
	struct blob hb = BLOB(rm_held_irq);
	extern const uint8_t held_handler[];
	load_blob(vm, LOAD, hb);
	uint16_t *ivt = kvm_guest_memory(vm, 0x50 * 4, 4);
	CHECK(ivt != NULL);
	ivt[0] = (uint16_t)(held_handler - hb.start + LOAD);
	ivt[1] = 0;
	setup_real_mode(LOAD);
	run_until_out(0x30);
	OK(kvm_interrupt(0x50));                  /* held: IF is clear */
	uint8_t *held_blob = save_vcpu_blob(&held_len);
	memcpy(held_mem, kvm_guest_memory(vm, 0, MEM), MEM);
	end_vm(vm);

	char path[] = "/tmp/libkvm-vcpu-fields-XXXXXX";
	int flags[3] = { avx, (int)xsave_size_avx, tsc_set };
	WRITE_RECORDS(path, { vm_blob, vm_len }, { vcpu_blob, vcpu_len }, { mem, MEM },
		      { before, sizeof(*before) }, { halt_blob, halt_len }, { halt_mem, MEM },
		      { halt_before, sizeof(*halt_before) }, { held_blob, held_len },
		      { held_mem, MEM }, { flags, sizeof(flags) });

	pid_t pid;
	int status = run_self("snapshot_vcpu_fields", "--restore", path, &pid);
	unlink(path);
	CHECK_EQ(status, 0);
	printf("vcpu blob %zu bytes, %u MSRs, %u CPUID leaves, XSAVE %u bytes%s: restored in pid %d, "
	       "every field read back and observed by the guest\n", vcpu_len, before->nmsrs,
	       before->ncpuid, before->xsave_size, avx ? " (AVX)" : "", (int)pid);
	free(vm_blob); free(vcpu_blob); free(mem); free(before); free(halt_blob);
	free(halt_mem); free(halt_before); free(held_blob); free(held_mem);
	return 0;
}
