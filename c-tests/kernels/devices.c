/* Each device kvmrun provides, checked from inside the guest: UART, fw_cfg, pc-testdev
 * (scratch ports, page flush, IRQ lines, MMIO window), PCI configuration ports, the ACPI
 * PM registers and timer, the ACPI tables, the PIC vector bases a BIOS sets, and QEMU's
 * interrupt routing (PIT on IOAPIC pin 2). Expectations from the command line:
 * mem=<MiB> cpus=<n>. */
#include "lib.h"

static const char *cmdline;

static void uart(void)
{
	CHECK((inb(0x3fd) & 0x60) == 0x60, "UART LSR: transmitter empty (0x%x)", inb(0x3fd));
	CHECK((inb(0x3fa) & 0x0f) == 0x01, "UART IIR: no interrupt pending");
	outb(0x3ff, 0x5a);
	CHECK(inb(0x3ff) == 0x5a, "UART scratch register");
	uint8_t lcr = inb(0x3fb);
	outb(0x3fb, 0x80 | lcr);
	outb(0x3f8, 0x01);
	outb(0x3f9, 0x00);
	int divisor = inb(0x3f8) == 0x01 && inb(0x3f9) == 0x00;
	outb(0x3fb, 0x03);
	CHECK(divisor, "UART divisor latch (115200 baud)");
	CHECK(inb(0x3fb) == 0x03, "UART LCR 8N1");
	/* no printing while in loopback: it would go to the receiver */
	outb(0x3fc, 0x10 | 0x0b);
	outb(0x3f8, 'Z');
	int loop = (inb(0x3fd) & 1) && inb(0x3f8) == 'Z' && !(inb(0x3fd) & 1);
	uint8_t msr = inb(0x3fe);
	outb(0x3fc, 0x03);
	CHECK(loop, "UART loopback");
	CHECK((msr & 0xf0) == 0xb0, "UART loopback modem status (0x%x)", msr);
	kputs("UART: this line went through THR\n");
}

static uint64_t fw_cfg(uint16_t key, unsigned len)
{
	outw(0x510, key);
	uint64_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)inb(0x511) << (8 * i);
	return v;
}

static void fwcfg(void)
{
	uint32_t mem = arg_u32(cmdline, "mem", 128), cpus = arg_u32(cmdline, "cpus", 1);
	CHECK(fw_cfg(0, 4) == 0x554d4551, "fw_cfg signature \"QEMU\"");
	CHECK(fw_cfg(1, 4) & 1, "fw_cfg ID: traditional interface");
	uint64_t ram = fw_cfg(3, 8);
	CHECK(ram == (uint64_t)mem << 20, "fw_cfg RAM size %u MiB (%u)", mem, (uint32_t)(ram >> 20));
	CHECK(fw_cfg(5, 2) == cpus, "fw_cfg CPU count %u", cpus);
	CHECK(fw_cfg(0x0f, 2) == cpus, "fw_cfg max CPU count %u", cpus);
	CHECK(fw_cfg(0x1234, 8) == 0, "fw_cfg unknown key reads 0");
	CHECK(fw_cfg(5, 4) == cpus, "fw_cfg reads 0 past an item's end");
}

static uint8_t flush_page[4096] __attribute__((aligned(4096)));

static void testdev(void)
{
	outl(0xe0, 0x12345678);
	CHECK(inl(0xe0) == 0x12345678, "pc-testdev 0xe0 32-bit");
	CHECK(inb(0xe1) == 0x56 && inw(0xe2) == 0x1234, "pc-testdev 0xe0 narrow reads");
	outb(0xe3, 0xab);
	CHECK(inl(0xe0) == 0xab345678, "pc-testdev 0xe3 byte write (0x%x)", inl(0xe0));
	outw(0xea, 0xbeef);
	CHECK(inl(0xe8) == 0xbeef5678 && inl(0xe0) == 0xbeef5678, "pc-testdev byte port 0xe8");

	wr32(0xff000000, 0xdeadbeef);
	wr16(0xff00fffe, 0x1234);
	wr8(0xff008000, 0x77);
	CHECK(rd32(0xff000000) == 0xdeadbeef && rd8(0xff000001) == 0xbe, "pc-testdev MMIO 32/8-bit");
	CHECK(rd16(0xff00fffe) == 0x1234 && rd8(0xff00ffff) == 0x12, "pc-testdev MMIO end of window");
	CHECK(rd8(0xff008000) == 0x77 && rd8(0xff008001) == 0, "pc-testdev MMIO holds what was written");
	static const char msg[] = "a string copied with rep movsb";
	void *dst = (void *)0xff004000;
	const void *src = msg;
	size_t n = sizeof(msg);
	__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
	int same = 1;
	for (unsigned i = 0; i < sizeof(msg); i++)
		same &= rd8(0xff004000 + i) == (uint8_t)msg[i];
	CHECK(same, "pc-testdev MMIO rep movsb");

	flush_page[0] = 0x5a;
	flush_page[4095] = 0xa5;
	outl(0xe4, (uint32_t)(uintptr_t)flush_page);
	CHECK(flush_page[0] == 0x5a && flush_page[4095] == 0xa5, "pc-testdev page flush keeps the page");
}

