/* 32-bit protected-mode guest for the vcpu-state tests, loaded at 0x2000, flat
 * segments, paging off. Each step reports on its own port; the host checks or changes
 * state between steps. */
#include "guest.h"
	.code32

GUEST_BEGIN(pm_vcpu_state)
	/* SSE on (CR4.OSFXSR); XMM0 from 0x3000, then XMM1 to 0x3100. */
	mov	%cr4, %eax
	or	$0x200, %eax
	mov	%eax, %cr4
	movdqu	0x3000, %xmm0
	out	%eax, $0x70
	movdqu	%xmm1, 0x3100
	out	%eax, $0x71
	/* Debug registers: DR0 the host set, DR1 for the host to read. */
	mov	%dr0, %eax
	out	%eax, $0x50
	mov	$0x5678, %eax
	mov	%eax, %dr1
	out	%eax, $0x51
	/* CR2 the host set with SREGS2; CR3 for the host to read. */
	mov	%cr2, %eax
	out	%eax, $0x60
	mov	$0x5000, %eax
	mov	%eax, %cr3
	out	%eax, $0x61
	/* IA32_SYSENTER_CS: written here, read by the host (ONE_REG), set by the host,
	 * read back here. */
	mov	$0x174, %ecx
	mov	$0x4242, %eax
	xor	%edx, %edx
	wrmsr
	out	%eax, $0x80
	rdmsr
	out	%eax, $0x81
	/* XSAVE area size for the XCR0 the host set (CPUID 0xD.0 EBX). */
	mov	$0xd, %eax
	xor	%ecx, %ecx
	cpuid
	mov	%ebx, %eax
	out	%eax, $0x40
	/* XCR0 = x87|SSE set by the guest (CR4.OSXSAVE first), for the host to read. */
	mov	%cr4, %eax
	or	$0x40000, %eax
	mov	%eax, %cr4
	xor	%ecx, %ecx
	xor	%edx, %edx
	mov	$3, %eax
	xsetbv
	out	%eax, $0x41
	mov	$0xd, %eax
	xor	%ecx, %ecx
	cpuid
	mov	%ebx, %eax
	out	%eax, $0x42
	hlt
GUEST_END(pm_vcpu_state)
