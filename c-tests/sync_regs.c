/* On every exit the host reads the guest's current registers and the guest sees the host's writes, whatever mix of register calls, raw ioctls, other vcpu calls and thread moves; fast and slow path. */
#include "harness.h"
#include <pthread.h>

/*
 * A guest loop (guests/sync_regs.S) makes every exit show fresh guest values and reflect
 * the host's writes: EAX counts passes, EDX echoes EBX, ES is loaded with the count, ESI
 * copies CR2, EBP counts NMIs. On each exit the host runs a random sequence of
 * operations (libkvm register calls, the same through kvm_vcpu_ioctl(), other vcpu calls
 * such as kvm_translate(), kvm_get_msrs(), kvm_get_lapic(), kvm_get_mp_state(), a move
 * to another thread) and checks every value it reads against a model of what the guest
 * did and what the host wrote. SYNC_REGS_SEED picks another sequence;
 * SYNC_REGS_TRACE=1 prints the operations. The whole test runs twice: with the sync-regs fast path,
 * then with LIBKVM_NO_SYNC_REGS=1 (read when a vcpu is created).
 */

enum exit_kind { MAIN = 0x10, NMI = 0x12, UD = 0x13 };

static struct {
	int vm, vcpu_fd;
	uint32_t count;     /* EAX at the last exit */
	uint64_t rbx, cr2;  /* what the host wrote last */
	uint64_t rbx_in, cr2_in; /* their values at the last entry */
	uint32_t edx, esi;  /* what the guest copied on its last pass */
	uint32_t nmis;
	int at;             /* where the last exit was (enum exit_kind) */
	int nmi_queued, ud_queued;
	int fast_seen;      /* the kernel was asked to copy registers out */
	int payload;        /* KVM_CAP_EXCEPTION_PAYLOAD: exceptions can be queued pending */
	uint64_t rng;
	long ops;
} m;

static uint64_t rnd(void)
{
	m.rng ^= m.rng << 13;
	m.rng ^= m.rng >> 7;
	m.rng ^= m.rng << 17;
	return m.rng;
}

static void check_regs(const struct kvm_regs *r, const char *how)
{
	if ((uint32_t)r->rax != m.count || r->rbx != m.rbx || (uint32_t)r->rdx != m.edx ||
	    (uint32_t)r->rsi != m.esi || (uint32_t)r->rbp != m.nmis)
		FAIL("%s after %ld ops: rax 0x%llx rbx 0x%llx rdx 0x%llx rsi 0x%llx rbp 0x%llx, "
		     "expected 0x%x 0x%llx 0x%x 0x%x 0x%x", how, m.ops,
		     (unsigned long long)r->rax, (unsigned long long)r->rbx,
		     (unsigned long long)r->rdx, (unsigned long long)r->rsi,
		     (unsigned long long)r->rbp, m.count, (unsigned long long)m.rbx, m.edx,
		     m.esi, m.nmis);
}

static void check_sregs(const struct kvm_sregs *s, const char *how)
{
	if (s->es.selector != (uint16_t)m.count || s->es.base != (uint64_t)(uint16_t)m.count << 4 ||
	    s->cr2 != m.cr2)
		FAIL("%s after %ld ops: es 0x%x base 0x%llx cr2 0x%llx, expected 0x%x 0x%llx", how,
		     m.ops, s->es.selector, (unsigned long long)s->es.base,
		     (unsigned long long)s->cr2, (uint16_t)m.count, (unsigned long long)m.cr2);
}

static void check_events(const struct kvm_vcpu_events *e, const char *how)
{
	if (e->nmi.masked != (m.at == NMI) || e->nmi.pending != m.nmi_queued ||
	    e->exception.pending != m.ud_queued)
		FAIL("%s after %ld ops: nmi masked %d pending %d, exception pending %d; "
		     "expected %d %d %d", how, m.ops, e->nmi.masked, e->nmi.pending,
		     e->exception.pending, m.at == NMI, m.nmi_queued, m.ud_queued);
}

static struct kvm_regs get_regs(void)
{
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	check_regs(&r, "kvm_get_regs");
	return r;
}

static struct kvm_sregs get_sregs(void)
{
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	check_sregs(&s, "kvm_get_sregs");
	return s;
}

static struct kvm_vcpu_events get_events(void)
{
	struct kvm_vcpu_events e;
	OK(kvm_get_vcpu_events(&e));
	check_events(&e, "kvm_get_vcpu_events");
	return e;
}

/* kvm_set_regs() with a new EBX. Like KVM_SET_REGS, it drops a pending exception. */
static void set_regs(void)
{
	struct kvm_regs r = get_regs();
	r.rbx = m.rbx = rnd();
	OK(kvm_set_regs(&r));
	m.ud_queued = 0;
}

/* Queues exception #UD as pending (needs KVM_CAP_EXCEPTION_PAYLOAD on). */
static void queue_ud(void)
{
	struct kvm_vcpu_events e = get_events();
	e.exception.pending = 1;
	e.exception.injected = 0;
	e.exception.nr = 6;
	e.exception.has_error_code = 0;
	e.exception_has_payload = 0;
	e.flags |= KVM_VCPUEVENT_VALID_PAYLOAD;
	OK(kvm_set_vcpu_events(&e));
	m.ud_queued = 1;
}

