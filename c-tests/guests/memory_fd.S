/* 32-bit protected-mode guest for the fd-backed memory tests, loaded at 0x2000. */
#include "guest.h"
	.code32

/* For each address of the zero-terminated table at ESI: reads the dword there, reports
 * it with an out to port 0x11, and writes ~(value ^ address) back. Reports on port 0x10
 * when it reaches the 0, then goes on with the table that follows. */
GUEST_BEGIN(pm_fdmem)
1:	mov	(%esi), %ebx
	add	$4, %esi
	test	%ebx, %ebx
	jz	2f
	mov	(%ebx), %eax
	out	%eax, $0x11
	xor	%ebx, %eax
	not	%eax
	mov	%eax, (%ebx)
	jmp	1b
2:	out	%al, $0x10
	jmp	1b
GUEST_END(pm_fdmem)
