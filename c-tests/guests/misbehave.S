/* Guests that misbehave (guest_misbehaviour.c, guest_addresses.c), loaded at 0x1000. */
#include "guest.h"

	.code16

/* Reports 0x42 on port 0x12 and halts: proves a vcpu still works after misbehaving. */
GUEST_BEGIN(mb_ok)
	mov	$0x42, %al
	out	%al, $0x12
	hlt
GUEST_END(mb_ok)

/* Loops forever. */
GUEST_BEGIN(mb_loop)
1:	jmp	1b
GUEST_END(mb_loop)

/* Touches memory at 0x20000, where the test puts no slot (or a read-only one): writes of
 * 1, 2 and 4 bytes, then a 4-byte read it reports on port 0x10 and a 1-byte read it
 * reports on port 0x11. */
GUEST_BEGIN(mb_touch)
	mov	$0x2000, %ax
	mov	%ax, %ds
	movb	$0x5a, (0x10)
	movw	$0x1234, (0x20)
	movl	$0xdeadbeef, (0x40)
	mov	(0x80), %eax
	out	%eax, $0x10
	mov	(0x10), %al
	out	%al, $0x11
	hlt
GUEST_END(mb_touch)

/* String I/O the guest sizes itself: rep outsb of CX bytes from ds:si to port 0x30, then
 * rep insw of DX words into es:di from port 0x31, then halts. */
GUEST_BEGIN(mb_string_io)
	mov	%dx, %bp
	mov	$0x30, %dx
	rep outsb
	mov	%bp, %cx
	mov	$0x31, %dx
	rep insw
	hlt
GUEST_END(mb_string_io)

	.code32

/* Protected mode with an empty IDT: the #UD cannot be delivered (#GP, #DF, triple
 * fault). */
GUEST_BEGIN(mb_ud2)
	ud2
GUEST_END(mb_ud2)

/* An instruction KVM's emulator cannot execute (where the guest runs through it). */
GUEST_BEGIN(mb_xgetbv)
	xor	%ecx, %ecx
	xgetbv
	hlt
GUEST_END(mb_xgetbv)

	.code64

/* MMIO of 8 and 16 bytes at 0x20000 (no slot there): an 8-byte write, an 8-byte read it
 * reports on ports 0x10 (low half) and 0x11 (high half), and a 16-byte SSE write of
 * the 16 bytes at 0x3000. */
GUEST_BEGIN(mb_wide_mmio)
	movabs	$0x1122334455667788, %rax
	mov	%rax, 0x20000
	mov	0x20008, %rax
	out	%eax, $0x10
	shr	$32, %rax
	out	%eax, $0x11
	movdqu	0x3000, %xmm0
	movdqu	%xmm0, 0x20010
	hlt
GUEST_END(mb_wide_mmio)
