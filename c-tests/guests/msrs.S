/* Real-mode guest for the MSR test, loaded at 0x1000. */
#include "guest.h"
	.code16

/* Writes 0x10 to IA32_SYSENTER_CS and 0xffff800012345678 to IA32_KERNEL_GS_BASE, then
 * reads IA32_SYSENTER_EIP and IA32_STAR and reports them, low half then high half, on
 * ports 0x10-0x13. */
GUEST_BEGIN(rm_msrs)
	mov	$0x174, %ecx
	mov	$0x10, %eax
	xor	%edx, %edx
	wrmsr
	mov	$0xc0000102, %ecx
	mov	$0x12345678, %eax
	mov	$0xffff8000, %edx
	wrmsr
	out	%al, $0x0f
	mov	$0x176, %ecx
	rdmsr
	out	%eax, $0x10
	mov	%edx, %eax
	out	%eax, $0x11
	mov	$0xc0000081, %ecx
	rdmsr
	out	%eax, $0x12
	mov	%edx, %eax
	out	%eax, $0x13
	hlt
GUEST_END(rm_msrs)
