/* A kernel that raises ISA IRQ 11 through pc-testdev (port 0x200b), then idles with
 * sti; hlt, as one written for `qemu-system-x86_64 -M pc -kernel` does. There the BIOS
 * left the PIT running on IRQ 0 (vector 0x08) and IRQ 11 masked: the hlt wakes with the
 * timer, IRQ 11 waits in the slave PIC's IRR, and once the kernel opens its line the
 * next sti; hlt takes vector 0x73. */
#include "lib.h"

static volatile unsigned wakes, first_vector = 0xffff, timer, irq11;

static void on_irq(unsigned v)
{
	if (!wakes++)
		first_vector = v;
	if (v == 0x08)
		timer++;
	if (v == 0x73) {
		irq11++;
		outb(0x200b, 0); /* the device's acknowledgement: its line goes low */
	}
	if (v >= 0x70 && v < 0x78)
		outb(0xa0, 0x20);
	if (v >= 0x08 && v < 0x10)
		outb(0x20, 0x20);
}

static void sti_hlt(void)
{
	__asm__ volatile("sti; hlt; cli" ::: "memory");
}

int kmain(uint32_t magic, const struct mb_info *mbi);
int kmain(uint32_t magic, const struct mb_info *mbi)
{
	(void)magic;
	(void)mbi;
	idt_init();
	irq_handler = on_irq;
	outb(0x200b, 1);
	kputs("IRQ 11 raised; sti; hlt\n");
	sti_hlt();
	CHECK(wakes > 0, "sti; hlt woke up");
	CHECK(first_vector == 0x08, "the PIT's IRQ 0 (vector 0x08) woke it (0x%x)", first_vector);

	outb(0xa0, 0x0a);
	uint8_t irr = inb(0xa0);
	CHECK(irq11 == 0 && (irr & 0x08), "IRQ 11 masked, pending in the slave's IRR (0x%x)", irr);

	outb(0xa1, inb(0xa1) & ~0x08);
	for (unsigned i = 0; i < 100 && !irq11; i++)
		sti_hlt();
	CHECK(irq11 == 1, "IRQ 11 unmasked: sti; hlt takes slave PIC vector 0x73 (%u)", irq11);
	unsigned t = timer;
	for (unsigned i = 0; i < 100 && timer < t + 3; i++)
		sti_hlt();
	CHECK(irq11 == 1 && timer >= t + 3, "its line low, no second IRQ 11 in 3 timer ticks (%u)", irq11);
	outb(0xa1, inb(0xa1) | 0x08);
	return finish();
}
