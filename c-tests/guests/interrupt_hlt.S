/* Guests for interrupt_hlt.c: a vector from kvm_interrupt that waits while IF is clear
 * and must wake the guest's `sti; hlt`. */
#include "guest.h"

/* Real mode, loaded at 0x1000, no in-kernel irqchip. Each scenario starts at its own
 * label with interrupts off and does `out` to 0x10 (the host queues its vectors then),
 * then idles as a PC operating system does. Past its idle hlt it waits (IF set, in a
 * loop without exits, where an interrupt window can open) until its handlers have run
 * as often as the byte at 0x501 says, does `out` to 0x11 and stops with cli; hlt. The
 * host points IVT entries 0x20 and 0x21 at the handlers, which count interrupts in the
 * byte at 0x500 and report their vector on port 0x30 and the address their iret returns
 * to on port 0x31 (16 bits). */
	.code16
GUEST_BEGIN(rm_hlt)
	.globl	rm_hlt_sti_hlt, rm_hlt_sti_hlt_after
rm_hlt_sti_hlt:
	cli
	out	%al, $0x10
	sti
	hlt
rm_hlt_sti_hlt_after:
	jmp	rm_hlt_wait

	.globl	rm_hlt_sti_nop_hlt, rm_hlt_sti_nop_hlt_at, rm_hlt_sti_nop_hlt_after
rm_hlt_sti_nop_hlt:
	cli
	out	%al, $0x10
	sti
	nop
rm_hlt_sti_nop_hlt_at:
	hlt
rm_hlt_sti_nop_hlt_after:
	jmp	rm_hlt_wait

	/* A hlt with interrupts off, then (out to 0x12) the idle `sti; hlt`. */
	.globl	rm_hlt_cli_hlt, rm_hlt_cli_hlt_after
rm_hlt_cli_hlt:
	cli
	out	%al, $0x10
	hlt
	out	%al, $0x12
	sti
	hlt
rm_hlt_cli_hlt_after:
	.globl	rm_hlt_wait, rm_hlt_done
rm_hlt_wait:
	mov	0x501, %al
	cmp	%al, 0x500
	jb	rm_hlt_wait
rm_hlt_done:
	out	%al, $0x11
	cli
	hlt

	.globl	rm_hlt_h20, rm_hlt_h21
rm_hlt_h20:
	push	%ax
	mov	$0x20, %al
	jmp	2f
rm_hlt_h21:
	push	%ax
	mov	$0x21, %al
2:	incb	0x500
	out	%al, $0x30
	push	%bp
	mov	%sp, %bp
	mov	4(%bp), %ax		/* the IP the iret returns to */
	out	%ax, $0x31
	pop	%bp
	pop	%ax
	iret
GUEST_END(rm_hlt)
