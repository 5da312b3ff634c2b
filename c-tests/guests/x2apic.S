/* Guest for the x2APIC kvm_interrupt test. */
#include "guest.h"

/* Real mode, loaded at 0x1000, in-kernel irqchip. The guest puts its local APIC in
 * x2APIC mode (IA32_APIC_BASE EN|EXTD), enables it in the spurious-interrupt vector
 * register (MSR 0x80f) and waits with interrupts on. The host points IVT entry 0x40 at
 * the handler, which counts interrupts in the byte at 0x500, reports the vector on port
 * 0x30 and signals EOI (MSR 0x80b). */
	.code16
GUEST_BEGIN(rm_x2apic)
	X2APIC_ENABLE
	sti
	nop
	out	%al, $0x10		/* host: kvm_interrupt(0x40) */
	WAIT_HANDLED(1)
	out	%al, $0x11
1:	jmp	1b
	.globl	rm_x2apic_h40
rm_x2apic_h40:
	incb	0x500
	mov	$0x40, %al
	out	%al, $0x30
	X2APIC_EOI
	iret
GUEST_END(rm_x2apic)
