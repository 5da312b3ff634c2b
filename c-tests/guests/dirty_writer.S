/* 64-bit ring-3 guest for the dirty-log tests (dirty_ring.c), loaded at 0x4000 with
 * setup_user_long_mode: at native speed on kvm_pvm, so that it fills small dirty rings. */
#include "guest.h"
	.code64

/* Writes R9 + 1, R9 + 2, ... (8 bytes each) to pseudo-random 8-byte places of
 * pseudo-random pages of [RDI, RDI + (RSI + 1) * 4096) (RSI + 1 a power of two), the
 * places drawn by xorshift64 from the seed in R8 (non-zero); after every R12 writes it
 * reports on port 0x20, then goes on. */
GUEST_BEGIN(um_dirty_writer)
1:	mov	%r12, %r11
2:	mov	%r8, %rax
	shl	$13, %rax
	xor	%rax, %r8
	mov	%r8, %rax
	shr	$7, %rax
	xor	%rax, %r8
	mov	%r8, %rax
	shl	$17, %rax
	xor	%rax, %r8
	mov	%r8, %rax
	shr	$20, %rax
	and	%rsi, %rax
	shl	$12, %rax
	mov	%r8, %rcx
	and	$0xff8, %rcx
	add	%rcx, %rax
	add	%rdi, %rax
	inc	%r9
	mov	%r9, (%rax)
	dec	%r11
	jnz	2b
	out	%al, $0x20
	jmp	1b
GUEST_END(um_dirty_writer)
