/* In-kernel PIC, IOAPIC and PIT state, interrupt status and GSI routing, seen by guests. */
#include "harness.h"

#define DONE 0x3f

/* Points real-mode interrupt vector `vec` at guest address `handler` (segment 0). */
static void set_ivt(int vm, int vec, uint16_t handler)
{
	uint16_t *ivt = kvm_guest_memory(vm, vec * 4, 4);
	CHECK(ivt != NULL);
	ivt[0] = handler;
	ivt[1] = 0;
}

static uint16_t label(const uint8_t *l, struct blob b, uint16_t load)
{
	return (uint16_t)(l - b.start + load);
}

/* kvm_get_irqchip / kvm_set_irqchip on the master PIC: a line the host raised is in the
 * IRR the guest reads, and the IMR the host set is the one the guest reads. */
static void pic(void)
{
	int vm = vm_with_memory(0x10000);
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_PIC_MASTER };
	CHECK_ERR(kvm_get_irqchip(vm, &chip), ENXIO);    /* no irqchip yet */
	OK(kvm_create_irqchip(vm));
	real_mode_vcpu(vm, 0, 0x1000, BLOB(rm_pic_read));

	OK(kvm_get_irqchip(vm, &chip));
	CHECK_EQ(chip.chip.pic.irr & 0x08, 0);
	OK(kvm_irq_line(vm, 3, 1));
	OK(kvm_get_irqchip(vm, &chip));
	CHECK_EQ(chip.chip.pic.irr & 0x08, 0x08);
	chip.chip.pic.imr = 0xa5;
	OK(kvm_set_irqchip(vm, &chip));

	CHECK_EQ(run_until_out(0x30) & 0x08, 0x08);     /* IRR as the guest reads it */
	CHECK_EQ(run_until_out(0x31), 0xa5);            /* IMR */
	run_until_out(DONE);

	chip.chip_id = 7;
	CHECK_ERR(kvm_get_irqchip(vm, &chip), EINVAL);
	CHECK_ERR(kvm_set_irqchip(vm, &chip), EINVAL);
	CHECK_ERR(kvm_get_irqchip(vm, NULL), EFAULT);
	CHECK_ERR(kvm_set_irqchip(vm, NULL), EFAULT);
	CHECK_ERR(kvm_get_irqchip(-1, &chip), EBADF);
	end_vm(vm);
}

static int line_status(int vm, uint32_t gsi, int level)
{
	struct kvm_irq_level l = { .irq = gsi, .level = (uint32_t)level };
	OK(kvm_irq_line_status(vm, &l));
	return l.status;
}

static void set_ioapic_pin(int vm, int pin, uint64_t bits)
{
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };
	OK(kvm_get_irqchip(vm, &chip));
	chip.chip.ioapic.redirtbl[pin].bits = bits;
	OK(kvm_set_irqchip(vm, &chip));
	struct kvm_irqchip back = { .chip_id = KVM_IRQCHIP_IOAPIC };
	OK(kvm_get_irqchip(vm, &back));
	CHECK_EQ(back.chip.ioapic.redirtbl[pin].bits, bits);
}

/* The IOAPIC pin the host unmasks with kvm_set_irqchip delivers, kvm_irq_line_status
 * says so, and GSIs routed with kvm_set_gsi_routing reach an IOAPIC pin and the LAPIC
 * (MSI): the guest's handler for each vector runs. */
