/* Real-mode guest for the FPU test, loaded at 0x1000 (CR4.OSFXSR set by the host). */
#include "guest.h"
	.code16

/* Loads the 16 bytes at 0x3000 into XMM1 and reports on port 0x10. */
GUEST_BEGIN(rm_sse)
	movdqu	0x3000, %xmm1
	out	%al, $0x10
	hlt
GUEST_END(rm_sse)
