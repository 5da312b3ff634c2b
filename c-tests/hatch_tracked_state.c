/* The escape hatches refuse (EINVAL) every request that would change what libkvm tracks (split irqchip, x2APIC API, dirty ring, KVM_INTERRUPT, ...), and the VM keeps working as libkvm knows it. */
#define _GNU_SOURCE
#include "harness.h"
#include <signal.h>
#include <sys/ioctl.h>

static int vm_cap(int vm, uint32_t cap, uint64_t arg0)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg0 } };
	return kvm_vm_ioctl(vm, KVM_ENABLE_CAP, &c);
}

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	load_blob(vm, 0x1000, BLOB(rm_report));

	/* Capabilities whose effect libkvm must know: kvm_enable_cap() tracks them. */
	CHECK_ERR(vm_cap(vm, KVM_CAP_SPLIT_IRQCHIP, 24), EINVAL);
	CHECK_ERR(vm_cap(vm, KVM_CAP_X2APIC_API, KVM_X2APIC_API_USE_32BIT_IDS), EINVAL);
	/* The dirty ring would replace the dirty bitmap kvm_get_dirty_log() reads: refused
	 * through the hatch and by kvm_enable_cap() alike. */
	CHECK_ERR(vm_cap(vm, KVM_CAP_DIRTY_LOG_RING, 65536), EINVAL);
	CHECK_ERR(vm_cap(vm, KVM_CAP_DIRTY_LOG_RING_ACQ_REL, 65536), EINVAL);
	struct kvm_enable_cap ring = { .cap = KVM_CAP_DIRTY_LOG_RING, .args = { 65536 } };
	CHECK_ERR(kvm_enable_cap(vm, &ring), EINVAL);
	CHECK_ERR(kvm_vm_ioctl(vm, KVM_ENABLE_CAP, NULL), EFAULT);
	/* Other capabilities still pass through to the kernel, with its own answer. */
	CHECK_ERR(vm_cap(vm, 0x7fffffff, 0), EINVAL);
	if (kvm_check_extension(vm, KVM_CAP_EXCEPTION_PAYLOAD) > 0)
		OK(vm_cap(vm, KVM_CAP_EXCEPTION_PAYLOAD, 1));
	else
		printf("no KVM_CAP_EXCEPTION_PAYLOAD: a passed-through enable not tried\n");
	struct kvm_lapic_state lapic;
	int split = kvm_check_extension(vm, KVM_CAP_SPLIT_IRQCHIP) > 0;
	if (split) {
		/* Had the hatch enabled it, the kernel would now say EINVAL/EEXIST. */
		struct kvm_enable_cap c = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { 24 } };
		OK(kvm_enable_cap(vm, &c));
	} else {
		printf("no KVM_CAP_SPLIT_IRQCHIP: the snapshot is checked without local APIC\n");
	}

	OK(kvm_create_vcpu(vm, 0));
	/* vcpu hatch: KVM_RUN, the signal mask and KVM_INTERRUPT are libkvm's. */
	struct kvm_interrupt irq = { .irq = 0x30 };
	CHECK_ERR(kvm_vcpu_ioctl(KVM_INTERRUPT, &irq), EINVAL);
	CHECK_ERR(kvm_vcpu_ioctl(KVM_RUN, NULL), EINVAL);
	CHECK_ERR(kvm_vcpu_ioctl(KVM_SET_SIGNAL_MASK, NULL), EINVAL);
	CHECK_ERR(kvm_vcpu_ioctl((1UL << 32) | KVM_INTERRUPT, &irq), EINVAL);
	/* A request libkvm does not track still works. */
	struct kvm_mp_state mp;
	OK(kvm_vcpu_ioctl(KVM_GET_MP_STATE, &mp));
	setup_real_mode(0x1000);

	/* The snapshot follows libkvm's view, which is the kernel's: with the split
	 * irqchip enabled by kvm_enable_cap() the blob carries the local APIC, and it goes
	 * back in. */
	static char blob[1 << 16];
	size_t len = sizeof(blob);
	OK(kvm_save_vcpu(blob, &len));
	OK(kvm_restore_vcpu(blob, len));
	CHECK_EQ(kvm_get_lapic(&lapic) == 0, split);

	EDIT_REGS(r, r.rsi = 0x1234; r.rbx = 0x40);
	CHECK_EQ(run_until_out(0x10), 0x2468);
	CHECK_EQ(run_until_out(0x11), 0x41);
	end_vm(vm);
	printf("refused through the hatches: 4 enables, KVM_INTERRUPT, KVM_RUN, KVM_SET_SIGNAL_MASK; VM still works\n");
	return 0;
}
