/* A vector kvm_interrupt queued while IF was clear wakes the guest's sti;hlt (also sti;nop;hlt, two vectors, after cli;hlt, and after save/restore into a new VM): kvm_run never returns HLT while it is deliverable. */
/* No in-kernel irqchip: the vector waits in libkvm. A VMM treats KVM_EXIT_HLT as "sleep
 * until an interrupt arrives", so a HLT exit while a queued vector could be taken is a
 * guest that sleeps forever; a CPU takes the interrupt at the hlt and the handler's iret
 * returns after it. Each scenario runs in a VM of its own; `interrupt_hlt NAME` runs one. */
#include "harness.h"

#define LOAD 0x1000
#define GA(sym) ({ extern const uint8_t sym[]; (uint16_t)(sym - rm_hlt_start + LOAD); })

extern const uint8_t rm_hlt_start[];

static int new_vm(void)
{
	int vm = vm_with_memory(0x10000);
	load_blob(vm, LOAD, BLOB(rm_hlt));
	uint16_t *ivt = real_mode_ivt(vm);
	ivt[0x20 * 2] = GA(rm_hlt_h20);
	ivt[0x21 * 2] = GA(rm_hlt_h21);
	return vm;
}

/* A VM whose vcpu (the calling thread's) starts real-mode code at `entry`; past its
 * idle hlt the guest waits for `handlers` interrupts. */
static int start(uint16_t entry, uint8_t handlers)
{
	int vm = new_vm();
	uint8_t *wait = kvm_guest_memory(vm, 0x501, 1);
	CHECK(wait != NULL);
	*wait = handlers;
	OK(kvm_create_vcpu(vm, 0));
	setup_real_mode(entry);
	EDIT_REGS(r, r.rsp = 0x8000);
	return vm;
}

static int run_once(void)
{
	int r;
	do
		r = kvm_run();
	while (r == -1 && errno == EINTR);
	CHECK(r != -1);
	return r;
}

/* The next exit must be the handler of `vector` (IF set, so a HLT exit here means the
 * queued vector did not wake the guest); returns the address its iret returns to. */
static uint16_t expect_handler(unsigned vector)
{
	int r = run_once();
	if (r == KVM_EXIT_HLT)
		FAIL("kvm_run returned KVM_EXIT_HLT with vector 0x%x queued and IF set: "
		     "a VMM would sleep forever", vector);
	struct kvm_run *run = kvm_run_area();
	if (r != KVM_EXIT_IO || run->io.port != 0x30)
		FAIL("expected the handler of 0x%x, got %s (port 0x%x)", vector, exit_name(r),
		     r == KVM_EXIT_IO ? run->io.port : 0);
	CHECK_EQ(*((uint8_t *)run + run->io.data_offset), vector);
	return (uint16_t)run_until_out(0x31);
}

/* The end of a scenario: the guest went past its idle hlt, stops with cli; hlt, and its
 * handlers ran `n` times in all. */
static void finish(int vm, unsigned n)
{
	run_until_out(0x11);
	run_expect(KVM_EXIT_HLT);
	uint8_t *count = kvm_guest_memory(vm, 0x500, 1);
	CHECK(count != NULL);
	CHECK_EQ(*count, n);
	end_vm(vm);
}

/* sti; hlt with one vector queued: the interrupt wakes the hlt. */
static void sti_hlt(void)
{
	int vm = start(GA(rm_hlt_sti_hlt), 1);
	run_until_out(0x10);
	OK(kvm_interrupt(0x20));
	CHECK_EQ(expect_handler(0x20), GA(rm_hlt_sti_hlt_after));
	finish(vm, 1);
}

/* sti; nop; hlt: the interrupt comes after the nop (the sti's shadow), before the hlt,
 * as on a CPU; then the hlt halts with nothing queued (KVM_EXIT_HLT is right) and the
 * next vector wakes it. A host that reports the window only at the hlt takes it there:
 * the iret then returns after the hlt. Either way no HLT exit while it is queued. */
