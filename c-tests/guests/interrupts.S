/* Interrupt guests, real mode at 0x1000, with the host's IVT at 0, SS:SP set by the host
 * and DS given a 4 GiB limit by the host (so that `addr32` reaches the local APIC at
 * 0xfee00000). Real mode because KVM's instruction emulator, which runs kernel-mode code
 * on kvm_pvm, can return from an interrupt (IRET) only in real mode. Each handler
 * reports its vector on port 0x60 and acknowledges it (PIC or local APIC EOI). */
#include "guest.h"
	.code16

GUEST_BEGIN(rm_intr)
/* Entry: programs both PICs (IRQ 0-7 at vectors 0x20-0x27, 8-15 at 0x28-0x2f; only IRQ 3
 * and 5 unmasked), enables the local APIC, reports its LVT timer register on port 0x67,
 * then waits for interrupts: each round reports "ready" on port 0x66 and halts with
 * interrupts enabled. */
	mov	$0x11, %al		/* ICW1: edge, cascade, ICW4 follows */
	out	%al, $0x20
	out	%al, $0xa0
	mov	$0x20, %al		/* ICW2: vector bases */
	out	%al, $0x21
	mov	$0x28, %al
	out	%al, $0xa1
	mov	$0x04, %al		/* ICW3: slave on IRQ 2 */
	out	%al, $0x21
	mov	$0x02, %al
	out	%al, $0xa1
	mov	$0x01, %al		/* ICW4: 8086 mode */
	out	%al, $0x21
	out	%al, $0xa1
	mov	$0xd7, %al		/* OCW1: unmask IRQ 3 and 5 */
	out	%al, $0x21
	mov	$0xff, %al
	out	%al, $0xa1
	addr32 movl $0x1ff, 0xfee000f0	/* local APIC on, spurious vector 0xff */
	addr32 mov 0xfee00320, %eax
	out	%eax, $0x67
wait:
	out	%al, $0x66
	sti
	hlt
	cli
	jmp	wait

/* Second entry: also unmasks IRQ 0 and programs PIT channel 0 as a 1 kHz rate generator
 * (count 1193), then waits for interrupts as above. */
	.globl	rm_intr_pit
rm_intr_pit:
	mov	$0xd6, %al
	out	%al, $0x21
	mov	$0x34, %al		/* channel 0, lobyte/hibyte, mode 2 */
	out	%al, $0x43
	mov	$0xa9, %al
	out	%al, $0x40
	mov	$0x04, %al
	out	%al, $0x40
	jmp	wait

	.globl	rm_intr_nmi
rm_intr_nmi:
	push	%ax
	mov	$2, %ax
	out	%ax, $0x60
	pop	%ax
	iret

	.globl	rm_intr_irq0, rm_intr_irq3, rm_intr_irq5
rm_intr_irq0:
	push	%ax
	mov	$0x20, %ax
	jmp	pic_eoi
rm_intr_irq3:
	push	%ax
	mov	$0x23, %ax
	jmp	pic_eoi
rm_intr_irq5:
	push	%ax
	mov	$0x25, %ax
pic_eoi:
	out	%ax, $0x60
	mov	$0x20, %al		/* non-specific EOI to the master PIC */
	out	%al, $0x20
	pop	%ax
	iret

	.globl	rm_intr_msi
rm_intr_msi:
	push	%ax
	mov	$0x50, %ax
	out	%ax, $0x60
	addr32 movl $0, 0xfee000b0	/* local APIC EOI */
	pop	%ax
	iret

	.globl	rm_intr_iret
rm_intr_iret:
	iret

/* Exceptions: report on port 0x6e and stop. */
	.globl	rm_intr_fault
rm_intr_fault:
	out	%al, $0x6e
	hlt
GUEST_END(rm_intr)
