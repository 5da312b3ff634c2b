/* kvm_create_vcpu whose run area cannot be mapped (RLIMIT_AS at the current size) fails with ENOMEM and does not burn the id: the retry with the same id succeeds and runs a guest. */
#define _GNU_SOURCE
#include "harness.h"
#include <sys/mman.h>
#include <sys/resource.h>

int main(void)
{
	require_kvm();
	if (getenv("LIBKVM_TEST_INSTRUMENTED")) {
		/* Valgrind and ASan map memory of their own behind the program's back. */
		printf("valgrind/ASan: the address-space limit is not the program's own\n");
		return 0;
	}
	int vm = vm_with_memory(0x10000);
	load_blob(vm, 0x1000, BLOB(rm_report));
	int fds = count_kvm_fds();
	/* libkvm's thread-local exists before the limit (its first use allocates). */
	CHECK_ERR(kvm_run(), ESRCH);
	struct rlimit old;
	CHECK(getrlimit(RLIMIT_AS, &old) == 0);

	for (int round = 0; round < 3; round++) {
		/* No new mapping fits: the run area's mmap() fails. */
		long kb = proc_status_kb("VmSize");
		CHECK(kb > 0);
		struct rlimit tight = { (rlim_t)kb * 1024, old.rlim_max };
		CHECK(setrlimit(RLIMIT_AS, &tight) == 0);
		void *probe = mmap(NULL, 0x4000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		errno = 0;
		int r = kvm_create_vcpu(vm, 3);
		int e = errno;
		CHECK(setrlimit(RLIMIT_AS, &old) == 0);
		if (probe != MAP_FAILED)
			FAIL("the limit does not stop new mappings");
		if (r != -1)
			FAIL("kvm_create_vcpu succeeded without room for its run area (%d)", r);
		if (e != ENOMEM)
			FAIL("kvm_create_vcpu: errno %d (%s), expected ENOMEM", e, strerror(e));
		note_errno("kvm_create_vcpu", e);
		CHECK_ERR(kvm_run(), ESRCH);
	}
	/* The kernel vcpu exists and is kept for the retry (one fd), not once per failure. */
	CHECK_EQ(count_kvm_fds(), fds + 1);

	/* The retry with the same id completes it. */
	int fd = kvm_create_vcpu(vm, 3);
	if (fd < 0)
		FAIL("kvm_create_vcpu retry with the same id: %s", strerror(errno));
	CHECK_EQ(count_kvm_fds(), fds + kvm_fds_per_vcpu());
	setup_real_mode(0x1000);
	EDIT_REGS(regs, regs.rsi = 21; regs.rbx = 6);
	CHECK_EQ(run_until_out(0x10), 42);
	CHECK_EQ(run_until_out(0x11), 7);
	run_expect(KVM_EXIT_HLT);
	/* The id exists now. */
	OK(kvm_detach_vcpu());
	CHECK_ERR(kvm_create_vcpu(vm, 3), EEXIST);
	OK(kvm_destroy_vm(vm));
	return 0;
}
