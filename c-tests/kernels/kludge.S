/* A multiboot kernel that is not ELF: a flat image linked at 2 MiB whose header sets
 * flag 16 and gives the load, bss and entry addresses. It checks that it runs where it
 * was linked, that EAX holds the magic and that its bss is zero, prints a line, and
 * exits through isa-debug-exit with 0x21 (kvmrun status 67), or 0x22 on a mismatch. */
	.text
	.code32
	.globl	image_start
image_start:
header:
	.long	0x1badb002
	.long	0x00010003
	.long	-(0x1badb002 + 0x00010003)
	.long	header				/* header_addr */
	.long	image_start			/* load_addr */
	.long	image_end			/* load_end_addr */
	.long	bss_end				/* bss_end_addr */
	.long	entry				/* entry_addr */

	.globl	entry
entry:
	mov	$0x22, %edi			/* failure unless all checks pass */
	cmp	$0x2badb002, %eax
	jne	out
	mov	$0x23, %edi
	mov	$bss_start, %ecx		/* the bss was zeroed */
2:	cmpl	$0, (%ecx)
	jne	out
	add	$4, %ecx
	cmp	$bss_end, %ecx
	jb	2b
	mov	$0x24, %edi
	mov	$bss_end, %esp			/* multiboot leaves ESP undefined */
	call	1f
1:	pop	%ecx
	cmp	$1b, %ecx			/* running at the linked address */
	jne	out
	mov	$msg, %esi
	mov	$0x3f8, %dx
3:	lodsb
	test	%al, %al
	jz	4f
	out	%al, %dx
	jmp	3b
4:	mov	$0x21, %edi
out:	mov	%edi, %eax
	mov	$0xf4, %dx
	out	%eax, %dx
5:	cli
	hlt
	jmp	5b
msg:	.asciz	"kludge: flat image loaded at its header's addresses\n"
	.align	4
image_end:
	.set	bss_start, image_end
	.set	bss_end, image_end + 8192

	.section .note.GNU-stack, "", @progbits
