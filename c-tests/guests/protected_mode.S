/* 32-bit protected-mode guests, loaded at 0x2000, flat segments, paging off. */
#include "guest.h"
	.code32

/* Sums 1..ECX into EAX, stores it at 0x3000 and reports it on port 0x20. */
GUEST_BEGIN(pm_sum)
	xor	%eax, %eax
1:	add	%ecx, %eax
	loop	1b
	mov	%eax, 0x3000
	out	%eax, $0x20
	hlt
GUEST_END(pm_sum)
