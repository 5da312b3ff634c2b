/* Guests of the benchmarks. Real-mode guests are loaded at 0x1000, the protected-mode
 * one at 0x1000 too (flat segments, no paging). Every loop ends each pass with an `out`
 * to port 0x10, so one pass is one exit. */
#include "guest.h"
	.code16

/* The plain exit loop. */
GUEST_BEGIN(bench_out)
1:	out	%al, $0x10
	jmp	1b
GUEST_END(bench_out)

/* Register traffic: EAX counts the exits, EDX echoes the EBX the host wrote at the
 * previous exit. */
GUEST_BEGIN(bench_echo)
1:	inc	%eax
	mov	%ebx, %edx
	out	%al, $0x10
	jmp	1b
GUEST_END(bench_echo)

/* Runs without exiting until kicked. */
GUEST_BEGIN(bench_spin)
1:	jmp	1b
GUEST_END(bench_spin)

	.code32
/* Writes one byte to every tenth 4 KiB page of the first GiB (26215 pages, 10%), then
 * exits; and again on the next run. */
GUEST_BEGIN(bench_dirty)
1:	xor	%edi, %edi
2:	movb	%al, (%edi)
	add	$0xa000, %edi
	cmp	$0x40000000, %edi
	jb	2b
	out	%al, $0x10
	jmp	1b
GUEST_END(bench_dirty)

	.code32
/* Writes one byte to every ESI-th byte of the first GiB from 0 (ESI a multiple of 4096:
 * one page in ESI / 4096), then exits; and again on the next run. */
GUEST_BEGIN(bench_dirty_stride)
1:	xor	%edi, %edi
2:	movb	%al, (%edi)
	add	%esi, %edi
	cmp	$0x40000000, %edi
	jb	2b
	out	%al, $0x10
	jmp	1b
GUEST_END(bench_dirty_stride)
	.code64
/* 64-bit ring 3 (lib_setup_user_long_mode, at 0x4000): runs without exiting until
 * kicked, at native speed. */
GUEST_BEGIN(bench_spin64)
1:	jmp	1b
GUEST_END(bench_spin64)

	.code16
/* Halts with interrupts off: on the in-kernel irqchip the vcpu blocks inside KVM_RUN
 * until kicked, and halts again when run again. */
GUEST_BEGIN(bench_halt)
1:	cli
	hlt
	jmp	1b
GUEST_END(bench_halt)
/* A restored guest's first steps, in 64-bit ring 3 (which kvm_pvm runs natively):
 * touches (increments a byte of) every 100th 4 KiB page of the first 512 MiB, 1311
 * pages (1 %), then exits; and again on the next run. */
	.code64
GUEST_BEGIN(bench_restore)
1:	xor	%edi, %edi
2:	incb	(%rdi)
	add	$0x64000, %edi
	cmp	$0x20000000, %edi
	jb	2b
	out	%al, $0x10
	jmp	1b
GUEST_END(bench_restore)
