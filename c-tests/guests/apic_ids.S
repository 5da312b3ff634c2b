/* Real-mode guests for interrupt_apic_ids.c, loaded at 0x1000, run by several vcpus at
 * once (each with its own stack), in-kernel irqchip. Each enables its local APIC,
 * reports its APIC ID on port 0x10 and halts with interrupts on; the handlers (IVT
 * entries 0x41, 0x52, 0x63, 0x74, 0x85: one priority class each) report their vector
 * on port 0x30, signal EOI and return to the halt.
 *   rm_apic_ids_x:  xAPIC (MMIO at 0xfee00000; the host gives DS a 4 GiB limit), the
 *                   ID from bits 31:24 of the ID register;
 *   rm_apic_ids_x2: x2APIC (IA32_APIC_BASE EN|EXTD), the 32-bit ID from MSR 0x802. */
#include "guest.h"
	.code16

#define XHANDLER(v) \
	.globl ax_h##v; \
ax_h##v: \
	push	%ax; \
	mov	$0x##v, %al; \
	out	%al, $0x30; \
	addr32 movl $0, 0xfee000b0; \
	pop	%ax; \
	iret

#define X2HANDLER(v) \
	.globl ax2_h##v; \
ax2_h##v: \
	push	%eax; \
	push	%ecx; \
	push	%edx; \
	mov	$0x##v, %al; \
	out	%al, $0x30; \
	X2APIC_EOI; \
	pop	%edx; \
	pop	%ecx; \
	pop	%eax; \
	iret

GUEST_BEGIN(rm_apic_ids_x)
	cli
	addr32 movl $0x1ff, 0xfee000f0
	addr32 movl 0xfee00020, %eax
	shr	$24, %eax
	out	%eax, $0x10
	sti
1:	hlt
	jmp	1b
	XHANDLER(41)
	XHANDLER(52)
	XHANDLER(63)
	XHANDLER(74)
	XHANDLER(85)
GUEST_END(rm_apic_ids_x)

GUEST_BEGIN(rm_apic_ids_x2)
	cli
	X2APIC_ENABLE
	mov	$0x802, %ecx
	rdmsr
	out	%eax, $0x10
	sti
1:	hlt
	jmp	1b
	X2HANDLER(41)
	X2HANDLER(52)
	X2HANDLER(63)
	X2HANDLER(74)
	X2HANDLER(85)
GUEST_END(rm_apic_ids_x2)
