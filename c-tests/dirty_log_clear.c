/* With manual dirty-log protection, kvm_clear_dirty_log clears and re-arms exactly the pages named. */
#include "harness.h"

#define SLOT 1
#define BASE 0x100000
#define PAGES 64

static uint64_t dirty(int vm)
{
	uint64_t bitmap = 0;
	OK(kvm_get_dirty_log(vm, SLOT, &bitmap));
	return bitmap;
}

static void clear(int vm, uint64_t bits)
{
	struct kvm_clear_dirty_log c = { .slot = SLOT, .first_page = 0, .num_pages = PAGES,
					 .dirty_bitmap = &bits };
	OK(kvm_clear_dirty_log(vm, &c));
}

int main(void)
{
	require_kvm();
	int vm = vm_with_memory(0x10000);
	load_blob(vm, 0x2000, BLOB(pm_dirty_clear));
	if (kvm_check_extension(vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) <= 0) {
		OK(kvm_destroy_vm(vm));
		skip_test("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 is 0");
	}
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
				      .args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE } };
	OK(kvm_enable_cap(vm, &cap));
	OK(kvm_set_memory_region(vm, SLOT, KVM_MEM_LOG_DIRTY_PAGES, BASE, PAGES * 4096));
	OK(kvm_create_vcpu(vm, 0));
	setup_protected_mode(0x2000);

	run_until_out(0x30);
	CHECK_EQ(dirty(vm), 1 << 1 | 1 << 3 | 1 << 5);
	CHECK_EQ(dirty(vm), 1 << 1 | 1 << 3 | 1 << 5);  /* reading did not clear */
	clear(vm, 1 << 3);
	CHECK_EQ(dirty(vm), 1 << 1 | 1 << 5);
	run_until_out(0x31);                             /* writes pages 1 and 3 again */
	CHECK_EQ(dirty(vm), 1 << 1 | 1 << 3 | 1 << 5);
	clear(vm, ~0ULL);
	CHECK_EQ(dirty(vm), 0);
	run_expect(KVM_EXIT_HLT);

	uint64_t bits = 1;
	struct kvm_clear_dirty_log c = { .slot = SLOT, .first_page = 1, .num_pages = 1,
					 .dirty_bitmap = &bits };
	CHECK_ERR(kvm_clear_dirty_log(vm, &c), EINVAL);   /* first_page not a multiple of 64 */
	c.first_page = PAGES;
	c.num_pages = 64;
	CHECK_ERR(kvm_clear_dirty_log(vm, &c), EINVAL);   /* past the slot */
	c.first_page = 0;
	c.slot = 7;
	CHECK_ERR(kvm_clear_dirty_log(vm, &c), ENOENT);   /* no such slot */
	c.slot = 0;
	CHECK_ERR(kvm_clear_dirty_log(vm, &c), ENOENT);   /* slot without dirty logging */
	c.slot = 0xffff;
	CHECK_ERR(kvm_clear_dirty_log(vm, &c), ENOENT);
	c.slot = SLOT;
	c.dirty_bitmap = NULL;
	CHECK_ERR(kvm_clear_dirty_log(vm, &c), EFAULT);
	CHECK_ERR(kvm_clear_dirty_log(vm, NULL), EFAULT);
	CHECK_ERR(kvm_clear_dirty_log(-1, &c), EBADF);
	CHECK_ERR(kvm_enable_cap(vm, NULL), EFAULT);
	cap.cap = 0x7fffffff;
	CHECK_ERR(kvm_enable_cap(vm, &cap), EINVAL);
	CHECK_ERR(kvm_enable_cap(-1, &cap), EBADF);
	end_vm(vm);
	return 0;
}
