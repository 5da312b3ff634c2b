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
