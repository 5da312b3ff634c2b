/* Guests for the kvm_interrupt tests. */
#include "guest.h"

/* Real mode, loaded at 0x1000, no in-kernel irqchip. The host points IVT entries 0x20,
 * 0x21, 0x22 and 0x80 at the handlers, which count interrupts in the byte at 0x500 and
 * report their vector on port 0x30. Each `out` to 0x10-0x19 marks a step the host acts
 * on. Where the guest enables interrupts it waits for the handlers in a loop, as a
 * guest waiting for an interrupt does (an interrupt window may open only while the
 * guest runs without exits). */
	.code16
GUEST_BEGIN(rm_irq)
	sti
	nop
	out	%al, $0x10		/* host: kvm_interrupt(0x20), IF set: at once */
	nop
	out	%al, $0x11
	cli
	out	%al, $0x12		/* host: kvm_interrupt(0x21), (0x22): pending */
	mov	$3, %cx
1:	out	%al, $0x13		/* IF clear: nothing delivered yet */
	loop	1b
	movb	$0, 0x500
	sti
1:	cmpb	$2, 0x500		/* window: 0x22, then 0x21 */
	jb	1b
	out	%al, $0x14
	cli
	movb	$0, 0x500
	out	%al, $0x15		/* host: sets request_interrupt_window itself */
	sti
1:	cmpb	$1, 0x500		/* the host gets KVM_EXIT_IRQ_WINDOW_OPEN, and */
	jb	1b			/* kvm_interrupt(0x80) */
	out	%al, $0x16
	cli
	movb	$0, 0x500
	out	%al, $0x17		/* host: its own window request and kvm_interrupt(0x20) */
	sti
1:	cmpb	$2, 0x500		/* 0x20, then the host's window and 0x80 */
	jb	1b
	out	%al, $0x18
	hlt				/* host: kvm_interrupt(0x20) while halted */
	out	%al, $0x19
	hlt
	.globl	rm_irq_h20, rm_irq_h21, rm_irq_h22, rm_irq_h80
rm_irq_h20:
	push	%ax
	mov	$0x20, %al
	jmp	2f
rm_irq_h21:
	push	%ax
	mov	$0x21, %al
	jmp	2f
rm_irq_h22:
	push	%ax
	mov	$0x22, %al
	jmp	2f
rm_irq_h80:
	push	%ax
	mov	$0x80, %al
2:	incb	0x500
	out	%al, $0x30
	pop	%ax
	iret
GUEST_END(rm_irq)

/* Real mode with the in-kernel irqchip, loaded at 0x1000. The host gives DS a 4 GiB
 * limit ("unreal mode"), so that the guest reaches its local APIC at 0xfee00000 (KVM's
 * instruction emulator has IRET only for real mode). The guest enables the APIC in its
 * spurious-interrupt vector register, then goes through the same steps as rm_irq. The
 * host points IVT entries 0x40 and 0x41 at the handlers, which count interrupts in the
 * byte at 0x500, report the vector on port 0x30 and write the APIC's EOI register. */
GUEST_BEGIN(rm_apic)
	out	%al, $0x0f		/* APIC still disabled: host's kvm_interrupt fails */
	addr32 movl $0x1ff, 0xfee000f0
	sti
	nop
	out	%al, $0x10		/* host: kvm_interrupt(0x40) */
	WAIT_HANDLED(1)
	out	%al, $0x11
	cli
	out	%al, $0x12		/* host: kvm_interrupt(0x41) */
	out	%al, $0x13		/* IF clear: nothing delivered yet */
	sti
	WAIT_HANDLED(2)
	out	%al, $0x14
1:	jmp	1b
	.globl	rm_apic_h40, rm_apic_h41
rm_apic_h40:
	push	%ax
	mov	$0x40, %al
	jmp	2f
rm_apic_h41:
	push	%ax
	mov	$0x41, %al
2:	incb	0x500
	out	%al, $0x30
	addr32 movl $0, 0xfee000b0	/* EOI */
	pop	%ax
	iret
GUEST_END(rm_apic)
