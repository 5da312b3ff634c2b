/* kvm_interrupt with the in-kernel irqchip reaches the calling thread's vcpu, whatever its APIC ID, in xAPIC and x2APIC mode, and no other vcpu. */
/* Vcpus 0-3, each on its own thread, run the same guest at once (guests/apic_ids.S):
 * each enables its local APIC, reports its APIC ID and halts. Once all are ready, each
 * thread sends its own vcpu its own vector with kvm_interrupt; each must take exactly
 * that vector (a handler reports it), and after all have, none takes another. Three
 * VMs: xAPIC; x2APIC with the kernel's default API (KVM_GET_LAPIC shows the ID in bits
 * 31:24); x2APIC with KVM_CAP_X2APIC_API's 32-bit IDs, with vcpu 0x101 as well, whose
 * ID differs from vcpu 1's only above bit 7 (the MSI's address_hi). */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define LOAD 0x1000
#define MAXV 5

enum mode { XAPIC, X2APIC, X2APIC_32 };
static const char *const mode_names[] = { "xAPIC", "x2APIC", "x2APIC with 32-bit IDs" };

static const unsigned vectors[MAXV] = { 0x41, 0x52, 0x63, 0x74, 0x85 };

static struct {
	int vm, nv;
	enum mode mode;
	unsigned ids[MAXV];
	pthread_barrier_t ready, taken;
} t;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs the calling thread's vcpu, halted but for interrupts, for up to `secs` (a 20 ms
 * watchdog makes kvm_run return while it halts). Returns the vector a handler reported,
 * or 0 if none came. */
static unsigned next_vector(double secs)
{
	double end = now() + secs;
	watchdog_start(20);
	unsigned v = 0;
	while (!v && now() < end) {
		errno = 0;
		int r = kvm_run();
		if (r == -1 && errno == EINTR)
			continue;
		if (r != KVM_EXIT_IO)
			FAIL("kvm_run: %d (%s), errno %d", r, exit_name(r), errno);
		struct kvm_run *run = kvm_run_area();
		if (run->io.port != 0x30 || run->io.direction != KVM_EXIT_IO_OUT)
			FAIL("unexpected I/O on port 0x%x", run->io.port);
		v = *((uint8_t *)run + run->io.data_offset);
	}
	watchdog_stop();
	return v;
}

static void *vcpu_thread(void *arg)
{
	int k = (int)(intptr_t)arg;
	unsigned id = t.ids[k];
	OK(kvm_create_vcpu(t.vm, id));
	/* The guest's CPUID must offer x2APIC for it to be enabled. */
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 256 * sizeof(c->entries[0]));
	CHECK(c != NULL);
	c->nent = 256;
	OK(kvm_get_supported_cpuid(c));
	OK(kvm_set_cpuid(c));
	free(c);
	if (id != 0) {
		/* With the in-kernel irqchip an AP waits for INIT/SIPI: make it run. */
		struct kvm_mp_state mp = { KVM_MP_STATE_RUNNABLE };
		OK(kvm_set_mp_state(&mp));
	}
	setup_unreal_mode(LOAD);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rsp = 0x8000 - 0x400 * (unsigned)k;
	OK(kvm_set_regs(&r));
	uint32_t seen = run_until_out(0x10);
	if (seen != id)
		FAIL("%s: vcpu %u reports APIC ID 0x%x", mode_names[t.mode], id, seen);
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	CHECK_EQ(!!(s.apic_base & (1 << 10)), t.mode != XAPIC);   /* EXTD */

	/* Every APIC enabled before the first interrupt: one sent to the wrong APIC ID
	 * then lands on a vcpu that reports it, rather than being refused. */
	pthread_barrier_wait(&t.ready);
	OK(kvm_interrupt(vectors[k]));
	unsigned v = next_vector(5);
	if (v != vectors[k])
		FAIL("%s: vcpu %u (thread %d) took vector 0x%x, expected 0x%x%s", mode_names[t.mode],
		     id, k, v, vectors[k], v ? "" : " (none came within 5 s)");
	/* Each vcpu took its own: none takes another afterwards. */
	pthread_barrier_wait(&t.taken);
	v = next_vector(0.1);
	if (v)
		FAIL("%s: vcpu %u also took vector 0x%x", mode_names[t.mode], id, v);
	OK(kvm_detach_vcpu());
	return NULL;
}

