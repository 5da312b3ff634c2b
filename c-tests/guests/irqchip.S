/* Real-mode guests for the irqchip, PIT and GSI-routing tests, loaded at 0x1000. */
#include "guest.h"
	.code16

/* With interrupts off, reads the master PIC's IRR (OCW3) and IMR and reports them on
 * ports 0x30 and 0x31, then reports on port 0x3f forever (a HLT with interrupts
 * off would never return with an in-kernel irqchip). */
GUEST_BEGIN(rm_pic_read)
	mov	$0x0a, %al
	out	%al, $0x20
	in	$0x20, %al
	out	%al, $0x30
	in	$0x21, %al
	out	%al, $0x31
1:	out	%al, $0x3f
	jmp	1b
GUEST_END(rm_pic_read)

/* Programs PIT channel 0 (mode 2, count 0x1234) and reports on port 0x30; then latches
 * the status of channel 1 with a read-back command and reports it on port 0x31; then
 * reports on port 0x3f forever. */
GUEST_BEGIN(rm_pit)
	PIT_CH0_MODE2_1234
	out	%al, $0x30
	mov	$0xe4, %al		/* read-back: status only, channel 1 */
	out	%al, $0x43
	in	$0x41, %al
	out	%al, $0x31
1:	out	%al, $0x3f
	jmp	1b
GUEST_END(rm_pit)

/* Enables interrupts and halts forever; the handlers at irq_h41/52/63/74 (for vectors
 * 0x41, 0x52, 0x63, 0x74: one per priority class, so no EOI is needed) report their
 * vector on port 0x30. */
GUEST_BEGIN(rm_irq_wait)
	sti
1:	hlt
	jmp	1b
	.globl irq_h41
irq_h41:
	mov	$0x41, %al
	out	%al, $0x30
	iret
	.globl irq_h52
irq_h52:
	mov	$0x52, %al
	out	%al, $0x30
	iret
	.globl irq_h63
irq_h63:
	mov	$0x63, %al
	out	%al, $0x30
	iret
	.globl irq_h74
irq_h74:
	mov	$0x74, %al
	out	%al, $0x30
	iret
GUEST_END(rm_irq_wait)
