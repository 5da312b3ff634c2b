/* Every section of a VM blob, restored by another process, holds the distinctive values set before the save, read back field by field and observed by the guest. */
/* The source sets distinctive state in the PIC pair (base vectors, masks, ELCR, auto
 * EOI), the IOAPIC (its ID, a redirection of pin 5 to vector 0x61), the PIT (channel 0
 * programmed by the guest, channel 2's gate, the HPET-legacy flag) and the kvmclock
 * (1000 s ahead), saves VM and vcpu, and goes on running the guest itself. A fresh
 * process (this test, exec'd) restores both into a fresh VM of the same shape, reads
 * every field back against what the source read before saving, and runs the guest,
 * which observes them: the PIC masks and ELCR, the PIT's status and gate, the IOAPIC's
 * ID, its kvmclock's system time, an interrupt the IOAPIC routes to the handler the
 * guest installed, and one through the PIC at its restored base vector. (The VM blob
 * has no GSI routing section: kvm_save_vm(3) does not list it.) */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MEM 0x10000
#define LOAD 0x1000
#define CLOCK (1000ULL * 1000 * 1000 * 1000)    /* 1000 s, in ns */
#define PIN 5                   /* the IOAPIC pin routed to vector 0x61 */
#define IOAPIC_ID 0x0a
#define MASTER_BASE 0x68
#define SLAVE_BASE 0x78
#define MASTER_IMR 0xf7         /* IRQ 3 only (vector 0x6b) */
#define SLAVE_IMR 0xfd
#define MASTER_ELCR 0x20        /* IRQ 5 level-triggered */
#define SLAVE_ELCR 0x02         /* IRQ 9 */

