/* Guests of the tests of rarely seen errnos (dev_kvm_open, run_errors, rare_errnos). */
#include "guest.h"
	.code16

/* Reports 42 on port 0x10 and halts. */
GUEST_BEGIN(rm_report42)
	mov	$42, %al
	out	%al, $0x10
	hlt
GUEST_END(rm_report42)

/* An interrupt handler (IVT entry set by the host): reports 0x33 on port 0x10 and
 * returns to the interrupted code. */
GUEST_BEGIN(rm_report_handler)
	mov	$0x33, %al
	out	%al, $0x10
	iret
GUEST_END(rm_report_handler)

/* Writes the 4 bytes 0x11223344 at 0x20ffe (DS 0x2000, offset 0xffe), where no memory
 * is: the access crosses the page boundary at 0x21000, so KVM splits it into two MMIO
 * exits of 2 bytes. Then reports 42 on port 0x10 and halts. */
GUEST_BEGIN(rm_split_mmio)
	mov	$0x2000, %ax
	mov	%ax, %ds
	movl	$0x11223344, 0x0ffe
	mov	$42, %al
	out	%al, $0x10
	hlt
GUEST_END(rm_split_mmio)

/* Writes AL to the port in DX, then reports 42 on port 0x10 and halts. */
GUEST_BEGIN(rm_out_dx)
	out	%al, %dx
	mov	$42, %al
	out	%al, $0x10
	hlt
GUEST_END(rm_out_dx)

/* Writes a byte at 0x30000 (DS 0x3000), where no memory is, then reports 42 on port
 * 0x10 and halts. */
GUEST_BEGIN(rm_mmio_store)
	mov	$0x3000, %ax
	mov	%ax, %ds
	movb	$1, 0
	mov	$42, %al
	out	%al, $0x10
	hlt
GUEST_END(rm_mmio_store)

	.code64

/* Ring 3: reads the byte at RDI, reports it on port 0x10, and spins. */
GUEST_BEGIN(um_load_report)
	movb	(%rdi), %al
	out	%al, $0x10
1:	jmp	1b
GUEST_END(um_load_report)
