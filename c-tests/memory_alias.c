/* kvm_set_memory_alias: guest and host writes through an alias are seen at its target and back. */
#include "harness.h"

static int vm;

static struct kvm_memory_alias alias(unsigned slot, uint64_t gpa, uint64_t size, uint64_t target)
{
	struct kvm_memory_alias a;
	memset(&a, 0, sizeof(a));
	a.slot = slot;
	a.guest_phys_addr = gpa;
	a.memory_size = size;
	a.target_phys_addr = target;
	return a;
}

static int set_alias(unsigned slot, uint64_t gpa, uint64_t size, uint64_t target)
{
	struct kvm_memory_alias a = alias(slot, gpa, size, target);
	return kvm_set_memory_alias(vm, &a);
}

/* Runs the guest: it writes `value` at `write_gpa`, then reads `read_gpa` and returns it. */
static uint32_t guest_write_read(uint32_t write_gpa, uint32_t value, uint32_t read_gpa)
{
	setup_protected_mode(0x2000);
	EDIT_REGS(r, r.rdi = write_gpa; r.rbx = value; r.rsi = read_gpa);
	run_until_out(0x10);
	uint32_t v = run_until_out(0x11);
	run_expect(KVM_EXIT_HLT);
	return v;
}

static uint32_t *at(uint64_t gpa)
{
	uint32_t *p = kvm_guest_memory(vm, gpa, 4);
	CHECK(p != NULL);
	return p;
}

