/* The host's feature MSRs (list with E2BIG protocol, values) and the /dev/kvm escape hatch. */
#include "harness.h"

#define MSR_IA32_ARCH_CAPABILITIES 0x10a

int main(void)
{
	require_kvm();
	struct kvm_msr_list *list = read_msr_list(kvm_get_msr_feature_index_list);
	uint32_t n = list->nmsrs;

	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
	CHECK(m != NULL);
	m->nmsrs = n;
	int arch_cap = -1;
	for (uint32_t i = 0; i < n; i++) {
		m->entries[i].index = list->indices[i];
		if (list->indices[i] == MSR_IA32_ARCH_CAPABILITIES)
			arch_cap = (int)i;
	}
	CHECK_EQ(OK(kvm_get_msr_features(m)), n);
	m->entries[0].index = 0x12345678;                 /* not a feature MSR */
	CHECK_EQ(OK(kvm_get_msr_features(m)), 0);
	m->entries[0].index = list->indices[0];

	/* Feature MSRs describe the host; they are not guest state (and this host's KVM
	 * refuses some bits of IA32_ARCH_CAPABILITIES it reports, when set on a vcpu). */
	if (arch_cap >= 0)
		CHECK(m->entries[arch_cap].data != 0);
	/* Each value is what KVM_GET_MSRS on /dev/kvm itself reports. */
	struct kvm_msrs *raw = calloc(1, sizeof(*raw) + n * sizeof(struct kvm_msr_entry));
	CHECK(raw != NULL);
	raw->nmsrs = n;
	for (uint32_t i = 0; i < n; i++)
		raw->entries[i].index = list->indices[i];
	CHECK_EQ(OK(kvm_get_msr_features(m)), n);
	CHECK_EQ(OK(kvm_system_ioctl(KVM_GET_MSRS, raw)), n);
	for (uint32_t i = 0; i < n; i++) {
		CHECK_EQ(m->entries[i].index, raw->entries[i].index);
		CHECK_EQ(m->entries[i].data, raw->entries[i].data);
	}
	free(raw);

	/* The /dev/kvm escape hatch. */
	CHECK_EQ(OK(kvm_system_ioctl(KVM_GET_API_VERSION, NULL)), 12);
	uint64_t mce_cap = 0;
	OK(kvm_system_ioctl(KVM_X86_GET_MCE_CAP_SUPPORTED, &mce_cap));
	CHECK(mce_cap != 0);
	CHECK_ERR(kvm_system_ioctl(KVM_CREATE_VM, NULL), EINVAL);
	CHECK_ERR(kvm_system_ioctl(KVM_GET_MSR_FEATURE_INDEX_LIST, NULL), EFAULT);

	CHECK_ERR(kvm_get_msr_feature_index_list(NULL), EFAULT);
	CHECK_ERR(kvm_get_msr_features(NULL), EFAULT);
	free(m);
	free(list);
	return 0;
}
