/* The devices, at the addresses QEMU's pc machine gives them:
 *   0x3f8-0x3ff  16550 UART (COM1): output to stdout, no input, no interrupts
 *   0xf4-0xf7    isa-debug-exit (iobase=0xf4, iosize=4): kvmrun exits (value << 1) | 1
 *   0x510/0x511  fw_cfg, selector and data (signature, ID, RAM size, CPU counts)
 *   0xe0-0xeb    pc-testdev scratch register (0xe0, and 0xe8 byte-wise), page flush (0xe4)
 *   0x2000-0x2017 pc-testdev interrupt lines (GSIs 0-23 of the in-kernel irqchip)
 *   0xff000000   pc-testdev 64 KiB RAM-like MMIO window
 *   0x600-0x60b  ACPI PM1a event and control registers, PM timer (3.579545 MHz, 24 bits)
 *   0xcf8/0xcfc  PCI configuration mechanism #1 with no device: data reads all-ones
 *   0x92         port A reads A20 enabled
 * Other ports read all-ones and ignore writes; other MMIO reads 0 and ignores writes, as
 * unassigned addresses do on QEMU. The PICs, PIT, IOAPIC and local APICs are KVM's. */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const struct machine *mach;

/* ---- 16550 UART ----------------------------------------------------------------- */

#define UART_BASE 0x3f8
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10

static struct {
	uint8_t rbr, ier, fcr, lcr, mcr, lsr_dr, scr, dll, dlm;
	size_t len;
	char out[512];
} uart = { .dll = 12 }; /* 9600 baud, as a BIOS leaves it */

