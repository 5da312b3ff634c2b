/* 32-bit protected-mode guests for the coalesced-MMIO and dirty-log tests, loaded at
 * 0x2000, flat segments, paging off. */
#include "guest.h"
	.code32

/* Writes 4, 1 and 2 bytes to MMIO at 0xd0000000/10/20 and one byte to port 0x300, then
 * reports on port 0x30; then writes 4 bytes to 0xd0000000 again and halts. */
GUEST_BEGIN(pm_coalesced)
	movl	$0x11, 0xd0000000
	movb	$0x22, 0xd0000010
	movw	$0x3344, 0xd0000020
	mov	$0x300, %dx
	mov	$0x55, %al
	out	%al, %dx
	out	%al, $0x30
	movl	$0x66, 0xd0000000
	hlt
GUEST_END(pm_coalesced)

/* Writes pages 1, 3 and 5 of the slot at 0x100000, reports on port 0x30, writes pages 1
 * and 3 again, reports on port 0x31, halts. */
GUEST_BEGIN(pm_dirty_clear)
	movl	$1, 0x101000
	movl	$3, 0x103000
	movl	$5, 0x105000
	out	%al, $0x30
	movl	$1, 0x101004
	movl	$3, 0x103004
	out	%al, $0x31
	hlt
GUEST_END(pm_dirty_clear)