static void ioapic_and_routing(void)
{
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	struct blob b = BLOB(rm_irq_wait);
	load_blob(vm, 0x1000, b);
	extern const uint8_t irq_h41[], irq_h52[], irq_h63[];
	set_ivt(vm, 0x41, label(irq_h41, b, 0x1000));
	set_ivt(vm, 0x52, label(irq_h52, b, 0x1000));
	set_ivt(vm, 0x63, label(irq_h63, b, 0x1000));
	OK(kvm_create_vcpu(vm, 0));
	setup_real_mode(0x1000);
	struct kvm_lapic_state lapic;
	OK(kvm_get_lapic(&lapic));
	*(uint32_t *)&lapic.regs[0xf0] = 0x1ff;         /* software-enable the LAPIC */
	OK(kvm_set_lapic(&lapic));

	/* Pin 17 (IOAPIC only) masked: the interrupt goes nowhere. */
	set_ioapic_pin(vm, 17, 0x41 | 1ULL << 16);
	CHECK(line_status(vm, 17, 1) < 0);
	line_status(vm, 17, 0);
	/* Unmasked, fixed, edge, to APIC ID 0: delivered to one vcpu, handled. */
	set_ioapic_pin(vm, 17, 0x41);
	CHECK_EQ(line_status(vm, 17, 1), 1);
	CHECK_EQ(run_until_out(0x30), 0x41);
	line_status(vm, 17, 0);

	/* A table of two routes replaces the default one: GSI 40 -> IOAPIC pin 17 (now
	 * vector 0x63), GSI 41 -> an MSI for vector 0x52. */
	set_ioapic_pin(vm, 17, 0x63);
	struct {
		struct kvm_irq_routing r;
		struct kvm_irq_routing_entry e[2];
	} t;
	memset(&t, 0, sizeof(t));
	t.r.nr = 2;
	t.e[0].gsi = 40;
	t.e[0].type = KVM_IRQ_ROUTING_IRQCHIP;
	t.e[0].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
	t.e[0].u.irqchip.pin = 17;
	t.e[1].gsi = 41;
	t.e[1].type = KVM_IRQ_ROUTING_MSI;
	t.e[1].u.msi.address_lo = 0xfee00000;
	t.e[1].u.msi.data = 0x52;
	OK(kvm_set_gsi_routing(vm, &t.r));

	OK(kvm_irq_line(vm, 41, 1));
	CHECK_EQ(run_until_out(0x30), 0x52);
	CHECK_EQ(line_status(vm, 40, 1), 1);
	CHECK_EQ(run_until_out(0x30), 0x63);
	/* GSI 17 has no route any more. */
	CHECK(line_status(vm, 17, 1) < 0);

	t.r.flags = 1;
	CHECK_ERR(kvm_set_gsi_routing(vm, &t.r), EINVAL);
	t.r.flags = 0;
	t.r.nr = 1 << 20;
	CHECK_ERR(kvm_set_gsi_routing(vm, &t.r), EINVAL);
	CHECK_ERR(kvm_set_gsi_routing(vm, NULL), EFAULT);
	CHECK_ERR(kvm_set_gsi_routing(-1, &t.r), EBADF);
	CHECK_ERR(kvm_irq_line_status(vm, NULL), EFAULT);
	struct kvm_irq_level l = { .irq = 1, .level = 1 };
	CHECK_ERR(kvm_irq_line_status(-1, &l), EBADF);
	end_vm(vm);

	/* Without an in-kernel irqchip there is nothing to route to. */
	vm = vm_with_memory(0x10000);
	CHECK_ERR(kvm_irq_line_status(vm, &l), ENXIO);
	t.r.nr = 2;
	CHECK_ERR(kvm_set_gsi_routing(vm, &t.r), EINVAL);
	OK(kvm_destroy_vm(vm));
}

/* kvm_get_pit2 sees the channel the guest programmed; the channel mode the host set with
 * kvm_set_pit2 is what the guest's read-back command returns. */
static void pit(void)
{
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	struct kvm_pit_state2 p;
	memset(&p, 0, sizeof(p)); /* passed to kvm_set_pit2 below before any get fills it */
	CHECK_ERR(kvm_get_pit2(vm, &p), ENXIO);
	CHECK_ERR(kvm_set_pit2(vm, &p), ENXIO);
	OK(kvm_create_pit2(vm, 0));
	real_mode_vcpu(vm, 0, 0x1000, BLOB(rm_pit));

	OK(kvm_get_pit2(vm, &p));
	p.channels[1].mode = 3;
	p.channels[1].rw_mode = 3;
	p.channels[1].bcd = 0;
	OK(kvm_set_pit2(vm, &p));

	CHECK_EQ(run_until_out(0x30), 0x12);
	OK(kvm_get_pit2(vm, &p));
	CHECK_EQ(p.channels[0].count, 0x1234);
	CHECK_EQ(p.channels[0].mode, 2);
	CHECK_EQ(p.channels[0].rw_mode, 3);
	CHECK_EQ(run_until_out(0x31) & 0x3f, 3 << 4 | 3 << 1);
	run_until_out(DONE);

	CHECK_ERR(kvm_get_pit2(vm, NULL), EFAULT);
	CHECK_ERR(kvm_set_pit2(vm, NULL), EFAULT);
	CHECK_ERR(kvm_get_pit2(-1, &p), EBADF);
	end_vm(vm);
}

int main(void)
{
	require_kvm();
	pic();
	ioapic_and_routing();
	pit();
	return 0;
}
