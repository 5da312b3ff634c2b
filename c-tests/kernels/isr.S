/* One stub per vector: push the vector, save the registers, call isr_common_c(vector)
 * and return. (No vector here is an exception with an error code in the tests.) */
	.text
	.altmacro
	.macro stub n
isr_\n:
	push	$\n
	jmp	isr_common
	.endm
	.macro entry n
	.long	isr_\n
	.endm

	.set	i, 0
	.rept	256
	stub	%i
	.set	i, i + 1
	.endr

isr_common:
	pusha
	mov	32(%esp), %eax
	push	%eax
	call	isr_common_c
	add	$4, %esp
	popa
	add	$4, %esp
	/* Return without IRET: KVM's instruction emulator, which runs all guest kernel code
	 * on some hosts, implements IRET only in real mode. Same privilege level, so the
	 * frame is EIP, CS, EFLAGS: restore EFLAGS, then a far return that drops it. */
	pushl	8(%esp)
	popfl
	lret	$4

	.section .rodata
	.globl	isr_table
	.align	4
isr_table:
	.set	i, 0
	.rept	256
	entry	%i
	.set	i, i + 1
	.endr

	.section .note.GNU-stack, "", @progbits