static void run_mode(enum mode mode, int nv, const unsigned *ids)
{
	t.mode = mode;
	t.nv = nv;
	memcpy(t.ids, ids, nv * sizeof(ids[0]));
	t.vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(t.vm));
	if (mode == X2APIC_32) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_X2APIC_API,
			.args = { KVM_X2APIC_API_USE_32BIT_IDS } };
		OK(kvm_enable_cap(t.vm, &cap));
	}
	struct blob b = mode == XAPIC ? BLOB(rm_apic_ids_x) : BLOB(rm_apic_ids_x2);
	load_blob(t.vm, LOAD, b);
	extern const uint8_t ax_h41[], ax_h52[], ax_h63[], ax_h74[], ax_h85[];
	extern const uint8_t ax2_h41[], ax2_h52[], ax2_h63[], ax2_h74[], ax2_h85[];
	const uint8_t *hx[] = { ax_h41, ax_h52, ax_h63, ax_h74, ax_h85 };
	const uint8_t *hx2[] = { ax2_h41, ax2_h52, ax2_h63, ax2_h74, ax2_h85 };
	uint16_t *ivt = kvm_guest_memory(t.vm, 0, 0x400);
	CHECK(ivt != NULL);
	for (int i = 0; i < MAXV; i++)
		ivt[vectors[i] * 2] = (uint16_t)((mode == XAPIC ? hx[i] : hx2[i]) - b.start + LOAD);
	CHECK(pthread_barrier_init(&t.ready, NULL, (unsigned)nv) == 0);
	CHECK(pthread_barrier_init(&t.taken, NULL, (unsigned)nv) == 0);
	pthread_t th[MAXV];
	for (int i = 0; i < nv; i++)
		CHECK(pthread_create(&th[i], NULL, vcpu_thread, (void *)(intptr_t)i) == 0);
	for (int i = 0; i < nv; i++)
		CHECK(pthread_join(th[i], NULL) == 0);
	pthread_barrier_destroy(&t.ready);
	pthread_barrier_destroy(&t.taken);
	OK(kvm_destroy_vm(t.vm));
	printf("%s: vcpus", mode_names[mode]);
	for (int i = 0; i < nv; i++)
		printf(" 0x%x<-0x%x", ids[i], vectors[i]);
	printf(", each its own vector only\n");
}

int main(void)
{
	require_kvm();
	deadline(30);      /* a lost interrupt, or a thread stuck at a barrier */
	static const unsigned ids[] = { 0, 1, 2, 3, 0x101 };
	run_mode(XAPIC, 4, ids);
	run_mode(X2APIC, 4, ids);
	int vm = vm_with_memory(0x1000);
	int api = kvm_check_extension(vm, KVM_CAP_X2APIC_API);
	int max_id = kvm_check_extension(vm, KVM_CAP_MAX_VCPU_ID);
	OK(kvm_destroy_vm(vm));
	if (!(api & KVM_X2APIC_API_USE_32BIT_IDS))
		skip_section("x2APIC with 32-bit IDs", "KVM_CAP_X2APIC_API lacks KVM_X2APIC_API_USE_32BIT_IDS");
	else if (max_id <= 0x101)
		run_mode(X2APIC_32, 4, ids);
	else
		run_mode(X2APIC_32, 5, ids);
	if (api & KVM_X2APIC_API_USE_32BIT_IDS && max_id <= 0x101)
		skip_section("x2APIC ID 0x101", "KVM_CAP_MAX_VCPU_ID is 0x101 or less");
	return 0;
}
