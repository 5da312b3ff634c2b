/* The error branches of kvm_restore_vcpu and kvm_restore_vm: each target that does not fit gets the errno its man page lists, and is left as it was. */
/* ENXIO: a vcpu blob with local-APIC state into a VM without in-kernel APICs (a split
 * irqchip has them: that restore works); a VM blob with irqchip state into a VM without
 * one, with PIT state into a VM without a PIT. EINVAL: a VM blob into a VM of another
 * shape (vcpus, slot number, address, size, an extra slot); a vcpu blob holding
 * kvm_interrupt vectors into a VM with in-kernel APICs; an XSAVE section larger than the
 * vcpu's; a CPUID other than that of a vcpu that has run (the same one is fine).
 * EOPNOTSUPP: nested state where KVM_CAP_NESTED_STATE is 0. */
#include "harness.h"
#include <pthread.h>
#include <unistd.h>

#define MEM 0x10000
#define LOAD 0x1000
#define T_XSAVE 0x0005
#define T_NESTED 0x000c

/* Body length and CRC-32 (bytes 0..24 and 28..end) for a blob of `len` bytes. */
static void reseal(uint8_t *b, size_t len)
{
	uint64_t body = len - 32;
	memcpy(b + 16, &body, 8);
	uint32_t c = blob_crc32(b, 24, 0);
	c = blob_crc32(b + 28, len - 28, c);
	memcpy(b + 24, &c, 4);
}

/* A copy of vcpu blob `b` with `extra` zero bytes added to section `grow` (if found),
 * and, with `add_tag`, a section of `add_len` bytes `add` appended. */
static uint8_t *rebuild(const uint8_t *b, size_t len, uint32_t grow, uint32_t extra,
			uint32_t add_tag, const void *add, uint32_t add_len, size_t *out_len)
{
	uint8_t *o = calloc(1, len + extra + add_len + 32);
	CHECK(o != NULL);
	memcpy(o, b, 32);
	size_t at = 32, w = 32;
	int grown = 0;
	while (at + 8 <= len) {
		uint32_t t, l;
		memcpy(&t, b + at, 4);
		memcpy(&l, b + at + 4, 4);
		uint32_t nl = t == grow ? l + extra : l;
		grown |= t == grow;
		memcpy(o + w, &t, 4);
		memcpy(o + w + 4, &nl, 4);
		memcpy(o + w + 8, b + at + 8, l);
		w += 8 + ((nl + 7) & ~7u);
		at += 8 + ((l + 7) & ~7u);
	}
	CHECK(grow == 0 || grown);
	if (add_tag) {
		memcpy(o + w, &add_tag, 4);
		memcpy(o + w + 4, &add_len, 4);
		memcpy(o + w + 8, add, add_len);
		w += 8 + ((add_len + 7) & ~7u);
	}
	reseal(o, w);
	*out_len = w;
	return o;
}

/* A VM with `mem` bytes in slot `slot` at `gpa`, and the guest at LOAD. */
static int vm_at(uint32_t slot, uint64_t gpa, uint64_t mem)
{
	int vm = OK(kvm_create_vm());
	OK(kvm_set_memory_region(vm, slot, 0, gpa, mem));
	return vm;
}

/* The vcpu state a failed restore must leave alone. */
struct seen {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_lapic_state lapic;
	int has_lapic;
};

static void look(struct seen *s)
{
	memset(s, 0, sizeof(*s));
	OK(kvm_get_regs(&s->regs));
	OK(kvm_get_sregs(&s->sregs));
	s->has_lapic = kvm_get_lapic(&s->lapic) == 0;
}

static void unchanged(const struct seen *before, const char *what)
{
	struct seen now;
	look(&now);
	if (memcmp(&now.regs, &before->regs, sizeof(now.regs)) ||
	    memcmp(&now.sregs, &before->sregs, sizeof(now.sregs)) ||
	    now.has_lapic != before->has_lapic ||
	    memcmp(&now.lapic, &before->lapic, sizeof(now.lapic)))
		FAIL("%s: the refused restore changed the vcpu", what);
}

/* A guest that has run: rm_held_irq (guests/snapshot.S) to its port 0x30. */
static void run_guest(int vm)
{
	load_blob(vm, LOAD, BLOB(rm_held_irq));
	extern const uint8_t held_handler[], rm_held_irq_start[];
	uint16_t *ivt = kvm_guest_memory(vm, 0x50 * 4, 4);
	CHECK(ivt != NULL);
	ivt[0] = (uint16_t)(held_handler - rm_held_irq_start + LOAD);
	ivt[1] = 0;
	setup_real_mode(LOAD);
	run_until_out(0x30);
}

static int vm_arg;

static void *make_vcpus(void *arg)
{
	int n = *(int *)arg;
	for (int i = 0; i < n; i++) {
		OK(kvm_create_vcpu(vm_arg, (unsigned)(i + 1)));
		OK(kvm_detach_vcpu());
	}
	return NULL;
}