static void sti_nop_hlt(void)
{
	int vm = start(GA(rm_hlt_sti_nop_hlt), 1);
	run_until_out(0x10);
	OK(kvm_interrupt(0x20));
	uint16_t ip = expect_handler(0x20);
	if (ip == GA(rm_hlt_sti_nop_hlt_at)) {
		run_expect(KVM_EXIT_HLT);
		OK(kvm_interrupt(0x21));
		CHECK_EQ(expect_handler(0x21), GA(rm_hlt_sti_nop_hlt_after));
		finish(vm, 2);
	} else {
		CHECK_EQ(ip, GA(rm_hlt_sti_nop_hlt_after));
		finish(vm, 1);
	}
}

/* Two vectors queued, then sti; hlt: the higher wakes the hlt, the other comes once its
 * iret has set IF again (at once on a CPU; on kvm_pvm only once the guest runs on
 * without exits: in its wait loop), without a HLT exit in between. */
static void two_vectors(void)
{
	int vm = start(GA(rm_hlt_sti_hlt), 2);
	run_until_out(0x10);
	OK(kvm_interrupt(0x20));
	OK(kvm_interrupt(0x21));
	CHECK_EQ(expect_handler(0x21), GA(rm_hlt_sti_hlt_after));
	uint16_t ip = expect_handler(0x20);
	if (ip != GA(rm_hlt_sti_hlt_after) && (ip < GA(rm_hlt_wait) || ip >= GA(rm_hlt_done)))
		FAIL("the second handler returns to 0x%x, not after the hlt", ip);
	finish(vm, 2);
}

/* cli; hlt with a vector queued: KVM_EXIT_HLT (a CPU would not wake either), nothing
 * delivered; resumed, the guest gets to its sti; hlt, which the vector wakes. */
static void cli_hlt(void)
{
	int vm = start(GA(rm_hlt_cli_hlt), 1);
	run_until_out(0x10);
	OK(kvm_interrupt(0x20));
	run_expect(KVM_EXIT_HLT);
	run_until_out(0x12);
	uint8_t *count = kvm_guest_memory(vm, 0x500, 1);
	CHECK(count != NULL);
	CHECK_EQ(*count, 0);
	CHECK_EQ(expect_handler(0x20), GA(rm_hlt_cli_hlt_after));
	finish(vm, 1);
}

/* A vcpu with a vector queued, saved and restored into a new VM (its memory copied):
 * there, the guest's sti; hlt takes it. */
static void snapshot(void)
{
	int vm = start(GA(rm_hlt_sti_hlt), 1);
	run_until_out(0x10);
	OK(kvm_interrupt(0x21));
	size_t n = 0;
	CHECK_ERR(kvm_save_vcpu(NULL, &n), E2BIG);
	uint8_t *blob = malloc(n);
	CHECK(blob != NULL);
	OK(kvm_save_vcpu(blob, &n));
	uint8_t *mem = kvm_guest_memory(vm, 0, 0x10000);
	CHECK(mem != NULL);
	OK(kvm_detach_vcpu());

	int vm2 = new_vm();
	uint8_t *mem2 = kvm_guest_memory(vm2, 0, 0x10000);
	CHECK(mem2 != NULL);
	memcpy(mem2, mem, 0x10000);
	OK(kvm_destroy_vm(vm));
	OK(kvm_create_vcpu(vm2, 0));
	OK(kvm_restore_vcpu(blob, n));
	free(blob);
	CHECK_EQ(expect_handler(0x21), GA(rm_hlt_sti_hlt_after));
	finish(vm2, 1);
}

static const struct { const char *name; void (*fn)(void); } scenarios[] = {
	{ "sti_hlt", sti_hlt },
	{ "sti_nop_hlt", sti_nop_hlt },
	{ "two_vectors", two_vectors },
	{ "cli_hlt", cli_hlt },
	{ "snapshot", snapshot },
};

int main(int argc, char **argv)
{
	require_kvm();
	int ran = 0;
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		if (argc > 1 && strcmp(argv[1], scenarios[i].name) != 0)
			continue;
		fprintf(stderr, "%s\n", scenarios[i].name);
		scenarios[i].fn();
		ran++;
	}
	if (ran == 0)
		FAIL("no scenario %s", argv[1]);
	return 0;
}
