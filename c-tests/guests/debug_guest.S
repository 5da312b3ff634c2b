/* Real-mode guest for the guest-debugging test, loaded at 0x1000. The labels after each
 * instruction are where single-stepping stops. */
#include "guest.h"
	.code16
GUEST_BEGIN(rm_steps)
	mov	$1, %ax
	.globl	rm_steps_1
rm_steps_1:
	inc	%ax
	.globl	rm_steps_2
rm_steps_2:
	add	%ax, %ax
	.globl	rm_steps_3
rm_steps_3:
	mov	%ax, %bx
	.globl	rm_steps_bp
rm_steps_bp:
	inc	%bx
	.globl	rm_steps_5
rm_steps_5:
	out	%ax, $0x10
	mov	%bx, %ax
	out	%ax, $0x11
	hlt
GUEST_END(rm_steps)
