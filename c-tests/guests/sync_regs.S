/* Real-mode guest of sync_regs.c, loaded at 0x1000. */
#include "guest.h"
	.code16

/* Every pass: counts in EAX, echoes the host's EBX in EDX, loads ES with the count (so
 * the special registers change) and copies the host's CR2 to ESI, then exits on port
 * 0x10. The NMI handler counts NMIs in EBP and exits on 0x12 with NMIs blocked; the #UD
 * handler exits on 0x13. Both return to the loop. */
GUEST_BEGIN(sr_mix)
1:	inc	%eax
	mov	%ebx, %edx
	mov	%ax, %es
	mov	%cr2, %esi
	out	%al, $0x10
	jmp	1b
	.globl	sr_mix_nmi
sr_mix_nmi:
	inc	%ebp
	out	%al, $0x12
	iret
	.globl	sr_mix_ud
sr_mix_ud:
	out	%al, $0x13
	iret
GUEST_END(sr_mix)