static void pci_and_pm(void)
{
	outl(0xcf8, 0x80000000);
	CHECK(inl(0xcf8) == 0x80000000, "PCI config address register");
	CHECK(inl(0xcfc) == 0xffffffff && inw(0xcfe) == 0xffff, "PCI config data: no device");
	outl(0xcf8, 0x80001800);
	CHECK(inl(0xcfc) == 0xffffffff, "PCI config data: no device at 0:3.0");
	CHECK(inb(0x2fd) == 0xff, "unassigned port reads all-ones");

	CHECK(inw(0x604) & 1, "PM1a control: SCI_EN");
	uint32_t t0 = inl(0x608), t1 = t0;
	for (unsigned i = 0; i < 100000 && t1 == t0; i++)
		t1 = inl(0x608);
	CHECK(t0 < (1u << 24) && t1 < (1u << 24) && t1 != t0, "PM timer counts (0x%x -> 0x%x)", t0, t1);
}

static int checksum_ok(const uint8_t *p, uint32_t len)
{
	uint8_t s = 0;
	while (len--)
		s = (uint8_t)(s + *p++);
	return s == 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void acpi(void)
{
	uint32_t cpus = arg_u32(cmdline, "cpus", 1);
	const uint8_t *rsdp = 0;
	for (uintptr_t a = 0xe0000; a < 0x100000 && !rsdp; a += 16)
		if (memcmp((const void *)a, "RSD PTR ", 8) == 0)
			rsdp = (const uint8_t *)a;
	CHECK(rsdp != 0, "RSDP in the BIOS area at 0x%x", (uint32_t)(uintptr_t)rsdp);
	if (!rsdp)
		return;
	CHECK(checksum_ok(rsdp, 20), "RSDP checksum");
	const uint8_t *rsdt = (const uint8_t *)(uintptr_t)le32(rsdp + 16);
	CHECK(memcmp(rsdt, "RSDT", 4) == 0 && checksum_ok(rsdt, le32(rsdt + 4)), "RSDT");
	const uint8_t *fadt = 0, *madt = 0;
	for (uint32_t off = 36; off + 4 <= le32(rsdt + 4); off += 4) {
		const uint8_t *t = (const uint8_t *)(uintptr_t)le32(rsdt + off);
		if (memcmp(t, "FACP", 4) == 0)
			fadt = t;
		if (memcmp(t, "APIC", 4) == 0)
			madt = t;
	}
	CHECK(fadt && checksum_ok(fadt, le32(fadt + 4)), "FADT listed, checksum");
	CHECK(madt && checksum_ok(madt, le32(madt + 4)), "MADT listed, checksum");
	if (!fadt || !madt)
		return;
	CHECK(le32(fadt + 76) == 0x608 && fadt[91] == 4, "FADT: PM timer at 0x608");
	CHECK(le32(fadt + 64) == 0x604 && le32(fadt + 56) == 0x600, "FADT: PM1a blocks at 0x600/0x604");
	const uint8_t *facs = (const uint8_t *)(uintptr_t)le32(fadt + 36);
	CHECK(memcmp(facs, "FACS", 4) == 0 && le32(facs + 4) >= 64 && !((uintptr_t)facs & 63), "FACS");
	const uint8_t *dsdt = (const uint8_t *)(uintptr_t)le32(fadt + 40);
	CHECK(memcmp(dsdt, "DSDT", 4) == 0 && checksum_ok(dsdt, le32(dsdt + 4)), "DSDT");

	CHECK(le32(madt + 36) == 0xfee00000, "MADT: local APIC address");
	uint32_t nlapic = 0, ids = 0, ioapic = 0, pit_override = 0;
	for (uint32_t off = 44; off + 2 <= le32(madt + 4) && madt[off + 1]; off += madt[off + 1]) {
		const uint8_t *e = madt + off;
		if (e[0] == 0 && (le32(e + 4) & 1)) {
			nlapic++;
			if (e[3] < 32)
				ids |= 1u << e[3];
		}
		if (e[0] == 1 && le32(e + 4) == 0xfec00000 && le32(e + 8) == 0)
			ioapic++;
		if (e[0] == 2 && e[3] == 0 && le32(e + 4) == 2)
			pit_override = 1;
	}
	CHECK(nlapic == cpus && ids == (cpus >= 32 ? 0xffffffffu : (1u << cpus) - 1),
	      "MADT: %u local APICs, IDs 0-%u (%u)", cpus, cpus - 1, nlapic);
	CHECK(ioapic == 1, "MADT: the IOAPIC at 0xfec00000");
	CHECK(pit_override, "MADT: IRQ 0 -> GSI 2 override");
}

/* ---- interrupts ------------------------------------------------------------------- */

static volatile unsigned irqs, last_vector, raised;

/* Raises pc-testdev line `n`; the handler lowers it, as a device's acknowledgement does
 * (IRQ 10 and 11 are level-triggered, as the BIOS leaves the ELCR). */
static void raise_line(unsigned n)
{
	raised = n;
	outb((uint16_t)(0x2000 + n), 1);
}

static void on_irq(unsigned v)
{
	last_vector = v;
	irqs++;
	outb((uint16_t)(0x2000 + raised), 0);
	if (v >= 0x70 && v < 0x78)
		outb(0xa0, 0x20);
	if ((v >= 0x08 && v < 0x10) || (v >= 0x70 && v < 0x78))
		outb(0x20, 0x20);
	else
		lapic_write(0xb0, 0);
}

/* Waits (interrupts on) up to about a second of PM timer for an interrupt. */
static int wait_irq(void)
{
	uint32_t start = inl(0x608);
	sti();
	while (!irqs && ((inl(0x608) - start) & 0xffffff) < 3579545)
		;
	cli();
	return irqs != 0;
}

static void ioapic_route(unsigned pin, uint32_t low)
{
	wr32(0xfec00000, 0x10 + 2 * pin + 1);
	wr32(0xfec00010, 0); /* destination APIC ID 0 */
	wr32(0xfec00000, 0x10 + 2 * pin);
	wr32(0xfec00010, low);
}

static void interrupts(void)
{
	/* The BIOS left the timer and other lines open (irqstate.c checks that state): only
	 * the cascade stays open here, and each check opens its own line. */
	outb(0x21, 0xfb);
	outb(0xa1, 0xff);
	idt_init();
	irq_handler = on_irq;

	outb(0x21, 0xfb & ~(1u << 3));
	irqs = 0;
	raise_line(3);
	int got = wait_irq();
	CHECK(got && last_vector == 0x0b, "pc-testdev IRQ 3 -> master PIC vector 0x0b (0x%x)", last_vector);

	outb(0xa1, 0xff & ~(1u << 2));
	irqs = 0;
	raise_line(10);
	got = wait_irq();
	CHECK(got && last_vector == 0x72, "pc-testdev IRQ 10 -> slave PIC vector 0x72 (0x%x)", last_vector);
	outb(0x21, 0xfb);
	outb(0xa1, 0xff);

	ioapic_route(5, 0x45);
	irqs = 0;
	raise_line(5);
	got = wait_irq();
	ioapic_route(5, 1u << 16);
	CHECK(got && last_vector == 0x45, "pc-testdev IRQ 5 -> IOAPIC pin 5 (0x%x)", last_vector);

	/* The PIT (GSI 0) reaches IOAPIC pin 2, as on QEMU: a one-shot count. */
	ioapic_route(2, 0x50);
	irqs = 0;
	outb(0x43, 0x30);
	outb(0x40, 0x00);
	outb(0x40, 0x10);
	got = wait_irq();
	ioapic_route(2, 1u << 16);
	CHECK(got && last_vector == 0x50, "PIT -> IOAPIC pin 2 (0x%x)", last_vector);
}

int kmain(uint32_t magic, const struct mb_info *mbi);
int kmain(uint32_t magic, const struct mb_info *mbi)
{
	(void)magic;
	cmdline = (const char *)(uintptr_t)mbi->cmdline;
	uart();
	fwcfg();
	testdev();
	pci_and_pm();
	acpi();
	interrupts();
	return finish();
}
