/* 64-bit guests, loaded at 0x4000 with identity page tables (harness.c). */
#include "guest.h"
	.code64

/* Computes RAX = 0x123456789abcdef0 + R8, stores it at 0x200008 (in the second 2 MiB
 * page) and reports the low half on port 0x30. */
GUEST_BEGIN(lm_compute)
	movabs	$0x123456789abcdef0, %rax
	add	%r8, %rax
	mov	$0x200008, %rdi
	mov	%rax, (%rdi)
	out	%eax, $0x30
	hlt
GUEST_END(lm_compute)
