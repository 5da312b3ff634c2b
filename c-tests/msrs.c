/* kvm_get_msrs/kvm_set_msrs and kvm_get_msr_index_list: what the guest's wrmsr wrote is read, and what is set is what its rdmsr returns. */
#include "harness.h"
#include <pthread.h>

#define SYSENTER_CS 0x174
#define SYSENTER_EIP 0x176
#define STAR 0xc0000081
#define KERNEL_GS_BASE 0xc0000102

/* A struct kvm_msrs with room for `n` entries. */
static struct kvm_msrs *msrs(unsigned n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	CHECK(m != NULL);
	m->nmsrs = n;
	return m;
}

int main(void)
{
	require_kvm();

	/* The index list: E2BIG with the count needed, then the list itself. */
	struct kvm_msr_list *list = read_msr_list(kvm_get_msr_index_list);
	unsigned n = list->nmsrs;
	CHECK(n > 4);
	int found = 0;
	for (unsigned i = 0; i < n; i++)
		found += list->indices[i] == SYSENTER_CS || list->indices[i] == KERNEL_GS_BASE ||
			 list->indices[i] == STAR;
	CHECK_EQ(found, 3);
	CHECK_ERR(kvm_get_msr_index_list(NULL), EFAULT);

	int vm = vm_with_memory(0x10000);
	real_mode_vcpu(vm, 0, 0x1000, BLOB(rm_msrs));

	/* Set two MSRs for the guest to read. */
	struct kvm_msrs *m = msrs(2);
	m->entries[0].index = SYSENTER_EIP;
	m->entries[0].data = 0x8badf00d;
	m->entries[1].index = STAR;
	m->entries[1].data = 0x0023001000000000ULL;
	CHECK_EQ(kvm_set_msrs(m), 2);
	/* They read back at once. */
	m->entries[0].data = m->entries[1].data = 0;
	CHECK_EQ(kvm_get_msrs(m), 2);
	CHECK_EQ(m->entries[0].data, 0x8badf00d);
	CHECK_EQ(m->entries[1].data, 0x0023001000000000ULL);

	/* What the guest wrote with wrmsr. */
	run_until_out(0x0f);
	m->entries[0].index = SYSENTER_CS;
	m->entries[1].index = KERNEL_GS_BASE;
	CHECK_EQ(kvm_get_msrs(m), 2);
	CHECK_EQ(m->entries[0].data, 0x10);
	CHECK_EQ(m->entries[1].data, 0xffff800012345678ULL);

	/* What the guest reads with rdmsr. */
	CHECK_EQ(run_until_out(0x10), 0x8badf00d);
	CHECK_EQ(run_until_out(0x11), 0);
	CHECK_EQ(run_until_out(0x12), 0);
	CHECK_EQ(run_until_out(0x13), 0x00230010);
	run_expect(KVM_EXIT_HLT);

	/* An MSR KVM does not know stops the list: the count says how far it got. */
	struct kvm_msrs *m3 = msrs(3);
	m3->entries[0].index = SYSENTER_CS;
	m3->entries[1].index = 0x4b564dff;            /* not an MSR */
	m3->entries[2].index = SYSENTER_EIP;
	CHECK_EQ(kvm_get_msrs(m3), 1);
	CHECK_EQ(m3->entries[0].data, 0x10);
	m3->entries[0].data = 0x18;
	CHECK_EQ(kvm_set_msrs(m3), 1);
	m3->nmsrs = 1;
	m3->entries[0].data = 0;
	CHECK_EQ(kvm_get_msrs(m3), 1);
	CHECK_EQ(m3->entries[0].data, 0x18);
	/* A refused value stops it too: an address in KERNEL_GS_BASE that is non-canonical
	 * at every width a host can have. KVM checks host-written bases against the widest
	 * width the host supports (57 bits with LA57, else 48), so 0x0000800000000000 is
	 * accepted on an LA57 host; bit 56 set with bits 63:57 clear is refused by both. */
	m->entries[0].index = SYSENTER_CS;
	m->entries[0].data = 0x20;
	m->entries[1].index = KERNEL_GS_BASE;
	m->entries[1].data = 0x0100000000000000ULL;
	CHECK_EQ(kvm_set_msrs(m), 1);
	/* No entries: nothing to do. */
	m->nmsrs = 0;
	CHECK_EQ(kvm_get_msrs(m), 0);
	CHECK_EQ(kvm_set_msrs(m), 0);

	/* Bad input. */
	CHECK_ERR(kvm_get_msrs(NULL), EFAULT);
	CHECK_ERR(kvm_set_msrs(NULL), EFAULT);
	struct kvm_msrs *big = msrs(300);
	for (unsigned i = 0; i < 300; i++)
		big->entries[i].index = SYSENTER_CS;
	CHECK_ERR(kvm_get_msrs(big), E2BIG);
	CHECK_ERR(kvm_set_msrs(big), E2BIG);
	/* ESRCH on a thread without a vcpu: bad_input_matrix.c's VCPU_CALLS. */

	free(big);
	free(m3);
	free(m);
	free(list);
	end_vm(vm);
	return 0;
}
