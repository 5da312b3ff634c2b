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

#endif
