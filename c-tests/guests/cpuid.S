/* Real-mode guest for the CPUID test, loaded at 0x1000. */
#include "guest.h"
	.code16

/* Executes CPUID leaf 0x40000000 and reports EAX, EBX, ECX, EDX on ports 0x10-0x13. */
GUEST_BEGIN(rm_cpuid)
	mov	$0x40000000, %eax
	xor	%ecx, %ecx
	cpuid
	out	%eax, $0x10
	mov	%ebx, %eax
	out	%eax, $0x11
	mov	%ecx, %eax
	out	%eax, $0x12
	mov	%edx, %eax
	out	%eax, $0x13
	hlt
GUEST_END(rm_cpuid)
