/* kvm_get_supported_cpuid and kvm_set_cpuid: a leaf the host sets is what the guest's CPUID returns. */
#include "harness.h"
#include <pthread.h>

static uint32_t sig(const char *s)
{
	uint32_t v;
	memcpy(&v, s, 4);
	return v;
}

static void *no_vcpu(void *arg)
{
	CHECK_ERR(kvm_set_cpuid(arg), ESRCH);
	return NULL;
}

int main(void)
{
	require_kvm();

	/* Too small: E2BIG with the count needed, also for no room at all. */
	struct kvm_cpuid2 *c = cpuid_alloc(1);
	CHECK_ERR(kvm_get_supported_cpuid(c), E2BIG);
	unsigned n = c->nent;
	CHECK(n > 1);
	c->nent = 0;
	CHECK_ERR(kvm_get_supported_cpuid(c), E2BIG);
	CHECK_EQ(c->nent, n);
	free(c);
	c = cpuid_alloc(n - 1);
	CHECK_ERR(kvm_get_supported_cpuid(c), E2BIG);
	CHECK_EQ(c->nent, n);
	free(c);
	/* Exactly enough, and more than enough. */
	c = cpuid_alloc(n);
	OK(kvm_get_supported_cpuid(c));
	CHECK_EQ(c->nent, n);
	free(c);
	c = cpuid_alloc(n + 5);
	OK(kvm_get_supported_cpuid(c));
	CHECK_EQ(c->nent, n);
	int has_leaf0 = 0;
	for (unsigned i = 0; i < n; i++)
		has_leaf0 |= c->entries[i].function == 0;
	CHECK(has_leaf0);
	CHECK_ERR(kvm_get_supported_cpuid(NULL), EFAULT);

	/* The hypervisor leaf 0x40000000 with a signature of our own. */
	struct kvm_cpuid_entry2 *hv = NULL;
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0x40000000)
			hv = &c->entries[i];
	if (!hv) {
		hv = &c->entries[c->nent++];
		memset(hv, 0, sizeof(*hv));
		hv->function = 0x40000000;
	}
	hv->eax = 0x40000001;
	hv->ebx = sig("libk");
	hv->ecx = sig("vmTe");
	hv->edx = sig("st!!");

	int vm = vm_with_memory(0x10000);
	real_mode_vcpu(vm, 0, 0x1000, BLOB(rm_cpuid));
	OK(kvm_set_cpuid(c));
	CHECK_EQ(run_until_out(0x10), 0x40000001);
	CHECK_EQ(run_until_out(0x11), sig("libk"));
	CHECK_EQ(run_until_out(0x12), sig("vmTe"));
	CHECK_EQ(run_until_out(0x13), sig("st!!"));
	run_expect(KVM_EXIT_HLT);

	/* After the first run KVM refuses a change, but takes the table it holds again (as
	 * KVM_GET_CPUID2 reports it: the kernel may have adjusted leaves, and on some hosts
	 * it shows the host's bits in leaves 1 and 7). */
	struct kvm_cpuid2 *held = cpuid_alloc(c->nent);
	OK(kvm_vcpu_ioctl(KVM_GET_CPUID2, held));
	OK(kvm_set_cpuid(held));
	for (unsigned i = 0; i < held->nent; i++)
		if (held->entries[i].function == 0x40000000) {
			CHECK_EQ(held->entries[i].ebx, sig("libk"));
			held->entries[i].ebx = sig("XXXX");
		}
	CHECK_ERR(kvm_set_cpuid(held), EINVAL);
	free(held);
	setup_real_mode(0x1000);
	CHECK_EQ(run_until_out(0x10), 0x40000001);
	CHECK_EQ(run_until_out(0x11), sig("libk"));

	/* Bad input. */
	CHECK_ERR(kvm_set_cpuid(NULL), EFAULT);
	struct kvm_cpuid2 *big = cpuid_alloc(257);
	CHECK_ERR(kvm_set_cpuid(big), E2BIG);
	on_thread(no_vcpu, c);

	free(big);
	free(c);
	end_vm(vm);
	return 0;
}
