/* After kvm_destroy_vm, and after a vcpu thread exits without detaching, no fd or
 * mapping of the VM remains. */
#include "harness.h"
#include <pthread.h>

static int vm;

static void *exits_owning(void *arg)
{
	(void)arg;
	OK(kvm_create_vcpu(vm, 1));
	setup_real_mode(0x1000);
	CHECK_EQ(run_until_out(0x10), 0);
	return NULL; /* no kvm_detach_vcpu: thread exit gives the vcpu up */
}

int main(void)
{
	require_kvm();
	CHECK(kvm_get_api_version() == 12); /* opens /dev/kvm once, before the baseline */
	int fds0 = count_fds(), kvm0 = count_kvm_fds(), maps0 = count_kvm_mappings();

	for (int round = 0; round < 3; round++) {
		vm = vm_with_memory(0x10000);
		OK(kvm_set_memory_region(vm, 1, 0, 0x100000, 0x200000));
		load_blob(vm, 0x1000, BLOB(rm_report));
		void *owned = kvm_guest_memory(vm, 0x100000, 0x200000);
		CHECK(owned != NULL);
		CHECK(is_mapped(owned));

		on_thread(exits_owning, NULL);

		OK(kvm_create_vcpu(vm, 0));
		CHECK_EQ(count_kvm_fds(), kvm0 + 1 + 2 * kvm_fds_per_vcpu()); /* VM + two vcpus */
		CHECK_EQ(count_kvm_mappings(), maps0 + 2); /* two run areas */
		CHECK_ERR(kvm_destroy_vm(vm), EBUSY);     /* ours is attached */
		end_vm(vm);

		CHECK_EQ(count_kvm_fds(), kvm0);
		CHECK_EQ(count_kvm_mappings(), maps0);
		CHECK_EQ(count_fds(), fds0);
		CHECK(!is_mapped(owned));
		CHECK_ERR(kvm_destroy_vm(vm), EBADF);
	}
	return 0;
}