int main(void)
{
	require_kvm();
	vm = vm_with_memory(0x10000);
	/* The target: slot 1, 64 KiB at 1 MiB, with dirty logging. */
	OK(kvm_set_memory_region(vm, 1, KVM_MEM_LOG_DIRTY_PAGES, 0x100000, 0x10000));
	load_blob(vm, 0x2000, BLOB(pm_alias));
	OK(kvm_create_vcpu(vm, 0));

	/* Alias 3: 8 KiB at 2 MiB showing 0x104000..0x106000. */
	OK(set_alias(3, 0x200000, 0x2000, 0x104000));
	struct kvm_memory_alias got = alias(3, 0, 0, 0);
	got.flags = 0xff;
	OK(kvm_get_memory_alias(vm, &got));
	CHECK_EQ(got.slot, 3);
	CHECK_EQ(got.flags, 0);
	CHECK_EQ(got.guest_phys_addr, 0x200000);
	CHECK_EQ(got.memory_size, 0x2000);
	CHECK_EQ(got.target_phys_addr, 0x104000);
	/* kvm_guest_memory() reaches the same host memory through both. */
	CHECK(at(0x200010) == at(0x104010));
	CHECK(at(0x201ffc) == at(0x105ffc));
	CHECK_ERR(kvm_guest_memory(vm, 0x201ffc, 8), EFAULT);     /* past the alias's end */

	/* The guest writes through the alias, the host reads at the target; the host writes
	 * at the target, the guest reads through the alias. */
	/* Initialised: valgrind cannot see the kernel write it (through a pointer inside
	 * struct kvm_dirty_log). */
	uint64_t bitmap[1] = { 0 };
	OK(kvm_get_dirty_log(vm, 1, bitmap));
	*at(0x105020) = 0x55667788;
	CHECK_EQ(guest_write_read(0x200010, 0x11223344, 0x201020), 0x55667788);
	CHECK_EQ(*at(0x104010), 0x11223344);
	/* The write through the alias is in the target slot's dirty log: page 4. */
	OK(kvm_get_dirty_log(vm, 1, bitmap));
	CHECK_EQ(bitmap[0], 1ULL << 4);
	/* The other way round: the guest writes the target, reads back through the alias. */
	CHECK_EQ(guest_write_read(0x105040, 0xcafef00d, 0x201040), 0xcafef00d);
	OK(kvm_get_dirty_log(vm, 1, bitmap));
	CHECK_EQ(bitmap[0], 1ULL << 5);

	/* Overlaps. */
	CHECK_ERR(set_alias(4, 0x201000, 0x2000, 0x100000), EEXIST);   /* alias 3 */
	CHECK_ERR(set_alias(4, 0x1ff000, 0x2000, 0x100000), EEXIST);
	CHECK_ERR(set_alias(4, 0xf000, 0x2000, 0x100000), EEXIST);     /* slot 0 */
	CHECK_ERR(set_alias(4, 0x108000, 0x1000, 0x100000), EEXIST);   /* its own target slot */
	CHECK_ERR(kvm_set_memory_region(vm, 2, 0, 0x1ff000, 0x2000), EEXIST);
	/* Targets that are not inside one memory slot. */
	CHECK_ERR(set_alias(4, 0x300000, 0x1000, 0x400000), EFAULT);   /* no slot */
	CHECK_ERR(set_alias(4, 0x300000, 0x2000, 0x10f000), EFAULT);   /* past slot 1's end */
	CHECK_ERR(set_alias(4, 0x300000, 0x2000, 0xf000), EFAULT);     /* past slot 0's end */
	CHECK_ERR(set_alias(4, 0x300000, 0x1000, 0x200000), EFAULT);   /* inside an alias */
	/* Bad values. */
	CHECK_ERR(set_alias(32, 0x300000, 0x1000, 0x100000), EINVAL);
	CHECK_ERR(set_alias(-1u, 0x300000, 0x1000, 0x100000), EINVAL);
	CHECK_ERR(set_alias(4, 0x300800, 0x1000, 0x100000), EINVAL);
	CHECK_ERR(set_alias(4, 0x300000, 0x1800, 0x100000), EINVAL);
	CHECK_ERR(set_alias(4, 0x300000, 0x1000, 0x100800), EINVAL);
	CHECK_ERR(set_alias(4, -4096ULL, 0x2000, 0x100000), EINVAL);
	struct kvm_memory_alias a = alias(4, 0x300000, 0x1000, 0x100000);
	a.flags = 1;
	CHECK_ERR(kvm_set_memory_alias(vm, &a), EINVAL);
	CHECK_ERR(kvm_set_memory_alias(vm, NULL), EFAULT);
	CHECK_ERR(kvm_get_memory_alias(vm, NULL), EFAULT);
	CHECK_ERR(kvm_set_memory_alias(-1, &a), EBADF);
	CHECK_ERR(kvm_get_memory_alias(-1, &a), EBADF);
	/* Unknown alias slots. */
	a = alias(4, 0, 0, 0);
	CHECK_ERR(kvm_get_memory_alias(vm, &a), ENOENT);
	CHECK_ERR(kvm_set_memory_alias(vm, &a), ENOENT);               /* delete */
	a.slot = 32;
	CHECK_ERR(kvm_get_memory_alias(vm, &a), EINVAL);
	/* The target slot cannot be deleted or moved while the alias points into it. */
	CHECK_ERR(kvm_set_memory_region(vm, 1, 0, 0, 0), EBUSY);
	CHECK_ERR(kvm_set_memory_region(vm, 1, KVM_MEM_LOG_DIRTY_PAGES, 0x800000, 0x10000), EBUSY);
	/* Alias slots are not memory slots, and memory slots are not alias slots. */
	CHECK_ERR(kvm_set_memory_region(vm, 3, 0, 0, 0), ENOENT);
	a = alias(1, 0, 0, 0);
	CHECK_ERR(kvm_get_memory_alias(vm, &a), ENOENT);
	/* A second alias at the end of the slot works; adjacent to alias 3 too. */
	OK(set_alias(31, 0x202000, 0x1000, 0x10f000));
	*at(0x10f100) = 0x31;
	CHECK_EQ(guest_write_read(0x202200, 0x3131, 0x202100), 0x31);
	CHECK_EQ(*at(0x10f200), 0x3131);

	/* An alias follows its slot's flags: created while slot 2 does not log, it logs
	 * once the slot does. */
	OK(kvm_set_memory_region(vm, 2, 0, 0x400000, 0x4000));
	OK(set_alias(5, 0x500000, 0x2000, 0x402000));
	OK(kvm_set_memory_region(vm, 2, KVM_MEM_LOG_DIRTY_PAGES, 0x400000, 0x4000));
	OK(kvm_get_dirty_log(vm, 2, bitmap));
	CHECK_EQ(bitmap[0], 0);
	CHECK_EQ(guest_write_read(0x501008, 0x5, 0x403008), 0x5);
	OK(kvm_get_dirty_log(vm, 2, bitmap));
	CHECK_EQ(bitmap[0], 1ULL << 3);
	/* ... and the slot's memory stays for the alias when it is read-only. */
	if (kvm_check_extension(vm, KVM_CAP_READONLY_MEM) > 0) {
		OK(kvm_set_memory_region(vm, 6, KVM_MEM_READONLY, 0x600000, 0x1000));
		*at(0x600100) = 0x6;
		OK(set_alias(6, 0x700000, 0x1000, 0x600000));
		setup_protected_mode(0x2000);
		struct kvm_regs r;
		OK(kvm_get_regs(&r));
		r.rdi = 0x700100;                /* a write through the alias: MMIO exit */
		r.rbx = 0x66;
		r.rsi = 0x700100;
		OK(kvm_set_regs(&r));
		run_expect(KVM_EXIT_MMIO);
		CHECK_EQ(kvm_run_area()->mmio.phys_addr, 0x700100);
		CHECK(kvm_run_area()->mmio.is_write);
		run_until_out(0x10);
		CHECK_EQ(run_until_out(0x11), 0x6);   /* reads work, the memory is unchanged */
		run_expect(KVM_EXIT_HLT);
		OK(set_alias(6, 0, 0, 0));
		OK(kvm_set_memory_region(vm, 6, 0, 0, 0));
	} else {
		skip_section("read-only alias", "KVM_CAP_READONLY_MEM is 0");
	}
	OK(set_alias(5, 0, 0, 0));
	OK(kvm_set_memory_region(vm, 2, 0, 0, 0));

	/* Replacing alias 3 shows another target. */
	*at(0x10a020) = 0xa11a5;
	OK(set_alias(3, 0x200000, 0x1000, 0x10a000));
	CHECK_EQ(guest_write_read(0x200100, 0xb0b, 0x200020), 0xa11a5);
	CHECK_EQ(*at(0x10a100), 0xb0b);
	CHECK_ERR(kvm_guest_memory(vm, 0x201000, 4), EFAULT);           /* it shrank */
	got = alias(3, 0, 0, 0);
	OK(kvm_get_memory_alias(vm, &got));
	CHECK_EQ(got.target_phys_addr, 0x10a000);
	CHECK_EQ(got.memory_size, 0x1000);

	/* Deleting: the alias's range is no longer guest memory; then the target can go. */
	OK(set_alias(3, 0, 0, 0));
	CHECK_ERR(kvm_guest_memory(vm, 0x200000, 4), EFAULT);
	a = alias(3, 0, 0, 0);
	CHECK_ERR(kvm_get_memory_alias(vm, &a), ENOENT);
	CHECK_ERR(kvm_set_memory_region(vm, 1, 0, 0, 0), EBUSY);       /* alias 31 */
	OK(set_alias(31, 0, 0, 0));
	OK(kvm_set_memory_region(vm, 1, 0, 0, 0));
	/* Its guest range is free again for a memory slot. */
	OK(kvm_set_memory_region(vm, 2, 0, 0x200000, 0x1000));

	end_vm(vm);
	return 0;
}
