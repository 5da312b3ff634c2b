/* 32-bit protected-mode guest for the dirty-log test, loaded at 0x2000. */
#include "guest.h"
	.code32

/* Writes each address of the zero-terminated table at ESI to itself, reports on port
 * 0x10 when it reaches the 0, then goes on with the table that follows. */
GUEST_BEGIN(pm_dirty)
1:	mov	(%esi), %eax
	add	$4, %esi
	test	%eax, %eax
	jz	2f
	mov	%eax, (%eax)
	jmp	1b
2:	out	%al, $0x10
	jmp	1b
GUEST_END(pm_dirty)
