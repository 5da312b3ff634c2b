/* The demo kernel's assembly: the multiboot header; the boot vcpu's entry, which calls
 * kmain(magic, info) and writes its result to isa-debug-exit (port 0xf4); and the code
 * the other vcpus start in after INIT/SIPI (copied below 1 MiB by kmain): real mode,
 * then flat 32-bit protected mode, then ap_main(apic_id) on a stack of its own. */
	.section .multiboot, "a"
	.align 4
	.long	0x1badb002			/* magic */
	.long	0x00000003			/* page-aligned modules, memory info */
	.long	-(0x1badb002 + 0x00000003)	/* checksum */

	.text
	.globl	_start
_start:
	mov	$stack_top, %esp
	push	%ebx				/* multiboot information */
	push	%eax				/* 0x2badb002 */
	call	kmain
	mov	$0xf4, %dx
	out	%eax, %dx			/* the process exits with (eax << 1) | 1 */
1:	cli
	hlt
	jmp	1b

	.globl	ap_start, ap_start_end, ap_gdt_ptr
	.code16
ap_start:					/* CS = the SIPI page, IP = 0 */
	cli
	lgdtl	%cs:(ap_gdt_ptr - ap_start)
	mov	%cr0, %eax
	or	$1, %eax			/* protected mode, paging stays off */
	mov	%eax, %cr0
	ljmpl	$0x08, $ap_32
	.align	8
ap_gdt:
	.quad	0
	.quad	0x00cf9a000000ffff		/* 0x08: flat 32-bit code */
	.quad	0x00cf92000000ffff		/* 0x10: flat data */
ap_gdt_ptr:
	.word	ap_gdt_ptr - ap_gdt - 1
	.long	ap_gdt - ap_start		/* kmain adds where it copied this */
ap_start_end:

	.code32
ap_32:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	%ax, %fs
	mov	%ax, %gs
	mov	0xfee00020, %eax		/* local APIC ID register */
	shr	$24, %eax
	mov	%eax, %ebx
	inc	%eax
	shl	$12, %eax			/* a 4 KiB stack per APIC ID */
	add	$ap_stacks, %eax
	mov	%eax, %esp
	push	%ebx
	call	ap_main
2:	cli
	hlt
	jmp	2b

	.bss
	.align	16
	.space	8192
stack_top:
	.globl	ap_stacks
	.align	4096
ap_stacks:
	.space	4096 * 64

	.section .note.GNU-stack, "", @progbits
