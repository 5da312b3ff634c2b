/* Real-mode guests for the field-by-field restore tests (snapshot_vcpu_fields.c,
 * snapshot_vm_fields.c), loaded at 0x1000. The host gives DS a 4 GiB limit ("unreal"
 * mode) so that the guests reach the local APIC at 0xfee00000 and the IOAPIC at
 * 0xfec00000. Each value a guest observes is reported with an `out` to its own port. */
#include "guest.h"
	.code16

/* The vcpu guest. Before the save it enables its local APIC (SVR 0x1ff), sets TPR 0x10
 * and loads XMM5 from 0x3000, then reports on port 0x10; the host sets everything else
 * and saves. After the restore (and in the source's own run, which goes on) it first
 * takes the NMI the host left pending (handler: port 0xe1), then reports the registers
 * the host set (0xb0-0xba), its debug registers (0x30-0x33), stores XMM3, XMM5 and its
 * x87 control word at 0x3100/0x3110/0x3120 (port 0x34), reads MSRs (0xc0-0xc7), CPUID
 * (0x50-0x54) and its local APIC (0xd0-0xd4), runs into the DR0 breakpoint at
 * vf_breakpoint (handler: DR6 on port 0xe2, then DR7 cleared), takes the host's
 * interrupt 0x80 (port 0xd6; handler: vector on port 0xe0, byte at 0x3130 set), and
 * halts with interrupts on after port 0xd7; the handler of the interrupt that ends the
 * halt reports its vector; then 0xd8, then 0x3f forever. (Report ports avoid those of
 * the in-kernel PIC, PIT and speaker: 0x20, 0x21, 0x40-0x43, 0x61, 0xa0, 0xa1.) IDTR (the IVT) is the host's:
 * the handlers are vf_nmi, vf_db, vf_h80 and vf_h81. */
GUEST_BEGIN(rm_vcpu_fields)
	cli
	addr32 movl $0x1ff, 0xfee000f0
	addr32 movl $0x10, 0xfee00080
	movdqu	0x3000, %xmm5
	out	%al, $0x10
	out	%eax, $0xb0
	mov	%ebx, %eax
	out	%eax, $0xb1
	mov	%ecx, %eax
	out	%eax, $0xb2
	mov	%edx, %eax
	out	%eax, $0xb3
	mov	%esi, %eax
	out	%eax, $0xb4
	mov	%edi, %eax
	out	%eax, $0xb5
	mov	%ebp, %eax
	out	%eax, $0xb6
	mov	%esp, %eax
	out	%eax, $0xb7
	pushfl
	popl	%eax
	out	%eax, $0xb8
	movl	%fs:0, %eax
	out	%eax, $0xb9
	mov	%cr2, %eax
	out	%eax, $0xba
	mov	%dr1, %eax
	out	%eax, $0x30
	mov	%dr2, %eax
	out	%eax, $0x31
	mov	%dr3, %eax
	out	%eax, $0x32
	mov	%dr7, %eax
	out	%eax, $0x33
	movdqu	%xmm3, 0x3100
	movdqu	%xmm5, 0x3110
	fnstcw	0x3120
	out	%al, $0x34
	mov	$0x175, %ecx		/* IA32_SYSENTER_ESP */
	rdmsr
	out	%eax, $0xc0
	mov	$0xc0000081, %ecx	/* STAR */
	rdmsr
	out	%eax, $0xc1
	mov	%edx, %eax
	out	%eax, $0xc2
	mov	$0xc0000102, %ecx	/* KERNEL_GS_BASE */
	rdmsr
	out	%eax, $0xc3
	mov	%edx, %eax
	out	%eax, $0xc4
	mov	$0x277, %ecx		/* PAT */
	rdmsr
	out	%eax, $0xc5
	mov	%edx, %eax
	out	%eax, $0xc6
	rdtsc
	mov	%edx, %eax
	out	%eax, $0xc7
	mov	$0x80000002, %eax	/* brand string, first leaf */
	cpuid
	out	%eax, $0x50
	mov	%ebx, %eax
	out	%eax, $0x51
	mov	%ecx, %eax
	out	%eax, $0x52
	mov	%edx, %eax
	out	%eax, $0x53
	mov	$0xd, %eax		/* XSAVE size for the XCR0 in force */
	xor	%ecx, %ecx
	cpuid
	mov	%ebx, %eax
	out	%eax, $0x54
	addr32 movl 0xfee00080, %eax	/* TPR */
	out	%eax, $0xd0
	addr32 movl 0xfee000d0, %eax	/* LDR */
	out	%eax, $0xd1
	addr32 movl 0xfee000f0, %eax	/* SVR */
	out	%eax, $0xd2
	addr32 movl 0xfee00320, %eax	/* LVT timer */
	out	%eax, $0xd3
	addr32 movl 0xfee003e0, %eax	/* timer divide configuration */
	out	%eax, $0xd4
	.globl	vf_breakpoint
