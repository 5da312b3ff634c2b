/* kvm_get_fpu/kvm_set_fpu: an SSE register set reads back, and a value the guest loads into XMM1 is what is read. */
#include "harness.h"
#include <pthread.h>

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	load_blob(vm, 0x1000, BLOB(rm_sse));
	static const uint8_t guest_value[16] = "guest's xmm1 ok";
	memcpy(kvm_guest_memory(vm, 0x3000, 16), guest_value, 16);
	OK(kvm_create_vcpu(vm, 0));
	setup_real_mode(0x1000);
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	s.cr4 |= 1 << 9;                 /* OSFXSR: SSE instructions allowed */
	s.cr0 &= ~(1ULL << 2);           /* EM off */
	OK(kvm_set_sregs(&s));

	/* Set and read back: XMM3, the x87 control and status words. (MXCSR is not
	 * checked: this host's KVM_GET_FPU reports it as 0 whatever it holds.) */
	struct kvm_fpu f;
	OK(kvm_get_fpu(&f));
	static const uint8_t host_value[16] = "host's xmm3 here";
	memcpy(f.xmm[3], host_value, 16);
	f.fcw = 0x27f;
	f.fsw = 0x100;
	OK(kvm_set_fpu(&f));
	struct kvm_fpu g;
	memset(&g, 0xff, sizeof(g));
	OK(kvm_get_fpu(&g));
	CHECK(memcmp(g.xmm[3], host_value, 16) == 0);
	CHECK_EQ(g.fcw, 0x27f);
	CHECK_EQ(g.fsw, 0x100);

	/* The guest's movdqu into XMM1 is what kvm_get_fpu() reads. (Other XMM registers
	 * are not checked after the guest ran: this host's instruction emulator does not
	 * keep the values KVM_SET_FPU gave them.) */
	run_until_out(0x10);
	OK(kvm_get_fpu(&g));
	CHECK(memcmp(g.xmm[1], guest_value, 16) == 0);
	run_expect(KVM_EXIT_HLT);

	/* Bad input. */
	CHECK_ERR(kvm_get_fpu(NULL), EFAULT);
	CHECK_ERR(kvm_set_fpu(NULL), EFAULT);
	/* ESRCH on a thread without a vcpu: bad_input_matrix.c's VCPU_CALLS. */

	end_vm(vm);
	return 0;
}
