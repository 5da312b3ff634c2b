/* Test kernels' entry: the multiboot header, the boot vcpu's entry (stack, then
 * kmain(magic, info); its return value goes to isa-debug-exit), and the AP start-up
 * code that kernels copy to a page below 1 MiB and start with INIT/SIPI: real mode ->
 * flat protected mode -> ap_main(apic_id) on a stack of its own. */
	.section .multiboot, "a"
	.align 4
	.long 0x1badb002
	.long 0x00000003			/* page-aligned modules, memory info */
	.long -(0x1badb002 + 0x00000003)

	.text
	.globl _start
_start:
	/* what the loader handed over, for the tests; then a GDT of our own */
	sgdt	boot_gdtr
	mov	%cr0, %ecx
	mov	%ecx, boot_cr0
	pushf
	pop	%ecx
	mov	%ecx, boot_eflags
	lgdt	kernel_gdt_ptr
	ljmp	$0x08, $1f
1:	mov	$0x10, %cx
	mov	%cx, %ds
	mov	%cx, %es
	mov	%cx, %fs
	mov	%cx, %gs
	mov	%cx, %ss
	mov	$boot_stack_top, %esp
	push	%ebx
	push	%eax
	call	kmain
	mov	$0xf4, %dx
	out	%eax, %dx
3:	cli
	hlt
	jmp	3b

	.data
	.align 8
kernel_gdt:
	.quad	0
	.quad	0x00cf9a000000ffff
	.quad	0x00cf92000000ffff
kernel_gdt_ptr:
	.word	kernel_gdt_ptr - kernel_gdt - 1
	.long	kernel_gdt
	.globl	boot_gdtr, boot_cr0, boot_eflags
	.align 4
boot_gdtr:
	.space	6
	.align 4
boot_cr0:
	.long	0
boot_eflags:
	.long	0
	.text

/* ap_trampoline .. ap_trampoline_end is copied to a page-aligned address below 1 MiB
 * (the SIPI vector's page); it starts in real mode with CS = that page. */
	.globl ap_trampoline, ap_trampoline_end
	.code16
ap_trampoline:
	cli
	lgdtl	%cs:(ap_gdt_ptr - ap_trampoline)
	mov	%cr0, %eax
	or	$1, %eax
	mov	%eax, %cr0
	ljmpl	$0x08, $ap_entry32
	.align 8
ap_gdt:
	.quad	0
	.quad	0x00cf9a000000ffff		/* 0x08: flat code */
	.quad	0x00cf92000000ffff		/* 0x10: flat data */
ap_gdt_ptr:
	.word	ap_gdt_ptr - ap_gdt - 1
	.long	0				/* filled in by start_aps() */
ap_trampoline_end:
	.globl ap_gdt_offset
	.set	ap_gdt_offset, ap_gdt - ap_trampoline
	.globl ap_gdt_ptr_offset
	.set	ap_gdt_ptr_offset, ap_gdt_ptr - ap_trampoline

	.code32
ap_entry32:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	%ax, %fs
	mov	%ax, %gs
	/* this AP's stack: 4 KiB out of ap_stacks, by APIC ID */
	mov	$0xfee00020, %eax
	mov	(%eax), %eax
	shr	$24, %eax
	mov	%eax, %ebx
	inc	%eax
	shl	$12, %eax
	add	$ap_stacks, %eax
	mov	%eax, %esp
	push	%ebx
	call	ap_main
2:	cli
	hlt
	jmp	2b

	.bss
	.align 16
	.space 16384
boot_stack_top:
	.globl ap_stacks
	.align 4096
ap_stacks:
	.space 4096 * 16

	.section .note.GNU-stack, "", @progbits