vf_breakpoint:
	nop
	out	%al, $0xd5
	movb	$0, 0x3130
	sti
	out	%al, $0xd6
1:	cmpb	$1, 0x3130
	jb	1b
	out	%al, $0xd7
	hlt
	out	%al, $0xd8
	cli
2:	out	%al, $0x3f
	jmp	2b

	.globl	vf_nmi, vf_db, vf_h80, vf_h81
vf_nmi:
	push	%ax
	mov	$2, %al
	out	%al, $0xe1
	pop	%ax
	iret
vf_db:
	push	%eax
	mov	%dr6, %eax
	out	%eax, $0xe2
	xor	%eax, %eax
	mov	%eax, %dr7
	pop	%eax
	iret
vf_h80:
	push	%ax
	mov	$0x80, %al
	jmp	3f
vf_h81:
	push	%ax
	mov	$0x81, %al
3:	out	%al, $0xe0
	movb	$1, 0x3130
	addr32 movl $0, 0xfee000b0	/* EOI */
	pop	%ax
	iret
GUEST_END(rm_vcpu_fields)

/* The VM guest, IVT at 0. Before the save it enables its local APIC (SVR 0x1ff) and
 * kvmclock (MSR_KVM_SYSTEM_TIME_NEW, pvclock structure at 0x3000), programs PIT
 * channel 0 (mode 2, count 0x1234), and reports on port 0x10. After the restore it
 * reports the master and slave PIC IMRs (0xb0, 0xb1) and the ELCR (0xb2, 0xb3), PIT
 * channel 0's status from a read-back command (0xb4) and port 0x61 (0xb5: bit 0 is PIT
 * channel 2's gate), the IOAPIC's ID register (0xb6) and the pvclock system_time (0xb7
 * low, 0xb8 high half); then with interrupts on reports on port 0x30 and 0x31, where
 * the host raises an interrupt each, and waits for each handler (vm_h61 for the IOAPIC
 * route, vm_h6b for the PIC's IRQ 3), which reports its vector on port 0xe0; then 0x3f
 * forever. */
GUEST_BEGIN(rm_vm_fields)
	cli
	addr32 movl $0x1ff, 0xfee000f0
	mov	$0x4b564d01, %ecx
	mov	$0x3001, %eax
	xor	%edx, %edx
	wrmsr
	PIT_CH0_MODE2_1234
	out	%al, $0x10
	in	$0x21, %al
	out	%al, $0xb0
	in	$0xa1, %al
	out	%al, $0xb1
	mov	$0x4d0, %dx
	in	%dx, %al
	out	%al, $0xb2
	inc	%dx
	in	%dx, %al
	out	%al, $0xb3
	mov	$0xe2, %al		/* read-back: status only, channel 0 */
	out	%al, $0x43
	in	$0x40, %al
	out	%al, $0xb4
	in	$0x61, %al
	out	%al, $0xb5
	addr32 movl $0, 0xfec00000	/* IOREGSEL: IOAPIC ID */
	addr32 movl 0xfec00010, %eax
	out	%eax, $0xb6
	movl	0x3010, %eax
	out	%eax, $0xb7
	movl	0x3014, %eax
	out	%eax, $0xb8
	movb	$0, 0x3100
	sti
	out	%al, $0x30
1:	cmpb	$1, 0x3100
	jb	1b
	out	%al, $0x31
1:	cmpb	$2, 0x3100
	jb	1b
	cli
2:	out	%al, $0x3f
	jmp	2b
	.globl	vm_h61, vm_h6b
vm_h61:
	push	%ax
	mov	$0x61, %al
	out	%al, $0xe0
	incb	0x3100
	addr32 movl $0, 0xfee000b0	/* EOI to the local APIC */
	pop	%ax
	iret
vm_h6b:
	push	%ax
	mov	$0x6b, %al
	out	%al, $0xe0
	incb	0x3100
	mov	$0x20, %al		/* non-specific EOI to the master PIC */
	out	%al, $0x20
	pop	%ax
	iret
GUEST_END(rm_vm_fields)
