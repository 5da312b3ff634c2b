/* kvm_get_dirty_log: the bitmap holds exactly the pages the guest wrote, then is empty. */
#include "harness.h"

#define SLOT_GPA 0x100000ULL
#define SLOT_PAGES 80                 /* two 64-bit words of bitmap */

static int vm;

/* Reads slot 1's log; checks that exactly the pages in `want` (ending with -1) are set. */
static void expect_dirty(const int *want)
{
	uint64_t bitmap[3];
	memset(bitmap, 0xa5, sizeof(bitmap));
	OK(kvm_get_dirty_log(vm, 1, bitmap));
	uint64_t expect[2] = { 0, 0 };
	for (; *want >= 0; want++)
		expect[*want / 64] |= 1ULL << (*want % 64);
	CHECK_EQ(bitmap[0], expect[0]);
	CHECK_EQ(bitmap[1], expect[1]);
	CHECK_EQ(bitmap[2], 0xa5a5a5a5a5a5a5a5ULL);   /* nothing written past the bitmap */
}

int main(void)
{
	require_kvm();
	vm = vm_with_memory(0x10000);
	OK(kvm_set_memory_region(vm, 1, KVM_MEM_LOG_DIRTY_PAGES, SLOT_GPA, SLOT_PAGES * 4096));
	load_blob(vm, 0x2000, BLOB(pm_dirty));

	/* Address tables for the guest: three rounds. */
	uint32_t tables[] = {
		SLOT_GPA + 0x0000, SLOT_GPA + 0x3000, SLOT_GPA + 0x7ffc, SLOT_GPA + 63 * 4096 + 8,
		SLOT_GPA + 64 * 4096, SLOT_GPA + 79 * 4096 + 0xff0, SLOT_GPA + 0x3010, 0,
		SLOT_GPA + 0x5008, 0,
		0,
		SLOT_GPA + 0x5000, SLOT_GPA + 70 * 4096, 0,
	};
	memcpy(kvm_guest_memory(vm, 0x3000, sizeof(tables)), tables, sizeof(tables));

	OK(kvm_create_vcpu(vm, 0));
	setup_protected_mode(0x2000);
	EDIT_REGS(r, r.rsi = 0x3000);

	/* Nothing written yet; the host's own writes are not logged. */
	*(uint32_t *)kvm_guest_memory(vm, SLOT_GPA + 0x2000, 4) = 1;
	expect_dirty((int[]){ -1 });

	run_until_out(0x10);
	expect_dirty((int[]){ 0, 3, 7, 63, 64, 79, -1 });
	expect_dirty((int[]){ -1 });                       /* reading reset it */

	run_until_out(0x10);
	expect_dirty((int[]){ 5, -1 });
	run_until_out(0x10);                               /* a round with no writes */
	expect_dirty((int[]){ -1 });
	run_until_out(0x10);
	expect_dirty((int[]){ 5, 70, -1 });
	/* The guest really wrote the addresses. */
	CHECK_EQ(*(uint32_t *)kvm_guest_memory(vm, SLOT_GPA + 70 * 4096, 4), SLOT_GPA + 70 * 4096);
	CHECK_EQ(*(uint32_t *)kvm_guest_memory(vm, SLOT_GPA + 0x7ffc, 4), SLOT_GPA + 0x7ffc);

	/* Bad input. */
	uint64_t bitmap[2];
	CHECK_ERR(kvm_get_dirty_log(vm, 0, bitmap), EINVAL);       /* slot without logging */
	CHECK_ERR(kvm_get_dirty_log(vm, 2, bitmap), ENOENT);       /* no such slot */
	CHECK_ERR(kvm_get_dirty_log(vm, 1u << 30, bitmap), ENOENT);
	CHECK_ERR(kvm_get_dirty_log(vm, 1, NULL), EFAULT);
	CHECK_ERR(kvm_get_dirty_log(-1, 1, bitmap), EBADF);
	/* Turning logging off makes the slot refuse; turning it on again works. */
	OK(kvm_set_memory_region(vm, 1, 0, SLOT_GPA, SLOT_PAGES * 4096));
	CHECK_ERR(kvm_get_dirty_log(vm, 1, bitmap), EINVAL);
	OK(kvm_set_memory_region(vm, 1, KVM_MEM_LOG_DIRTY_PAGES, SLOT_GPA, SLOT_PAGES * 4096));
	expect_dirty((int[]){ -1 });

	OK(kvm_detach_vcpu());
	expect_dirty((int[]){ -1 });                       /* works without a vcpu */
	OK(kvm_destroy_vm(vm));
	return 0;
}
