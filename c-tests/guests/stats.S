/* Guests of the statistics test (c-tests/stats.c). */
#include "guest.h"

/* Real mode, at 0x1000: SI writes to port 0x50 (AL = how many are left), then DI hlts,
 * then one write to port 0x51 (AL = 0x5a) to say it is done. */
	.code16
GUEST_BEGIN(rm_stats_outs_hlts)
	mov	%si, %cx
1:	mov	%cl, %al
	out	%al, $0x50
	loop	1b
	mov	%di, %cx
2:	hlt
	loop	2b
	mov	$0x5a, %al
	out	%al, $0x51
	hlt
GUEST_END(rm_stats_outs_hlts)

/* 64-bit ring 3 (setup_user_long_mode), at 0x4000: RSI writes to port 0x50, then one to
 * port 0x51, then spins forever without an exit of its own (a vcpu that keeps running
 * for the readers on other threads). */
	.code64
GUEST_BEGIN(lm_stats_outs_spin)
	mov	%rsi, %rcx
1:	mov	%cl, %al
	out	%al, $0x50
	loop	1b
	mov	$0x5a, %al
	out	%al, $0x51
2:	pause
	jmp	2b
GUEST_END(lm_stats_outs_spin)

/* Real mode, at 0x1000, for a VM with the in-kernel irqchip: with interrupts off, hlt
 * blocks inside KVM_RUN until something kicks the vcpu out. */
	.code16
GUEST_BEGIN(rm_stats_block)
	cli
	hlt
	mov	$0x5b, %al
	out	%al, $0x52
	hlt
GUEST_END(rm_stats_block)