static void uart_flush_locked(void)
{
	size_t done = 0;
	while (done < uart.len) {
		ssize_t n = write(STDOUT_FILENO, uart.out + done, uart.len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* stdout is gone: drop the output */
		done += (size_t)n;
	}
	uart.len = 0;
}

static void uart_write(unsigned reg, uint8_t v)
{
	int dlab = uart.lcr & 0x80;
	switch (reg) {
	case 0:
		if (dlab) {
			uart.dll = v;
		} else if (uart.mcr & MCR_LOOP) {
			uart.rbr = v;
			uart.lsr_dr = 1;
		} else {
			uart.out[uart.len++] = (char)v;
			if (v == '\n' || uart.len == sizeof(uart.out))
				uart_flush_locked();
		}
		break;
	case 1:
		if (dlab)
			uart.dlm = v;
		else
			uart.ier = v & 0x0f;
		break;
	case 2:
		uart.fcr = v & 0xc9;
		break;
	case 3:
		uart.lcr = v;
		break;
	case 4:
		uart.mcr = v & 0x1f;
		break;
	case 7:
		uart.scr = v;
		break;
	}
}

static uint8_t uart_read(unsigned reg)
{
	int dlab = uart.lcr & 0x80;
	switch (reg) {
	case 0:
		if (dlab)
			return uart.dll;
		uart.lsr_dr = 0;
		return uart.rbr;
	case 1:
		return dlab ? uart.dlm : uart.ier;
	case 2:
		return (uart.fcr & 1) ? 0xc1 : 0x01; /* no interrupt pending */
	case 3:
		return uart.lcr;
	case 4:
		return uart.mcr;
	case 5:
		return LSR_THRE | LSR_TEMT | (uart.lsr_dr ? LSR_DR : 0);
	case 6:
		if (uart.mcr & MCR_LOOP) /* the modem outputs fed back to the inputs */
			return (uint8_t)((uart.mcr & 0x02 ? 0x10 : 0) | (uart.mcr & 0x01 ? 0x20 : 0) |
					 (uart.mcr & 0x04 ? 0x40 : 0) | (uart.mcr & 0x08 ? 0x80 : 0));
		return 0xb0; /* DCD, DSR, CTS */
	default:
		return uart.scr;
	}
}

void devices_flush(void)
{
	pthread_mutex_lock(&lock);
	uart_flush_locked();
	pthread_mutex_unlock(&lock);
}

/* ---- fw_cfg ------------------------------------------------------------------------ */

#define FW_CFG_SELECT 0x510
#define FW_CFG_DATA 0x511

static struct fw_item {
	uint16_t key;
	uint8_t len;
	uint8_t data[8];
} fw_items[6];
static unsigned fw_nitems;
static uint16_t fw_key;
static uint32_t fw_offset;

static void fw_add(uint16_t key, uint64_t value, uint8_t len)
{
	struct fw_item *it = &fw_items[fw_nitems++];
	it->key = key;
	it->len = len;
	for (unsigned i = 0; i < len; i++)
		it->data[i] = (uint8_t)(value >> (8 * i));
}

static uint8_t fw_read_byte(void)
{
	for (unsigned i = 0; i < fw_nitems; i++)
		if (fw_items[i].key == fw_key)
			return fw_offset < fw_items[i].len ? fw_items[i].data[fw_offset++] : 0;
	return 0; /* unknown keys read 0 */
}

/* ---- pc-testdev --------------------------------------------------------------------- */

static uint32_t testdev_scratch;
static uint8_t testdev_mem[TESTDEV_MMIO_LEN];

static uint32_t size_mask(unsigned size)
{
	return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

/* QEMU's "flush page": make KVM fault the page in again by taking its host mapping
 * away for a moment. */
static void testdev_flush_page(uint32_t gpa)
{
	void *p = kvm_guest_memory(mach->vm, gpa & ~0xfffu, 4096);
	if (!p)
		return;
	mprotect(p, 4096, PROT_NONE);
	mprotect(p, 4096, PROT_READ | PROT_WRITE);
}

/* ---- ACPI PM registers ---------------------------------------------------------------- */

static uint16_t pm_sts, pm_en, pm_cnt = 1; /* SCI_EN: always in ACPI mode */
static struct timespec pm_start;

static uint32_t pm_timer(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t sec = now.tv_sec - pm_start.tv_sec;
	int64_t nsec = now.tv_nsec - pm_start.tv_nsec;
	uint64_t ns = (uint64_t)(sec * 1000000000 + nsec);
	/* ticks = ns * 3579545 / 1e9, without overflow for centuries */
	uint64_t ticks = ns / 1000000000 * PM_TIMER_HZ + ns % 1000000000 * PM_TIMER_HZ / 1000000000;
	return (uint32_t)ticks & 0xffffff;
}

static uint32_t pm_read(unsigned off)
{
	switch (off) {
	case 0:
		return pm_sts | (uint32_t)pm_en << 16;
	case 4:
		return pm_cnt;
	default:
		return pm_timer();
	}
}

static void pm_write(unsigned off, uint32_t v, unsigned size)
{
	if (off == 0) {
		pm_sts &= (uint16_t)~v; /* write 1 to clear */
		if (size == 4)
			pm_en = (uint16_t)(v >> 16);
	} else if (off == 2) {
		pm_en = (uint16_t)v;
	} else if (off == 4) {
		pm_cnt = (uint16_t)((v & ~0x2000u) | 1); /* SLP_EN does not put this machine to sleep */
	}
}

/* ---- dispatch ----------------------------------------------------------------------- */

static uint32_t pci_address;

void devices_init(const struct machine *m)
{
	mach = m;
	clock_gettime(CLOCK_MONOTONIC, &pm_start);
	fw_add(0x00, 0x554d4551, 4); /* signature "QEMU" */
	fw_add(0x01, 1, 4);          /* ID: the traditional interface, no DMA */
	fw_add(0x03, m->ram_size, 8); /* RAM size */
	fw_add(0x05, m->ncpus, 2);   /* number of CPUs */
	fw_add(0x0f, m->ncpus, 2);   /* maximum number of CPUs */
}

static uint32_t pio_read(uint16_t port, unsigned size)
{
	if (port >= UART_BASE && port < UART_BASE + 8) {
		uint32_t v = 0;
		for (unsigned i = 0; i < size && port + i < UART_BASE + 8; i++)
			v |= (uint32_t)uart_read(port + i - UART_BASE) << (8 * i);
		return v;
	}
	if (port == FW_CFG_DATA) {
		uint32_t v = 0;
		for (unsigned i = 0; i < size; i++)
			v |= (uint32_t)fw_read_byte() << (8 * i);
		return v;
	}
	if (port == FW_CFG_SELECT)
		return 0;
	if ((port >= 0xe0 && port < 0xe4) || (port >= 0xe8 && port < 0xec))
		return (testdev_scratch >> (8 * (port & 3))) & size_mask(size);
	if (port >= 0xe4 && port < 0xe8)
		return 0;
	if (port >= 0xf4 && port < 0xf8)
		return 0;
	if (port >= 0x2000 && port < 0x2018)
		return 0;
	if (port >= PM_BASE && port < PM_BASE + 12) {
		unsigned off = port - PM_BASE;
		return (pm_read(off & ~3u) >> (8 * (off & 3))) & size_mask(size);
	}
	if (port == 0xcf8 && size == 4)
		return pci_address;
	if (port == 0x92)
		return 0x02; /* A20 on */
	return 0xffffffff; /* PCI data 0xcfc-0xcff and everything unassigned */
}

static int pio_write(uint16_t port, uint32_t v, unsigned size)
{
	if (port >= UART_BASE && port < UART_BASE + 8) {
		for (unsigned i = 0; i < size && port + i < UART_BASE + 8; i++)
			uart_write(port + i - UART_BASE, (uint8_t)(v >> (8 * i)));
	} else if (port >= 0xf4 && port < 0xf8) {
		return (int)((((uint64_t)v << 1) | 1) & 0xff);
	} else if (port == FW_CFG_SELECT) {
		fw_key = (uint16_t)(v & size_mask(size < 2 ? size : 2));
		fw_offset = 0;
	} else if ((port >= 0xe0 && port < 0xe4) || (port >= 0xe8 && port < 0xec)) {
		unsigned shift = 8 * (port & 3);
		uint64_t mask = (uint64_t)size_mask(size) << shift;
		testdev_scratch = (uint32_t)((testdev_scratch & ~mask) | (((uint64_t)v << shift) & mask));
	} else if (port >= 0xe4 && port < 0xe8) {
		testdev_flush_page(v);
	} else if (port >= 0x2000 && port < 0x2018) {
		kvm_irq_line(mach->vm, port - 0x2000u, (v & size_mask(size)) != 0);
	} else if (port >= PM_BASE && port < PM_BASE + 8) {
		pm_write(port - PM_BASE, v & size_mask(size), size);
	} else if (port == 0xcf8 && size == 4) {
		pci_address = v;
	}
	return -1;
}

int device_pio(uint16_t port, int is_write, uint8_t *data, unsigned size)
{
	uint32_t v = 0;
	int r = -1;
	if (size > 4)
		size = 4;
	pthread_mutex_lock(&lock);
	if (is_write) {
		memcpy(&v, data, size);
		r = pio_write(port, v, size);
	} else {
		v = pio_read(port, size);
		memcpy(data, &v, size);
	}
	pthread_mutex_unlock(&lock);
	return r;
}

int device_mmio(uint64_t addr, int is_write, uint8_t *data, unsigned len)
{
	if (len > 8)
		len = 8;
	pthread_mutex_lock(&lock);
	if (addr >= TESTDEV_MMIO && addr < TESTDEV_MMIO + TESTDEV_MMIO_LEN) {
		uint64_t off = addr - TESTDEV_MMIO;
		unsigned n = off + len <= TESTDEV_MMIO_LEN ? len : (unsigned)(TESTDEV_MMIO_LEN - off);
		if (is_write) {
			memcpy(testdev_mem + off, data, n);
		} else {
			memset(data, 0, len);
			memcpy(data, testdev_mem + off, n);
		}
	} else if (!is_write) {
		memset(data, 0, len);
	}
	pthread_mutex_unlock(&lock);
	return -1;
}

/* ---- migration: each device's state in a section of its own ----------------------------- */

struct uart_state {
	uint8_t rbr, ier, fcr, lcr, mcr, lsr_dr, scr, dll, dlm, pad[7];
};
struct pm_state {
	uint16_t sts, en, cnt, pad;
};
struct fw_state {
	uint16_t key, pad;
	uint32_t offset;
};
struct pci_state {
	uint32_t address;
};

/* The PM timer runs on across a migration: the nanoseconds since it started. */
static uint64_t pm_elapsed_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)((now.tv_sec - pm_start.tv_sec) * 1000000000 + (now.tv_nsec - pm_start.tv_nsec));
}

