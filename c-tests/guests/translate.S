/* Paged guests for the kvm_translate test, loaded at 0x2000 (identity-mapped). */
#include "guest.h"

/* 32-bit paging: reads linear 0x40010 and reports it on port 0x10, writes 0xabcd1234 to
 * linear 0x40020 and reports on 0x11, reads linear 0x401234 (a 4 MiB page) and reports
 * it on 0x12. */
	.code32
GUEST_BEGIN(pm_paging)
	mov	0x40010, %eax
	out	%eax, $0x10
	movl	$0xabcd1234, 0x40020
	out	%al, $0x11
	mov	0x401234, %eax
	out	%eax, $0x12
	hlt
GUEST_END(pm_paging)

/* 4-level paging: reads linear 0x205010 and reports it on port 0x10, writes 0x77 to
 * linear 0x206008 and reports on 0x11. */
	.code64
GUEST_BEGIN(lm_paging)
	mov	0x205010, %eax
	out	%eax, $0x10
	movl	$0x77, 0x206008
	out	%al, $0x11
	hlt
GUEST_END(lm_paging)
