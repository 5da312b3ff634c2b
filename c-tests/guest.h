/* Macros for guest code in c-tests/guests/*.S. Each guest is a blob of position-
 * dependent code copied into guest memory at a load address the test chooses; the blob
 * lives in its own section of the test binary between NAME_start and NAME_end.
 *   GUEST_BEGIN(name) ... GUEST_END(name)
 *   GADDR(name, label, load): the guest address of `label` when loaded at `load`. */
#ifndef LIBKVM_TEST_GUEST_H
#define LIBKVM_TEST_GUEST_H

/* Guest code runs in the guest, not the host: the host stack stays non-executable. */
.pushsection .note.GNU-stack, "", @progbits
.popsection

#define GUEST_BEGIN(name) \
	.section .rodata.guest.name, "a"; \
	.globl name##_start; .globl name##_end; \
	name##_start:

#define GUEST_END(name) \
	name##_end: \
	.previous

#define GADDR(name, label, load) ((label) - name##_start + (load))

/* Steps several guests share. */
/* Local APIC into x2APIC mode (IA32_APIC_BASE |= EN|EXTD), enabled in its spurious-
 * interrupt vector register (MSR 0x80f = 0x1ff). Clobbers EAX, ECX, EDX. */
#define X2APIC_ENABLE \
	mov	$0x1b, %ecx; rdmsr; or $0xc00, %eax; wrmsr; \
	mov	$0x80f, %ecx; mov $0x1ff, %eax; xor %edx, %edx; wrmsr
/* End of interrupt through the x2APIC's EOI MSR 0x80b. Clobbers EAX, ECX, EDX. */
#define X2APIC_EOI \
	mov	$0x80b, %ecx; xor %eax, %eax; xor %edx, %edx; wrmsr
/* Waits until the handlers have counted N interrupts in the byte at 0x500. */
#define WAIT_HANDLED(n) \
	1: cmpb $(n), 0x500; jb 1b
/* PIT channel 0: lo/hi byte, mode 2 (rate generator), binary, count 0x1234. */
#define PIT_CH0_MODE2_1234 \
	mov	$0x34, %al; out %al, $0x43; \
	mov	$0x34, %al; out %al, $0x40; \
	mov	$0x12, %al; out %al, $0x40

#endif
