/* Real-mode guests, loaded at 0x1000. */
#include "guest.h"
	.code16

/* Port I/O and arithmetic: adds constants, multiplies the host's BX by CX, and doubles
 * a byte it reads from port 0x12. */
GUEST_BEGIN(rm_arith)
	mov	$0x1234, %ax
	mov	$0x0101, %dx
	add	%dx, %ax		/* 0x1335 */
	mov	$0x10, %dx
	out	%ax, %dx
	shl	$1, %ax			/* 0x266a */
	out	%ax, $0x11
	in	$0x12, %al
	add	%al, %al
	out	%al, $0x13
	mov	%bx, %ax
	mul	%cx			/* DX:AX = BX * CX */
	out	%ax, $0x14
	hlt
GUEST_END(rm_arith)

/* Doubles SI and reports it on port 0x10, then adds 1 to BX and reports it on 0x11. */
GUEST_BEGIN(rm_report)
	mov	%si, %ax
	add	%ax, %ax
	out	%ax, $0x10
	inc	%bx
	mov	%bx, %ax
	out	%ax, $0x11
	hlt
GUEST_END(rm_report)

/* A rendezvous of two vcpus in real mode: this vcpu sets its own flag (word at
 * 0x3000 + 2 * %bx) and spins until the other's (0x3000 + 2 * (1 - %bx)) is set, then
 * reports its %bx on port 0x12. It finishes only while the other vcpu runs too: a
 * library that serialised the vcpus' kvm_run would leave it spinning. */
GUEST_BEGIN(rm_rendezvous)
	mov	%bx, %di
	add	%di, %di
	movw	$1, 0x3000(%di)
	mov	$2, %si
	sub	%di, %si
1:	cmpw	$0, 0x3000(%si)
	je	1b
	mov	%bx, %ax
	out	%ax, $0x12
	hlt
GUEST_END(rm_rendezvous)

/* Reads the PC speaker port (0x61) and reports the byte on port 0x12. */
GUEST_BEGIN(rm_speaker)
	in	$0x61, %al
	out	%al, $0x12
	hlt
GUEST_END(rm_speaker)
