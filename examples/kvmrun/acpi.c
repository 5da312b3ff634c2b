/* ACPI tables as a PC BIOS leaves them: the RSDP (revision 0) in the BIOS area, where
 * guests search 0xe0000-0xfffff for it, pointing at an RSDT that lists the FADT and the
 * MADT. The FADT points at the FACS, an empty DSDT and the PM registers at 0x600 (event),
 * 0x604 (control) and 0x608 (the 24-bit PM timer). The MADT lists one local APIC per vcpu
 * (APIC ID = vcpu number), the IOAPIC, the PIT's interrupt override (IRQ 0 -> GSI 2, as
 * QEMU routes it) and LINT1 as NMI. All tables live in 0xf0000-0xf0fff. */
#include "kvmrun.h"
#include <errno.h>
#include <string.h>

#define RSDP_ADDR 0xf0000u
#define RSDT_ADDR 0xf0040u
#define FADT_ADDR 0xf0080u
#define FACS_ADDR 0xf0100u /* 64-byte aligned */
#define DSDT_ADDR 0xf0140u
#define MADT_ADDR 0xf0200u
#define TABLES_END 0xf1000u

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)(0 - sum);
}

/* The common 36-byte header; the checksum is filled in by finish(). */
static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, "KVMRUN", 6);
	memcpy(t + 16, "KVMRUN  ", 8);
	put32(t + 24, 1);
	memcpy(t + 28, "KVMR", 4);
	put32(t + 32, 1);
}

static void finish(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = checksum(t, len);
}

int acpi_build(const struct machine *m)
{
	uint8_t *area = kvm_guest_memory(m->vm, BIOS_AREA, TABLES_END - BIOS_AREA);
	if (!area) {
		complain("ACPI tables: guest memory at 0x%x: %s", BIOS_AREA, strerror(errno));
		return -1;
	}
	memset(area, 0, TABLES_END - BIOS_AREA);
#define AT(addr) (area + ((addr) - BIOS_AREA))

	uint8_t *rsdp = AT(RSDP_ADDR);
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, "KVMRUN", 6);
	rsdp[15] = 0; /* revision 0: RSDT only */
	put32(rsdp + 16, RSDT_ADDR);
	rsdp[8] = checksum(rsdp, 20);

	uint8_t *rsdt = AT(RSDT_ADDR);
	header(rsdt, "RSDT", 36 + 8, 1);
	put32(rsdt + 36, FADT_ADDR);
	put32(rsdt + 40, MADT_ADDR);
	finish(rsdt, 36 + 8);

	uint8_t *fadt = AT(FADT_ADDR);
	header(fadt, "FACP", 116, 1);
	put32(fadt + 36, FACS_ADDR);
	put32(fadt + 40, DSDT_ADDR);
	fadt[44] = 1;                  /* INT_MODEL: APIC */
	put16(fadt + 46, 9);           /* SCI_INT (never raised) */
	put32(fadt + 48, 0);           /* SMI_CMD 0: always in ACPI mode */
	put32(fadt + 56, PM_BASE);     /* PM1a_EVT_BLK */
	put32(fadt + 64, PM_BASE + 4); /* PM1a_CNT_BLK */
	put32(fadt + 76, PM_BASE + 8); /* PM_TMR_BLK */
	fadt[88] = 4;                  /* PM1_EVT_LEN */
	fadt[89] = 2;                  /* PM1_CNT_LEN */
	fadt[91] = 4;                  /* PM_TMR_LEN */
	put16(fadt + 96, 0xfff);       /* P_LVL2_LAT: no C2 */
	put16(fadt + 98, 0xfff);       /* P_LVL3_LAT: no C3 */
	/* WBINVD, PROC_C1, no fixed power or sleep button; TMR_VAL_EXT clear: 24 bits. */
	put32(fadt + 112, 1u << 0 | 1u << 2 | 1u << 4 | 1u << 5);
	finish(fadt, 116);

	uint8_t *facs = AT(FACS_ADDR);
	memcpy(facs, "FACS", 4);
	put32(facs + 4, 64);

	uint8_t *dsdt = AT(DSDT_ADDR);
	header(dsdt, "DSDT", 36, 1);
	finish(dsdt, 36);

	uint8_t *madt = AT(MADT_ADDR);
	uint32_t len = 44;
	put32(madt + 36, LAPIC_ADDR);
	put32(madt + 40, 1); /* PCAT_COMPAT: there are 8259 PICs */
	for (unsigned i = 0; i < m->ncpus; i++) {
		uint8_t *e = madt + len;
		e[0] = 0; /* processor local APIC */
		e[1] = 8;
		e[2] = (uint8_t)i; /* ACPI processor UID */
		e[3] = (uint8_t)i; /* APIC ID */
		put32(e + 4, 1);   /* enabled */
		len += 8;
	}
	uint8_t *io = madt + len;
	io[0] = 1; /* IOAPIC */
	io[1] = 12;
	io[2] = 0; /* IOAPIC ID */
	put32(io + 4, IOAPIC_ADDR);
	put32(io + 8, 0); /* GSI base */
	len += 12;
	static const struct { uint8_t irq, gsi; uint16_t flags; } overrides[] = {
		{ 0, 2, 0 },      /* the PIT on IOAPIC pin 2 */
		{ 9, 9, 0x000d }, /* SCI: level, active high */
	};
	for (unsigned i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++) {
		uint8_t *e = madt + len;
		e[0] = 2; /* interrupt source override */
		e[1] = 10;
		e[2] = 0; /* ISA */
		e[3] = overrides[i].irq;
		put32(e + 4, overrides[i].gsi);
		put16(e + 8, overrides[i].flags);
		len += 10;
	}
	uint8_t *nmi = madt + len;
	nmi[0] = 4; /* local APIC NMI */
	nmi[1] = 6;
	nmi[2] = 0xff; /* all processors */
	put16(nmi + 3, 0);
	nmi[5] = 1; /* LINT1 */
	len += 6;
	header(madt, "APIC", len, 1);
	finish(madt, len);
	if (MADT_ADDR + len > TABLES_END) {
		complain("ACPI tables: the MADT does not fit");
		return -1;
	}
	return 0;
#undef AT
}