/* Adds `n` vcpus (ids 1..n) to `vm` from another thread, which leaves them detached. */
static void add_vcpus(int vm, int n)
{
	pthread_t t;
	vm_arg = vm;
	CHECK(pthread_create(&t, NULL, make_vcpus, &n) == 0);
	CHECK(pthread_join(t, NULL) == 0);
}

int main(void)
{
	require_kvm();
	deadline(20);

	/* The sources: a vcpu with an in-kernel local APIC (VM with irqchip and PIT), and
	 * one of a VM without irqchip holding a kvm_interrupt vector. */
	int src = vm_with_memory(MEM);
	OK(kvm_create_irqchip(src));
	OK(kvm_create_pit2(src, 0));
	OK(kvm_create_vcpu(src, 0));
	run_guest(src);
	size_t lapic_len, vm_len, held_len;
	uint8_t *lapic_blob = save_vcpu_blob(&lapic_len);
	uint8_t *vm_blob = save_vm_blob(src, &vm_len);
	end_vm(src);
	src = vm_with_memory(MEM);
	OK(kvm_create_vcpu(src, 0));
	run_guest(src);
	OK(kvm_interrupt(0x50));                  /* held: interrupts are off */
	uint8_t *held_blob = save_vcpu_blob(&held_len);
	end_vm(src);

	/* ENXIO: local-APIC state, no in-kernel APICs. */
	struct seen before;
	int vm = vm_with_memory(MEM);
	OK(kvm_create_vcpu(vm, 0));
	run_guest(vm);
	look(&before);
	CHECK_ERR(kvm_restore_vcpu(lapic_blob, lapic_len), ENXIO);
	unchanged(&before, "LAPIC into a VM without irqchip");
	/* ENXIO: irqchip state, no irqchip (same shape otherwise). */
	CHECK_ERR(kvm_restore_vm(vm, vm_blob, vm_len), ENXIO);
	end_vm(vm);

	/* A split irqchip has in-kernel local APICs: the LAPIC blob fits. */
	vm = vm_with_memory(MEM);
	if (kvm_check_extension(vm, KVM_CAP_SPLIT_IRQCHIP) > 0) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { 24 } };
		OK(kvm_enable_cap(vm, &cap));
		OK(kvm_create_vcpu(vm, 0));
		OK(kvm_restore_vcpu(lapic_blob, lapic_len));
		struct kvm_lapic_state l;
		OK(kvm_get_lapic(&l));
		/* The vectors blob does not fit it either: they belong to a VM without APICs. */
		look(&before);
		CHECK_ERR(kvm_restore_vcpu(held_blob, held_len), EINVAL);
		unchanged(&before, "held vectors into a split irqchip");
		/* No PIC, IOAPIC or PIT in the kernel: the VM blob does not fit. */
		CHECK_ERR(kvm_restore_vm(vm, vm_blob, vm_len), ENXIO);
		OK(kvm_detach_vcpu());
	} else {
		skip_section("LAPIC state into a split irqchip", "KVM_CAP_SPLIT_IRQCHIP is 0");
	}
	OK(kvm_destroy_vm(vm));

	/* ENXIO: PIT state, irqchip but no PIT. */
	vm = vm_with_memory(MEM);
	OK(kvm_create_irqchip(vm));
	OK(kvm_create_vcpu(vm, 0));
	struct kvm_irqchip pic = { .chip_id = KVM_IRQCHIP_PIC_MASTER }, pic_after = pic;
	OK(kvm_get_irqchip(vm, &pic));
	CHECK_ERR(kvm_restore_vm(vm, vm_blob, vm_len), ENXIO);
	OK(kvm_get_irqchip(vm, &pic_after));
	CHECK(memcmp(&pic, &pic_after, sizeof(pic)) == 0);
	/* EINVAL: vectors held by kvm_interrupt, in-kernel APICs. */
	run_guest(vm);
	look(&before);
	CHECK_ERR(kvm_restore_vcpu(held_blob, held_len), EINVAL);
	unchanged(&before, "held vectors into an irqchip");
	end_vm(vm);

	/* EINVAL: other shapes, each with irqchip and PIT (only the shape differs). */
	struct { uint32_t slot; uint64_t gpa, mem; int vcpus; const char *what; } shapes[] = {
		{ 0, 0, MEM, 0, "no vcpu" },
		{ 0, 0, MEM, 2, "two vcpus" },
		{ 1, 0, MEM, 1, "slot 1" },
		{ 0, 0x100000, MEM, 1, "another address" },
		{ 0, 0, 2 * MEM, 1, "more memory" },
		{ 0, 0, MEM, -1, "an extra slot" },
	};
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		vm = vm_at(shapes[i].slot, shapes[i].gpa, shapes[i].mem);
		OK(kvm_create_irqchip(vm));
		OK(kvm_create_pit2(vm, 0));
		int n = shapes[i].vcpus;
		if (n < 0) {
			OK(kvm_set_memory_region(vm, 1, 0, 0x100000, 0x1000));
			n = 1;
		}
		if (n)
			add_vcpus(vm, n);
		OK(kvm_get_irqchip(vm, &pic));
		errno = 0;
		int r = kvm_restore_vm(vm, vm_blob, vm_len);
		if (r != -1 || errno != EINVAL)
			FAIL("VM blob into a VM with %s: %d, errno %d (%s), expected -1 with EINVAL",
			     shapes[i].what, r, errno, strerror(errno));
		OK(kvm_get_irqchip(vm, &pic_after));
		CHECK(memcmp(&pic, &pic_after, sizeof(pic)) == 0);
		OK(kvm_destroy_vm(vm));
	}
	/* The same shape takes it (the check above is about the shape alone). */
	vm = vm_with_memory(MEM);
	OK(kvm_create_irqchip(vm));
	OK(kvm_create_pit2(vm, 0));
	add_vcpus(vm, 1);
	OK(kvm_restore_vm(vm, vm_blob, vm_len));
	OK(kvm_destroy_vm(vm));

	/* EINVAL: the other kind of dirty logging, both ways (kvm_enable_dirty_ring); the
	 * ring's size may differ. */
	vm = vm_with_memory(MEM);
	if (kvm_check_extension(vm, KVM_CAP_DIRTY_LOG_RING) > 0) {
		OK(kvm_enable_dirty_ring(vm, 8192));
		OK(kvm_create_irqchip(vm));
		OK(kvm_create_pit2(vm, 0));
		add_vcpus(vm, 1);
		CHECK_ERR(kvm_restore_vm(vm, vm_blob, vm_len), EINVAL);
		size_t ring_len = 0;
		uint8_t *ring_blob = save_vm_blob(vm, &ring_len);
		OK(kvm_destroy_vm(vm));
		vm = vm_with_memory(MEM);
		OK(kvm_create_irqchip(vm));
		OK(kvm_create_pit2(vm, 0));
		add_vcpus(vm, 1);
		CHECK_ERR(kvm_restore_vm(vm, ring_blob, ring_len), EINVAL);
		OK(kvm_destroy_vm(vm));
		vm = vm_with_memory(MEM);
		OK(kvm_enable_dirty_ring(vm, 65536));
		OK(kvm_create_irqchip(vm));
		OK(kvm_create_pit2(vm, 0));
		add_vcpus(vm, 1);
		OK(kvm_restore_vm(vm, ring_blob, ring_len));
		free(ring_blob);
	} else {
		skip_section("restore across dirty-logging modes", "KVM_CAP_DIRTY_LOG_RING is 0");
	}
	OK(kvm_destroy_vm(vm));

	/* EINVAL: an XSAVE section larger than the vcpu's XSAVE area. */
	vm = vm_with_memory(MEM);
	OK(kvm_create_irqchip(vm));
	OK(kvm_create_vcpu(vm, 0));
	size_t big_len;
	uint8_t *big = rebuild(lapic_blob, lapic_len, T_XSAVE, 64, 0, NULL, 0, &big_len);
	look(&before);
	CHECK_ERR(kvm_restore_vcpu(big, big_len), EINVAL);
	unchanged(&before, "a larger XSAVE area");
	free(big);
	/* EOPNOTSUPP: nested state the kernel cannot take (a header of 128 bytes whose
	 * size field says 128). */
	if (kvm_check_extension(vm, KVM_CAP_NESTED_STATE) <= 0) {
		uint8_t nested[128] = { 0 };
		uint32_t size = sizeof(nested);
		memcpy(nested + 4, &size, 4);
		size_t nl;
		uint8_t *nb = rebuild(lapic_blob, lapic_len, 0, 0, T_NESTED, nested, sizeof(nested), &nl);
		CHECK_ERR(kvm_restore_vcpu(nb, nl), EOPNOTSUPP);
		unchanged(&before, "nested state");
		free(nb);
	} else {
		skip_section("EOPNOTSUPP for nested state", "KVM_CAP_NESTED_STATE is not 0: the "
			     "kernel takes nested state");
	}
	/* The blob itself fits: the refusals above were about what was changed. */
	OK(kvm_restore_vcpu(lapic_blob, lapic_len));
	end_vm(vm);

	/* EINVAL: another CPUID than that of a vcpu that has run; the same one is fine. */
	vm = vm_with_memory(MEM);
	OK(kvm_create_vcpu(vm, 0));
	struct kvm_cpuid2 *c = supported_cpuid();
	OK(kvm_set_cpuid(c));                     /* the held blob's vcpu had none */
	free(c);
	run_guest(vm);
	look(&before);
	CHECK_ERR(kvm_restore_vcpu(held_blob, held_len), EINVAL);
	unchanged(&before, "another CPUID");
	end_vm(vm);
	vm = vm_with_memory(MEM);
	OK(kvm_create_vcpu(vm, 0));
	run_guest(vm);                            /* no CPUID set: the same as the blob's */
	OK(kvm_restore_vcpu(held_blob, held_len));
	CHECK_EQ(run_until_out(0x31), 0x50);      /* and the held vector came along */
	end_vm(vm);

	free(lapic_blob);
	free(vm_blob);
	free(held_blob);
	return 0;
}
