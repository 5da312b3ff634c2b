/* The control registers of 64-bit mode, for the guest setup of the tests (harness.c)
 * and of the benchmarks (bench/common.c), which share no other code. */
#ifndef LIBKVM_TEST_CONTROL_REGS64_H
#define LIBKVM_TEST_CONTROL_REGS64_H

#include <stdint.h>
#include <linux/kvm.h>

/* 4-level paging with its PML4 at `cr3`: CR4.PAE, CR0.PG|ET|PE, EFER.LME|LMA. */
static inline void long_mode_control(struct kvm_sregs *s, uint64_t cr3)
{
	s->cr3 = cr3;
	s->cr4 = 0x20;
	s->cr0 = 0x80000011;
	s->efer = 0x500;
}

#endif
