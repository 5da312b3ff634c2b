/* 32-bit protected-mode guests for the kvmclock tests, loaded at 0x2000, flat segments,
 * paging off. */
#include "guest.h"
	.code32

/* Enables kvmclock (MSR_KVM_SYSTEM_TIME_NEW) with its pvclock structure at 0x3000, then
 * loops: reports on port 0x31 the structure's flags byte (offset 29; bit 1 is
 * PVCLOCK_GUEST_STOPPED) and the low half of its system_time (offset 16) on port 0x32. */
GUEST_BEGIN(pm_kvmclock)
	mov	$0x4b564d01, %ecx
	mov	$0x3001, %eax
	xor	%edx, %edx
	wrmsr
1:	movzbl	0x301d, %eax
	out	%eax, $0x31
	mov	0x3010, %eax
	out	%eax, $0x32
	jmp	1b
GUEST_END(pm_kvmclock)
