/* The demo guest: 16-bit real-mode code, loaded at 0x1000, that writes a greeting to a
 * 16550 UART's transmit register (port 0x3f8) one byte at a time and halts. */
	.pushsection .note.GNU-stack, "", @progbits
	.popsection
	.section .rodata.guest, "a"
	.globl hello_guest_start, hello_guest_end
	.code16
hello_guest_start:
	mov	$(msg - hello_guest_start + 0x1000), %si
	mov	$0x3f8, %dx
1:	lodsb
	test	%al, %al
	jz	2f
	out	%al, %dx
	jmp	1b
2:	hlt
msg:	.asciz	"Hello from a libkvm guest: real mode, port I/O, one vcpu on this thread.\n"
hello_guest_end:
