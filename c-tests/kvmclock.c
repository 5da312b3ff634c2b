/* The guest's kvmclock follows kvm_get_clock/kvm_set_clock and sees kvm_kvmclock_ctrl; a vcpu capability changes the guest. */
#include "harness.h"
#include <time.h>

/* struct pvclock_vcpu_time_info at guest 0x3000. */
static uint64_t guest_system_time(int vm)
{
	uint64_t *p = kvm_guest_memory(vm, 0x3010, 8);
	CHECK(p != NULL);
	return *p;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
}

static void clock_and_ctrl(void)
{
	int vm = vm_with_memory(0x10000);
	protected_mode_vcpu(vm, 0, 0x2000, BLOB(pm_kvmclock));

	/* The guest has not enabled kvmclock yet. */
	CHECK_ERR(kvm_kvmclock_ctrl(), EINVAL);

	struct kvm_clock_data c1, c2;
	OK(kvm_get_clock(vm, &c1));
	sleep_ms(5);
	OK(kvm_get_clock(vm, &c2));
	CHECK(c2.clock >= c1.clock + 5000000);           /* it counts */

	CHECK_EQ(run_until_out(0x31) & 2, 0);            /* flags: not stopped */
	run_until_out(0x32);
	uint64_t t0 = guest_system_time(vm);
	CHECK(t0 != 0);

	/* Move the clock 1000 s ahead: the guest's kvmclock follows, and keeps counting. */
	const uint64_t ahead = 1000ULL * 1000000000ULL;
	struct kvm_clock_data set = { .clock = c2.clock + ahead };
	OK(kvm_set_clock(vm, &set));
	run_until_out(0x31);
	run_until_out(0x32);
	uint64_t t1 = guest_system_time(vm);
	CHECK(t1 >= set.clock);
	CHECK(t1 < set.clock + 60ULL * 1000000000ULL);
	OK(kvm_get_clock(vm, &c1));
	CHECK(c1.clock >= set.clock);
	sleep_ms(5);
	OK(kvm_get_clock(vm, &c2));
	CHECK(c2.clock >= c1.clock + 5000000);

	/* kvm_kvmclock_ctrl: the guest sees PVCLOCK_GUEST_STOPPED at the next entry. */
	OK(kvm_kvmclock_ctrl());
	CHECK_EQ(run_until_out(0x31) & 2, 2);

	CHECK_ERR(kvm_get_clock(vm, NULL), EFAULT);
	CHECK_ERR(kvm_set_clock(vm, NULL), EFAULT);
	CHECK_ERR(kvm_get_clock(-1, &c1), EBADF);
	set.flags = 0x80000000;
	CHECK_ERR(kvm_set_clock(vm, &set), EINVAL);
	OK(kvm_detach_vcpu());
	CHECK_ERR(kvm_kvmclock_ctrl(), ESRCH);
	OK(kvm_destroy_vm(vm));
}

/* KVM_CAP_ENFORCE_PV_FEATURE_CPUID, enabled with kvm_enable_vcpu_cap: the same guest,
 * whose CPUID offers no kvmclock, faults on the MSR write (no IDT: shutdown). */
static void enforce_pv_cpuid(void)
{
	int vm = vm_with_memory(0x10000);
	if (kvm_check_extension(vm, KVM_CAP_ENFORCE_PV_FEATURE_CPUID) <= 0) {
		skip_section("kvm_enable_vcpu_cap", "KVM_CAP_ENFORCE_PV_FEATURE_CPUID is 0");
		OK(kvm_destroy_vm(vm));
		return;
	}
	protected_mode_vcpu(vm, 0, 0x2000, BLOB(pm_kvmclock));
	struct kvm_enable_cap cap = { .cap = KVM_CAP_ENFORCE_PV_FEATURE_CPUID, .args = { 1 } };
	OK(kvm_enable_vcpu_cap(&cap));
	run_expect(KVM_EXIT_SHUTDOWN);

	cap.cap = 0x7fffffff;
	CHECK_ERR(kvm_enable_vcpu_cap(&cap), EINVAL);
	CHECK_ERR(kvm_enable_vcpu_cap(NULL), EFAULT);
	OK(kvm_detach_vcpu());
	CHECK_ERR(kvm_enable_vcpu_cap(&cap), ESRCH);
	OK(kvm_destroy_vm(vm));
}

int main(void)
{
	require_kvm();
	clock_and_ctrl();
	enforce_pv_cpuid();
	return 0;
}
