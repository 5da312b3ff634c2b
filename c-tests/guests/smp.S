/* Guests of the SMP, kick and signal tests. Real-mode ones are loaded at 0x1000, 64-bit
 * ones at 0x4000 (ring 3 on the harness's page tables, IOPL 3: they run natively on
 * kvm_pvm, which the kick storm and the lock test need for speed). */
#include "guest.h"

/* The body shared by rm_xadd and um_xadd, on the address registers SP and DP and the
 * count register CNT of the guest's mode. */
.macro RENDEZVOUS_XADD sp, dp, cnt
	lock incl (\sp)
1:	pause
	cmp	%edx, (\sp)
	jb	1b
	mov	$1, %eax
	lock xadd %eax, (\dp)
	mov	%eax, %ebp
	dec	\cnt
2:	mov	$1, %eax
	lock xadd %eax, (\dp)
	dec	\cnt
	jnz	2b
	mov	%eax, %ebx
	out	%al, $0x10
.endm

	.code16

/* Arrives at the rendezvous word at SI (`lock incl`) and waits until EDX vcpus have,
 * then adds 1 to the 32-bit counter at DI with `lock xadd`, ECX times. The counter's
 * value before its first add is left in EBP, before its last in EBX. Then reports on
 * port 0x10 and halts. */
GUEST_BEGIN(rm_xadd)
	RENDEZVOUS_XADD %si, %di, %ecx
	hlt
GUEST_END(rm_xadd)

/* Counts forever in the 32-bit word at DI. */
GUEST_BEGIN(rm_spin)
1:	incl	(%di)
	jmp	1b
GUEST_END(rm_spin)

/* Stores EAX at DI and halts. */
GUEST_BEGIN(rm_store_halt)
	mov	%eax, (%di)
	hlt
GUEST_END(rm_store_halt)

/* Reads a byte from port 0x12, reports it on port 0x13 and halts. */
GUEST_BEGIN(rm_in_echo)
	in	$0x12, %al
	out	%al, $0x13
	hlt
GUEST_END(rm_in_echo)

	.code64

/* The 64-bit ring-3 twin of rm_xadd: rendezvous at RSI, RCX adds at RDI, first and last
 * values seen in RBP and RBX, then reports on port 0x10 (and spins: ring 3 cannot halt). */
GUEST_BEGIN(um_xadd)
	RENDEZVOUS_XADD %rsi, %rdi, %rcx
3:	jmp	3b
GUEST_END(um_xadd)

/* Counts forever in the 64-bit word at RDI. */
GUEST_BEGIN(um_spin)
1:	incq	(%rdi)
	jmp	1b
GUEST_END(um_spin)

/* Sets the 64-bit word at RSI to 1, spins until the host makes the word at RDI nonzero,
 * then reports on port 0x10 and spins. */
GUEST_BEGIN(um_wait_flag)
	movq	$1, (%rsi)
1:	cmpq	$0, (%rdi)
	je	1b
	out	%al, $0x10
2:	jmp	2b
GUEST_END(um_wait_flag)

	.code16

/* Writes 7 three times to port 0x70, 8 once, 0x1234 (2 bytes) to port 0x72, 5 (2 bytes)
 * to MMIO address 0xd0000 (no memory there), then reports on port 0x71 and halts. */
GUEST_BEGIN(rm_ioevent)
	mov	$7, %al
	out	%al, $0x70
	out	%al, $0x70
	out	%al, $0x70
	mov	$8, %al
	out	%al, $0x70
	mov	$0x1234, %ax
	out	%ax, $0x72
	mov	$0xd000, %bx
	mov	%bx, %es
	movw	$5, %es:0
	out	%al, $0x71
	hlt
GUEST_END(rm_ioevent)