int devices_save(struct stream *s)
{
	pthread_mutex_lock(&lock);
	uart_flush_locked();
	struct uart_state u = { uart.rbr, uart.ier, uart.fcr, uart.lcr, uart.mcr, uart.lsr_dr, uart.scr,
				uart.dll, uart.dlm, { 0 } };
	struct pm_state pm = { pm_sts, pm_en, pm_cnt, 0 };
	uint64_t elapsed = pm_elapsed_ns();
	struct fw_state fw = { fw_key, 0, fw_offset };
	struct pci_state pci = { pci_address };
	uint32_t scratch = testdev_scratch;
	pthread_mutex_unlock(&lock);
	/* pc-testdev: the scratch register, then the 64 KiB window. */
	static uint8_t tdev[4 + TESTDEV_MMIO_LEN];
	memcpy(tdev, &scratch, 4);
	memcpy(tdev + 4, testdev_mem, TESTDEV_MMIO_LEN);
	if (stream_put_section(s, TAG_UART, &u, sizeof(u)) < 0 ||
	    stream_put_section(s, TAG_PMTIMER, &elapsed, sizeof(elapsed)) < 0 ||
	    stream_put_section(s, TAG_ACPI, &pm, sizeof(pm)) < 0 ||
	    stream_put_section(s, TAG_FWCFG, &fw, sizeof(fw)) < 0 ||
	    stream_put_section(s, TAG_TESTDEV, tdev, sizeof(tdev)) < 0 ||
	    stream_put_section(s, TAG_DEBUGEXIT, "", 0) < 0 ||
	    stream_put_section(s, TAG_PCI, &pci, sizeof(pci)) < 0)
		return -1;
	return 0;
}

