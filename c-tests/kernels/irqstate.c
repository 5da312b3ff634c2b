/* The interrupt hardware as a multiboot kernel finds it, read before anything changes it:
 * what `qemu-system-x86_64 -M pc -kernel` (SeaBIOS) hands over, measured there (see
 * examples/kvmrun/machine.c): PIC masks 0xb8/0x8e, ELCR, no interrupt in service, PIT
 * channel 0 counting in mode 2, the boot vcpu's local APIC (LINT0 ExtINT, LINT1 NMI),
 * and the IOAPIC with every pin masked. */
#include "lib.h"

/* The in-service register of the PIC at `port`, then back to reading the IRR. */
static uint8_t pic_isr(uint16_t port)
{
	outb(port, 0x0b);
	uint8_t v = inb(port);
	outb(port, 0x0a);
	return v;
}

/* PIT channel `ch`: its status byte (read-back command) and a latched count. */
static uint8_t pit_status(unsigned ch)
{
	outb(0x43, (uint8_t)(0xe0 | (2u << ch)));
	return inb((uint16_t)(0x40 + ch));
}

static uint16_t pit_count(unsigned ch)
{
	outb(0x43, (uint8_t)(ch << 6));
	uint8_t lo = inb((uint16_t)(0x40 + ch));
	return (uint16_t)(lo | inb((uint16_t)(0x40 + ch)) << 8);
}

static uint32_t ioapic_read(unsigned reg)
{
	wr32(0xfec00000, reg);
	return rd32(0xfec00010);
}

int kmain(uint32_t magic, const struct mb_info *mbi);
int kmain(uint32_t magic, const struct mb_info *mbi)
{
	(void)magic;
	(void)mbi;
	/* Read first, check after: checking prints, and printing touches nothing here. */
	uint8_t imr0 = inb(0x21), imr1 = inb(0xa1), isr0 = pic_isr(0x20), isr1 = pic_isr(0xa0);
	uint8_t elcr0 = inb(0x4d0), elcr1 = inb(0x4d1);
	uint8_t pit0 = pit_status(0);
	uint16_t c1 = pit_count(0);
	for (volatile unsigned i = 0; i < 100000; i++)
		;
	uint16_t c2 = pit_count(0);
	uint32_t svr = lapic_read(0xf0), lint0 = lapic_read(0x350), lint1 = lapic_read(0x360);
	uint32_t lvtt = lapic_read(0x320), lvterr = lapic_read(0x370), tpr = lapic_read(0x80);
	uint32_t ioapic_id = ioapic_read(0), ioapic_ver = ioapic_read(1);
	unsigned unmasked = 0;
	for (unsigned pin = 0; pin < 24; pin++)
		if (ioapic_read(0x10 + 2 * pin) != 0x10000 || ioapic_read(0x11 + 2 * pin) != 0)
			unmasked |= 1u << pin;

	CHECK(imr0 == 0xb8, "master PIC mask 0xb8: IRQ 0, 1, 2 (cascade) and 6 open (0x%x)", imr0);
	CHECK(imr1 == 0x8e, "slave PIC mask 0x8e: IRQ 8, 12, 13 and 14 open (0x%x)", imr1);
	CHECK(isr0 == 0 && isr1 == 0, "no interrupt in service (0x%x 0x%x)", isr0, isr1);
	CHECK(elcr0 == 0x00 && elcr1 == 0x0c, "ELCR: IRQ 10 and 11 level-triggered (0x%x 0x%x)", elcr0, elcr1);
	CHECK((pit0 & 0x3f) == 0x34, "PIT channel 0: lobyte/hibyte, mode 2, binary (status 0x%x)", pit0);
	CHECK(c1 != c2, "PIT channel 0 counts (0x%x, 0x%x)", c1, c2);
	CHECK(svr == 0x1ff, "local APIC enabled, spurious vector 0xff (SVR 0x%x)", svr);
	CHECK(lint0 == 0x8700, "LVT LINT0 0x8700: ExtINT, level (the PIC) (0x%x)", lint0);
	CHECK(lint1 == 0x8400, "LVT LINT1 0x8400: NMI (0x%x)", lint1);
	CHECK(lvtt == 0x10000 && lvterr == 0x10000, "LVT timer and error masked (0x%x 0x%x)", lvtt, lvterr);
	CHECK(tpr == 0, "TPR 0 (0x%x)", tpr);
	CHECK((ioapic_id >> 24 & 0xf) == 0, "IOAPIC ID 0 (0x%x)", ioapic_id);
	CHECK((ioapic_ver >> 16 & 0xff) == 23, "IOAPIC: 24 pins (version register 0x%x)", ioapic_ver);
	CHECK(unmasked == 0, "IOAPIC: every pin masked, destination 0 (not: 0x%x)", unmasked);
	return finish();
}