struct one_msr {
	struct kvm_msrs h;
	struct kvm_msr_entry e;
};

static void *other_thread(void *arg);

enum { N_OPS = 23, MOVE = 22 };

static void op(int which)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_vcpu_events e;
	m.ops++;
	if (getenv("SYNC_REGS_TRACE"))
		fprintf(stderr, "op %d (at 0x%x)\n", which, m.at);
	switch (which) {
	case 0:
		get_regs();
		break;
	case 1: /* set a register (deferred to the next entry on the fast path) */
		set_regs();
		break;
	case 2:
		get_sregs();
		break;
	case 3:
		s = get_sregs();
		s.cr2 = m.cr2 = rnd() & 0xffffffff;
		OK(kvm_set_sregs(&s));
		break;
	case 4:
		get_events();
		break;
	case 5: /* write the events back unchanged */
		e = get_events();
		OK(kvm_set_vcpu_events(&e));
		break;
	case 6: /* queue an NMI: the guest's handler runs before the next pass */
		if (m.at == NMI || m.nmi_queued || m.ud_queued)
			break;
		e = get_events();
		e.nmi.pending = 1;
		e.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING;
		OK(kvm_set_vcpu_events(&e));
		m.nmi_queued = 1;
		break;
	case 7:
		OK(kvm_vcpu_ioctl(KVM_GET_REGS, &r));
		check_regs(&r, "KVM_GET_REGS");
		break;
	case 8:
		r = get_regs();
		r.rbx = m.rbx = rnd();
		OK(kvm_vcpu_ioctl(KVM_SET_REGS, &r));
		m.ud_queued = 0;
		break;
	case 9:
		OK(kvm_vcpu_ioctl(KVM_GET_SREGS, &s));
		check_sregs(&s, "KVM_GET_SREGS");
		break;
	case 10:
		s = get_sregs();
		s.cr2 = m.cr2 = rnd() & 0xffffffff;
		OK(kvm_vcpu_ioctl(KVM_SET_SREGS, &s));
		break;
	case 11:
		OK(kvm_vcpu_ioctl(KVM_GET_VCPU_EVENTS, &e));
		check_events(&e, "KVM_GET_VCPU_EVENTS");
		break;
	case 12: {
		struct kvm_mp_state mp;
		OK(kvm_get_mp_state(&mp));
		CHECK_EQ(mp.mp_state, KVM_MP_STATE_RUNNABLE);
		break;
	}
	case 13: {
		struct kvm_lapic_state l;
		OK(kvm_get_lapic(&l));
		CHECK_EQ(*(uint32_t *)&l.regs[0x20] >> 24, 0); /* APIC ID of vcpu 0 */
		break;
	}
	case 14: { /* real mode: linear addresses are physical */
		struct kvm_translation t = { .linear_address = 0x1234 + (rnd() & 0xf000) };
		OK(kvm_vcpu_ioctl(KVM_TRANSLATE, &t));
		CHECK(t.valid);
		CHECK_EQ(t.physical_address, t.linear_address);
		break;
	}
	case 15: { /* an MSR round trip between register calls */
		struct one_msr msr = { .h.nmsrs = 1, .e.index = 0x174 /* SYSENTER_CS */ };
		uint64_t v = rnd() & 0xffff;
		msr.e.data = v;
		CHECK_EQ(kvm_vcpu_ioctl(KVM_SET_MSRS, &msr), 1);
		msr.e.data = 0;
		CHECK_EQ(kvm_vcpu_ioctl(KVM_GET_MSRS, &msr), 1);
		CHECK_EQ(msr.e.data, v);
		break;
	}
	case 16: /* setting registers drops a pending exception */
		if (!m.payload || m.at != MAIN || m.nmi_queued || m.ud_queued)
			break;
		queue_ud();
		get_events(); /* (cached from here on the fast path) */
		set_regs();
		get_events();
		break;
	case 17: /* ... but not one queued after it */
		if (!m.payload || m.at != MAIN || m.nmi_queued || m.ud_queued)
			break;
		set_regs();
		queue_ud();
		break;
	case 18: { /* libkvm's own calls that read or set state beside the registers */
		uint64_t gpa = 0;
		uint8_t valid = 0, w = 0, u = 0;
		uint64_t lin = 0x1234 + (rnd() & 0xf000);
		OK(kvm_translate(lin, &gpa, &valid, &w, &u));
		CHECK_EQ(valid, 1);
		CHECK_EQ(gpa, lin);
		break;
	}
	case 19: {
		struct one_msr msr = { .h.nmsrs = 1, .e.index = 0x174 /* SYSENTER_CS */ };
		uint64_t v = rnd() & 0xffff;
		msr.e.data = v;
		CHECK_EQ(kvm_set_msrs(&msr.h), 1);
		msr.e.data = 0;
		CHECK_EQ(kvm_get_msrs(&msr.h), 1);
		CHECK_EQ(msr.e.data, v);
		break;
	}
	case 20: {
		struct kvm_fpu fpu;
		OK(kvm_get_fpu(&fpu));
		break;
	}
	case 21: { /* guest debugging off: the kernel rewrites RFLAGS from its own */
		struct kvm_guest_debug dbg = { .control = 0 };
		OK(kvm_debug_guest(&dbg));
		break;
	}
	case MOVE: { /* the vcpu moves to another thread for a while, and back */
		pthread_t t;
		OK(kvm_detach_vcpu());
		CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0);
		CHECK(pthread_join(t, NULL) == 0);
		OK(kvm_attach_vcpu(m.vcpu_fd));
		break;
	}
	}
}

