/* 32-bit protected-mode guest for the memory-alias test, loaded at 0x2000. */
#include "guest.h"
	.code32

/* Writes EBX to [EDI] and reports on port 0x10, then reads [ESI] and reports it on
 * port 0x11. */
GUEST_BEGIN(pm_alias)
	mov	%ebx, (%edi)
	out	%al, $0x10
	mov	(%esi), %eax
	out	%eax, $0x11
	hlt
GUEST_END(pm_alias)
