/* Real-mode guest for the snapshot test, loaded at 0x1000, data at 0x500 (DS = 0).
 *
 * SNAP_STEPS steps: each runs SNAP_WORK iterations of a 32-bit LCG on `result`, arms the
 * x2APIC TSC-deadline timer DELTA cycles ahead, reports the step number on port 0x31,
 * XORs into `result` a value it reads from port 0x32, and
 * waits (CLI; check; STI; HLT) until the timer interrupt (vector 0x40) has been handled
 * once more. The handler counts `ticks`, folds the count into `mix` and sends EOI. At
 * the end the guest reports result (port 0x3e), mix (0x3d) and ticks (0x3f), then spins
 * with interrupts off. A lost interrupt hangs the guest; a duplicated one changes ticks
 * and mix; a replayed or skipped step changes result and the step sequence. */
#include "guest.h"
	.code16

#define TICKS	0x500
#define STEP	0x504
#define RESULT	0x508
#define MIX	0x50c
#define SNAP_STEPS	40
#define SNAP_WORK	150
#define DELTA	1000000

GUEST_BEGIN(rm_snapshot)
	cli
	mov	$0x1b, %ecx		/* IA32_APIC_BASE: enable, x2APIC */
	rdmsr
	or	$0xc00, %eax
	wrmsr
	mov	$0x80f, %ecx		/* SVR: software-enable, spurious vector 0xff */
	mov	$0x1ff, %eax
	xor	%edx, %edx
	wrmsr
	mov	$0x832, %ecx		/* LVT timer: TSC-deadline mode, vector 0x40 */
	mov	$0x40040, %eax
	wrmsr
	movl	$0, TICKS
	movl	$0, STEP
	movl	$0x2545f491, RESULT
	movl	$1, MIX
step:
	mov	$SNAP_WORK, %cx
1:	movl	RESULT, %eax
	imull	$1103515245, %eax, %eax
	addl	$12345, %eax
	movl	%eax, RESULT
	loop	1b
	rdtsc				/* IA32_TSC_DEADLINE = TSC + DELTA */
	addl	$DELTA, %eax
	adcl	$0, %edx
	mov	$0x6e0, %ecx
	wrmsr
	movl	STEP, %eax
	out	%eax, $0x31
	in	$0x32, %eax		/* a value from the host, folded into result */
	xorl	%eax, RESULT
2:	cli
	movl	TICKS, %eax
	cmpl	STEP, %eax
	ja	3f
	sti
	hlt
	jmp	2b
3:	incl	STEP
	cmpl	$SNAP_STEPS, STEP
	jb	step
	movl	RESULT, %eax
	out	%eax, $0x3e
	movl	MIX, %eax
	out	%eax, $0x3d
	movl	TICKS, %eax
	out	%eax, $0x3f
4:	jmp	4b

	.globl snap_handler
snap_handler:
	pushl	%eax
	pushl	%ecx
	pushl	%edx
	incl	TICKS
	movl	MIX, %eax
	imull	$31, %eax, %eax
	addl	TICKS, %eax
	movl	%eax, MIX
	mov	$0x80b, %ecx		/* x2APIC EOI */
	xor	%eax, %eax
	xor	%edx, %edx
	wrmsr
	popl	%edx
	popl	%ecx
	popl	%eax
	iret
GUEST_END(rm_snapshot)

/* Real-mode guest at 0x1000 for an interrupt held by kvm_interrupt (no in-kernel
 * irqchip): reports on port 0x30 with interrupts off, then enables them and waits for
 * the handler at held_handler, which reports its vector 0x50 on port 0x31 and sets the
 * byte at 0x500; then reports on port 0x32. (An interrupt window opens only while the
 * guest runs without exits, so it waits in a loop.) */
GUEST_BEGIN(rm_held_irq)
	cli
	movb	$0, 0x500
	out	%al, $0x30
	sti
	WAIT_HANDLED(1)
	out	%al, $0x32
2:	jmp	2b
	.globl held_handler
held_handler:
	mov	$0x50, %al
	out	%al, $0x31
	movb	$1, 0x500
	iret
GUEST_END(rm_held_irq)