/* Runs to the next exit and updates the model from what the guest must have done. */
static void run_and_check(void)
{
	int expect = m.nmi_queued ? NMI : m.ud_queued ? UD : MAIN;
	/* Registers as the guest will find them on this entry. */
	m.rbx_in = m.rbx;
	m.cr2_in = m.cr2;
	run_until_out((uint16_t)expect);
	m.at = expect;
	if (expect == NMI) {
		m.nmis++;
		m.nmi_queued = 0;
	} else if (expect == UD) {
		m.ud_queued = 0;
	} else {
		m.count++;
		m.edx = (uint32_t)m.rbx_in;
		m.esi = (uint32_t)m.cr2_in;
	}
	if (kvm_run_area()->kvm_valid_regs)
		m.fast_seen = 1;
}

/* One exit's worth: a random sequence of operations, then the run. */
static void step(int allow_move)
{
	int n = (int)(rnd() % 7);
	for (int i = 0; i < n; i++) {
		int which = (int)(rnd() % N_OPS);
		if (which == MOVE && !allow_move)
			which = 0;
		op(which);
	}
	/* Every value is checked at least once per exit. */
	get_regs();
	if (rnd() % 2)
		get_sregs();
	if (rnd() % 2)
		get_events();
	run_and_check();
}

static void *other_thread(void *arg)
{
	(void)arg;
	CHECK_ERR(kvm_run(), ESRCH);
	OK(kvm_attach_vcpu(m.vcpu_fd));
	int n = 1 + (int)(rnd() % 3);
	for (int i = 0; i < n; i++)
		step(0);
	/* Leave a write pending for the first thread to find. */
	set_regs();
	OK(kvm_detach_vcpu());
	return NULL;
}

static void run_all(int steps)
{
	memset(&m, 0, sizeof(m));
	m.rng = 0x9e3779b97f4a7c15ULL;
	const char *seed = getenv("SYNC_REGS_SEED");
	if (seed)
		m.rng = strtoull(seed, NULL, 0) | 1;
	m.vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(m.vm));
	m.payload = kvm_check_extension(m.vm, KVM_CAP_EXCEPTION_PAYLOAD) > 0;
	if (m.payload) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_EXCEPTION_PAYLOAD, .args = { 1 } };
		OK(kvm_vm_ioctl(m.vm, KVM_ENABLE_CAP, &cap));
	} else {
		skip_section("pending exceptions", "KVM_CAP_EXCEPTION_PAYLOAD is 0");
	}
	load_blob(m.vm, 0x1000, BLOB(sr_mix));
	/* Real-mode interrupt vectors: NMI (2) and #UD (6). */
	extern const uint8_t sr_mix_start[], sr_mix_nmi[], sr_mix_ud[];
	uint16_t *ivt = kvm_guest_memory(m.vm, 0, 0x400);
	CHECK(ivt != NULL);
	ivt[2 * 2] = (uint16_t)(sr_mix_nmi - sr_mix_start + 0x1000);
	ivt[2 * 2 + 1] = 0;
	ivt[6 * 2] = (uint16_t)(sr_mix_ud - sr_mix_start + 0x1000);
	ivt[6 * 2 + 1] = 0;

	m.vcpu_fd = OK(kvm_create_vcpu(m.vm, 0));
	setup_real_mode(0x1000);
	/* Start from a known state: the model's. */
	EDIT_SREGS(s, s.es.selector = 0; s.es.base = 0; s.cr2 = 0);
	m.at = MAIN;
	for (int i = 0; i < steps; i++)
		step(1);
	OK(kvm_detach_vcpu());
	OK(kvm_destroy_vm(m.vm));
	fprintf(stderr, "%s: %d exits, %ld operations, %u NMIs, final count %u\n",
		getenv("LIBKVM_NO_SYNC_REGS") ? "slow path" : "fast path", steps, m.ops, m.nmis,
		m.count);
}

int main(void)
{
	require_kvm();
	int fast = kvm_check_extension(-1, KVM_CAP_SYNC_REGS) > 0;

	run_all(1500);
	/* Where the kernel has the capability, the fast path was in use. */
	CHECK_EQ(m.fast_seen, fast);

	/* The same with the fast path off (vcpus created from now on). */
	CHECK(setenv("LIBKVM_NO_SYNC_REGS", "1", 1) == 0);
	run_all(1500);
	CHECK_EQ(m.fast_seen, 0);
	return 0;
}