/* 1 if `tag` is a device's and was loaded, 0 if it is not a device's, -1 if malformed. */
int devices_load(uint32_t tag, const uint8_t *p, size_t n)
{
	int r = 1;
	pthread_mutex_lock(&lock);
	if (tag == TAG_UART && n == sizeof(struct uart_state)) {
		struct uart_state u;
		memcpy(&u, p, n);
		uart.rbr = u.rbr, uart.ier = u.ier, uart.fcr = u.fcr, uart.lcr = u.lcr, uart.mcr = u.mcr;
		uart.lsr_dr = u.lsr_dr, uart.scr = u.scr, uart.dll = u.dll, uart.dlm = u.dlm;
	} else if (tag == TAG_PMTIMER && n == sizeof(uint64_t)) {
		uint64_t elapsed;
		memcpy(&elapsed, p, n);
		clock_gettime(CLOCK_MONOTONIC, &pm_start);
		int64_t ns = (int64_t)pm_start.tv_nsec - (int64_t)(elapsed % 1000000000);
		pm_start.tv_sec -= (time_t)(elapsed / 1000000000);
		if (ns < 0) {
			ns += 1000000000;
			pm_start.tv_sec--;
		}
		pm_start.tv_nsec = (long)ns;
	} else if (tag == TAG_ACPI && n == sizeof(struct pm_state)) {
		struct pm_state pm;
		memcpy(&pm, p, n);
		pm_sts = pm.sts, pm_en = pm.en, pm_cnt = pm.cnt;
	} else if (tag == TAG_FWCFG && n == sizeof(struct fw_state)) {
		struct fw_state fw;
		memcpy(&fw, p, n);
		fw_key = fw.key, fw_offset = fw.offset;
	} else if (tag == TAG_TESTDEV && n == 4 + TESTDEV_MMIO_LEN) {
		memcpy(&testdev_scratch, p, 4);
		memcpy(testdev_mem, p + 4, TESTDEV_MMIO_LEN);
	} else if (tag == TAG_DEBUGEXIT && n == 0) {
		/* isa-debug-exit has no state: its section says the device is there */
	} else if (tag == TAG_PCI && n == sizeof(struct pci_state)) {
		memcpy(&pci_address, p, n);
	} else if (tag == TAG_UART || tag == TAG_PMTIMER || tag == TAG_ACPI || tag == TAG_FWCFG ||
		   tag == TAG_TESTDEV || tag == TAG_DEBUGEXIT || tag == TAG_PCI) {
		r = -1;
	} else {
		r = 0;
	}
	pthread_mutex_unlock(&lock);
	return r;
}