struct dump {
	struct kvm_irqchip master, slave, ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

static void take_dump(int vm, struct dump *d)
{
	memset(d, 0, sizeof(*d));
	d->master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	d->slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	d->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	OK(kvm_get_irqchip(vm, &d->master));
	OK(kvm_get_irqchip(vm, &d->slave));
	OK(kvm_get_irqchip(vm, &d->ioapic));
	OK(kvm_get_pit2(vm, &d->pit));
	OK(kvm_get_clock(vm, &d->clock));
}

static void check_dump_has_fields(const struct dump *d)
{
	const struct kvm_pic_state *m = &d->master.chip.pic, *s = &d->slave.chip.pic;
	CHECK_EQ(m->irq_base, MASTER_BASE);
	CHECK_EQ(m->imr, MASTER_IMR);
	CHECK_EQ(m->elcr, MASTER_ELCR);
	CHECK_EQ(m->auto_eoi, 1);
	CHECK_EQ(s->irq_base, SLAVE_BASE);
	CHECK_EQ(s->imr, SLAVE_IMR);
	CHECK_EQ(s->elcr, SLAVE_ELCR);
	const struct kvm_ioapic_state *io = &d->ioapic.chip.ioapic;
	CHECK_EQ(io->id, IOAPIC_ID);
	CHECK_EQ(io->redirtbl[PIN].fields.vector, 0x61);
	CHECK_EQ(io->redirtbl[PIN].fields.mask, 0);
	CHECK_EQ(d->pit.channels[0].count, 0x1234);
	CHECK_EQ(d->pit.channels[0].mode, 2);
	CHECK_EQ(d->pit.channels[2].gate, 1);
	CHECK_EQ(d->pit.flags & KVM_PIT_FLAGS_HPET_LEGACY, KVM_PIT_FLAGS_HPET_LEGACY);
	CHECK(d->clock.clock >= CLOCK);
}

#define SAME(field) do { if (memcmp(&a->field, &b->field, sizeof(a->field)) != 0) \
	FAIL("restored " #field " differs from the saved VM's"); } while (0)

/* The restored VM's state `b` against the source's `a`, read just before its save. */
static void compare(const struct dump *a, const struct dump *b)
{
	SAME(master);
	SAME(slave);
	SAME(ioapic);
	/* PIT: every field of every channel but count_load_time (the host time at which
	 * the count was loaded: KVM_SET_PIT2 loads it again, "now"). */
	for (int i = 0; i < 3; i++) {
		struct kvm_pit_channel_state x = a->pit.channels[i], y = b->pit.channels[i];
		x.count_load_time = y.count_load_time = 0;
		if (memcmp(&x, &y, sizeof(x)) != 0)
			FAIL("restored PIT channel %d differs from the saved VM's", i);
	}
	CHECK_EQ(a->pit.flags, b->pit.flags);
	/* The clock continues from the saved value: guest time stood still meanwhile. */
	if (b->clock.clock < a->clock.clock || b->clock.clock - a->clock.clock > 10 * 1000000000ULL)
		FAIL("restored kvmclock %llu ns, saved %llu ns", (unsigned long long)b->clock.clock,
		     (unsigned long long)a->clock.clock);
}

/* ---- the guest -------------------------------------------------------------------- */

#define ADDR(sym) ({ extern const uint8_t sym[]; (uint16_t)(sym - rm_vm_fields_start + LOAD); })
extern const uint8_t rm_vm_fields_start[];

/* The VM (irqchip and PIT) and its vcpu, the calling thread's. */
static int machine(void)
{
	int vm = vm_with_memory(MEM);
	OK(kvm_create_irqchip(vm));
	OK(kvm_create_pit2(vm, KVM_PIT_SPEAKER_DUMMY));   /* port 0x61 in the kernel */
	OK(kvm_create_vcpu(vm, 0));
	return vm;
}

#define EXPECT(port, value) do { uint32_t v_ = run_until_out_within(port, 5); \
	if (v_ != (uint32_t)(value)) FAIL("the guest reported 0x%x on port 0x%x, expected " \
	"0x%x (%s)", v_, port, (uint32_t)(value), #value); } while (0)

/* The guest from just after its port 0x10 to the end: every value it observes; the
 * kvmclock it reads must be at least CLOCK (the pvclock structure holds the time of its
 * last update) and at most 10 s more than `clock`, the VM's clock at the save. */
static void guest_observes(int vm, uint64_t clock)
{
	EXPECT(0xb0, MASTER_IMR);
	EXPECT(0xb1, SLAVE_IMR);
	EXPECT(0xb2, MASTER_ELCR);
	EXPECT(0xb3, SLAVE_ELCR);
	/* Read-back status of channel 0: output (bit 7, any), null count 0, lo/hi (3),
	 * mode 2, binary. */
	CHECK_EQ(run_until_out_within(0xb4, 5) & 0x7f, 0x34);
	CHECK_EQ(run_until_out_within(0xb5, 5) & 1, 1);     /* port 0x61: channel 2's gate */
	CHECK_EQ(run_until_out_within(0xb6, 5) >> 24 & 0xf, IOAPIC_ID);
	uint64_t t = run_until_out_within(0xb7, 5);
	t |= (uint64_t)run_until_out_within(0xb8, 5) << 32;
	if (t < CLOCK || t > clock + 10 * 1000000000ULL)
		FAIL("the guest's kvmclock reads %llu ns, the VM's clock was %llu ns",
		     (unsigned long long)t, (unsigned long long)clock);
	/* The IOAPIC's redirection of pin 5 reaches the guest's handler for 0x61. */
	run_until_out_within(0x30, 5);
	OK(kvm_irq_line(vm, PIN, 1));
	OK(kvm_irq_line(vm, PIN, 0));
	EXPECT(0xe0, 0x61);
	/* IRQ 3 through the PIC, at the master's base vector + 3. */
	run_until_out_within(0x31, 5);
	OK(kvm_irq_line(vm, 3, 1));
	OK(kvm_irq_line(vm, 3, 0));
	EXPECT(0xe0, MASTER_BASE + 3);
	run_until_out_within(0x3f, 5);
}

/* Sets the distinctive values; the guest is at its port 0x10. */
static void set_fields(int vm)
{
	struct kvm_irqchip c = { .chip_id = KVM_IRQCHIP_PIC_MASTER };
	OK(kvm_get_irqchip(vm, &c));
	c.chip.pic.irq_base = MASTER_BASE;
	c.chip.pic.imr = MASTER_IMR;
	c.chip.pic.elcr = MASTER_ELCR;
	c.chip.pic.auto_eoi = 1;
	OK(kvm_set_irqchip(vm, &c));
	c.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	OK(kvm_get_irqchip(vm, &c));
	c.chip.pic.irq_base = SLAVE_BASE;
	c.chip.pic.imr = SLAVE_IMR;
	c.chip.pic.elcr = SLAVE_ELCR;
	OK(kvm_set_irqchip(vm, &c));
	c.chip_id = KVM_IRQCHIP_IOAPIC;
	OK(kvm_get_irqchip(vm, &c));
	c.chip.ioapic.id = IOAPIC_ID;
	c.chip.ioapic.redirtbl[PIN].bits = 0;     /* fixed, physical, edge, unmasked */
	c.chip.ioapic.redirtbl[PIN].fields.vector = 0x61;
	c.chip.ioapic.redirtbl[PIN].fields.dest_id = 0;
	OK(kvm_set_irqchip(vm, &c));
	struct kvm_pit_state2 p;
	OK(kvm_get_pit2(vm, &p));
	p.channels[2].gate = 1;
	p.flags |= KVM_PIT_FLAGS_HPET_LEGACY;
	OK(kvm_set_pit2(vm, &p));
	struct kvm_clock_data clk = { .clock = CLOCK };
	OK(kvm_set_clock(vm, &clk));
}

static void load_guest(int vm)
{
	load_blob(vm, LOAD, BLOB(rm_vm_fields));
	uint16_t *ivt = real_mode_ivt(vm);
	ivt[0x61 * 2] = ADDR(vm_h61);
	ivt[(MASTER_BASE + 3) * 2] = ADDR(vm_h6b);
}

/* ---- blobs across processes ---------------------------------------------------------- */

static int restore(const char *path)
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	size_t vm_len, vcpu_len, n;
	uint8_t *vm_blob = get_record(f, &vm_len), *vcpu_blob = get_record(f, &vcpu_len), *mem = get_record(f, &n);
	CHECK_EQ(n, MEM);
	struct dump *before = get_record(f, &n), now;
	CHECK_EQ(n, sizeof(*before));
	fclose(f);

	int vm = machine();
	memcpy(kvm_guest_memory(vm, 0, MEM), mem, MEM);
	OK(kvm_restore_vm(vm, vm_blob, vm_len));
	OK(kvm_restore_vcpu(vcpu_blob, vcpu_len));
	take_dump(vm, &now);
	compare(before, &now);
	guest_observes(vm, before->clock.clock);
	end_vm(vm);
	free(vm_blob);
	free(vcpu_blob);
	free(mem);
	free(before);
	return 0;
}

int main(int argc, char **argv)
{
	require_kvm();
	deadline(20);      /* a lost interrupt hangs the guest */
	if (argc == 3 && strcmp(argv[1], "--restore") == 0)
		return restore(argv[2]);

	int vm = machine();
	/* The guest's CPUID offers kvmclock. */
	set_supported_cpuid();
	load_guest(vm);
	setup_unreal_mode(LOAD);
	run_until_out(0x10);
	set_fields(vm);

	struct dump before;
	take_dump(vm, &before);
	check_dump_has_fields(&before);
	size_t vm_len, vcpu_len;
	uint8_t *vm_blob = save_vm_blob(vm, &vm_len), *vcpu_blob = save_vcpu_blob(&vcpu_len);
	uint8_t *mem = malloc(MEM);
	CHECK(mem != NULL);
	memcpy(mem, kvm_guest_memory(vm, 0, MEM), MEM);
	/* The source goes on: the guest observes the same as after the restore. */
	guest_observes(vm, before.clock.clock);
	end_vm(vm);

	char path[] = "/tmp/libkvm-vm-fields-XXXXXX";
	WRITE_RECORDS(path, { vm_blob, vm_len }, { vcpu_blob, vcpu_len }, { mem, MEM },
		      { &before, sizeof(before) });

	pid_t pid;
	int status = run_self("snapshot_vm_fields", "--restore", path, &pid);
	unlink(path);
	CHECK_EQ(status, 0);
	printf("VM blob %zu bytes: PICs, IOAPIC, PIT and kvmclock restored in pid %d, read back and "
	       "observed by the guest\n", vm_len, (int)pid);
	free(vm_blob);
	free(vcpu_blob);
	free(mem);
	return 0;
}
