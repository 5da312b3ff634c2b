/* kvm_interrupt without an in-kernel irqchip runs the guest's handler, also once a guest with interrupts off enables them. */
#include "harness.h"
#include <pthread.h>

#define LOAD 0x1000
#define HANDLER(sym) ({ extern const uint8_t sym[]; (uint16_t)(sym - rm_irq_start + LOAD); })

extern const uint8_t rm_irq_start[];

/* The next exit must be an out to `port` (a step) or to 0x30 (a handler). */
static void expect_out(uint16_t port, uint8_t value)
{
	uint32_t v = run_until_out(port);
	if (port == 0x30)
		CHECK_EQ(v & 0xff, value);
}

static void *no_vcpu(void *arg)
{
	(void)arg;
	CHECK_ERR(kvm_interrupt(0x20), ESRCH);
	return NULL;
}

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	load_blob(vm, LOAD, BLOB(rm_irq));
	uint16_t *ivt = real_mode_ivt(vm);
	ivt[0x20 * 2] = HANDLER(rm_irq_h20);
	ivt[0x21 * 2] = HANDLER(rm_irq_h21);
	ivt[0x22 * 2] = HANDLER(rm_irq_h22);
	ivt[0x80 * 2] = HANDLER(rm_irq_h80);
	OK(kvm_create_vcpu(vm, 0));
	setup_real_mode(LOAD);
	EDIT_REGS(r, r.rsp = 0x8000);
	struct kvm_run *run = kvm_run_area();

	/* Interrupts on: the handler runs right away, before the next instruction. */
	expect_out(0x10, 0);
	OK(kvm_interrupt(0x20));
	expect_out(0x30, 0x20);
	expect_out(0x11, 0);

	/* Interrupts off: both wait, through three exits, until the guest's sti; then the
	 * higher vector first. kvm_run() never returns the interrupt window it needed. */
	expect_out(0x12, 0);
	OK(kvm_interrupt(0x21));
	OK(kvm_interrupt(0x22));
	OK(kvm_interrupt(0x21));                   /* already pending: no second one */
	CHECK_EQ(run->request_interrupt_window, 0);
	for (int i = 0; i < 3; i++) {
		expect_out(0x13, 0);
		CHECK_EQ(run->request_interrupt_window, 0);   /* the caller's value */
	}
	expect_out(0x30, 0x22);
	expect_out(0x30, 0x21);
	expect_out(0x14, 0);

	/* The caller's own window request still ends kvm_run() with IRQ_WINDOW_OPEN. */
	expect_out(0x15, 0);
	run->request_interrupt_window = 1;
	run_expect(KVM_EXIT_IRQ_WINDOW_OPEN);
	CHECK(run->ready_for_interrupt_injection);
	run->request_interrupt_window = 0;
	OK(kvm_interrupt(0x80));
	expect_out(0x30, 0x80);
	expect_out(0x16, 0);

	/* Both: libkvm's vector goes in at the first window, the caller gets the next. */
	expect_out(0x17, 0);
	run->request_interrupt_window = 1;
	OK(kvm_interrupt(0x20));
	expect_out(0x30, 0x20);
	CHECK_EQ(run->request_interrupt_window, 1);
	run_expect(KVM_EXIT_IRQ_WINDOW_OPEN);
	run->request_interrupt_window = 0;
	OK(kvm_interrupt(0x80));
	expect_out(0x30, 0x80);
	expect_out(0x18, 0);

	/* A halted guest with interrupts on is woken by the handler. */
	run_expect(KVM_EXIT_HLT);
	OK(kvm_interrupt(0x20));
	expect_out(0x30, 0x20);
	expect_out(0x19, 0);
	run_expect(KVM_EXIT_HLT);

	/* Bad input. */
	CHECK_ERR(kvm_interrupt(256), EINVAL);
	CHECK_ERR(kvm_interrupt(-1u), EINVAL);
	on_thread(no_vcpu, NULL);

	end_vm(vm);
	return 0;
}
