/* Guests of the application-processor boot test (smp_boot.c). The host builds the GDT at
 * 0x6000 (null, flat 32-bit code 0x08, flat data 0x10), the pseudo-descriptors for LGDT at
 * 0x6100 and LIDT at 0x6110, and the AP's IDT at 0x5000. Memory 0x7000 is the AP's
 * "started" marker, 0x7004 the mark its IPI handler leaves. */
#include "guest.h"

/* The boot processor, 32-bit protected mode at 0x2000: enables its local APIC, reports
 * on port 0x6f, starts APIC ID 1 with INIT-SIPI-SIPI at 0x8000 (SIPI vector 0x08), waits
 * for its marker and reports it on port 0x70, sends it a fixed IPI with vector 0x41,
 * waits for the handler's mark and reports it on port 0x71. */
	.code32
GUEST_BEGIN(pm_bsp)
	movl	$0x1ff, 0xfee000f0		/* SVR: APIC on, spurious vector 0xff */
	out	%al, $0x6f
	movl	$0x01000000, 0xfee00310		/* ICR high: destination APIC ID 1 */
	movl	$0x00004500, 0xfee00300		/* INIT, assert */
	movl	$0x01000000, 0xfee00310
	movl	$0x00004608, 0xfee00300		/* SIPI: start at 0x08 << 12 */
	movl	$0x01000000, 0xfee00310
	movl	$0x00004608, 0xfee00300		/* the second SIPI, ignored by a running AP */
1:	pause
	mov	0x7000, %eax
	cmp	$0xa9a9a9a9, %eax
	jne	1b
	out	%eax, $0x70
	movl	$0x01000000, 0xfee00310
	movl	$0x00000041, 0xfee00300		/* fixed IPI, vector 0x41 */
2:	pause
	mov	0x7004, %eax
	test	%eax, %eax
	jz	2b
	out	%eax, $0x71
3:	jmp	3b
GUEST_END(pm_bsp)

/* The application processor's trampoline, loaded at 0x8000: starts in real mode at
 * CS:IP 0800:0000, enters protected mode, enables its local APIC, reports its APIC ID on
 * port 0x72, sets the marker, and waits for interrupts. */
	.code16
GUEST_BEGIN(ap_tramp)
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	lgdtl	0x6100
	lidtl	0x6110
	mov	%cr0, %eax
	or	$1, %eax
	mov	%eax, %cr0
	ljmpl	$0x08, $(ap32 - ap_tramp_start + 0x8000)
	.code32
ap32:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$0x9000, %esp
	movl	$0x1ff, 0xfee000f0
	mov	0xfee00020, %eax		/* APIC ID in bits 24-31 */
	shr	$24, %eax
	out	%eax, $0x72
	movl	$0xa9a9a9a9, 0x7000
	sti
1:	hlt
	jmp	1b

/* Vector 0x41: leaves the mark, reports the vector on port 0x73, EOI. */
	.globl	ap_tramp_handler
ap_tramp_handler:
	push	%eax
	movl	$0x41, 0x7004
	mov	$0x41, %eax
	out	%eax, $0x73
	movl	$0, 0xfee000b0
	pop	%eax
	iret

/* Spurious and unexpected vectors. */
	.globl	ap_tramp_iret
ap_tramp_iret:
	iret
GUEST_END(ap_tramp)
