/* The demo kernel for kvmrun: the boot vcpu learns the vcpu count from fw_cfg, starts
 * every other vcpu with INIT/SIPI through its local APIC, and each vcpu counts the
 * primes in its share of [2, LIMIT) and prints a line on the serial port. The boot vcpu
 * adds the shares up, checks the total, and exits through isa-debug-exit: 0 (kvmrun's
 * exit status 1) if the total is right. Freestanding: no library, no interrupts. */
#include <stdint.h>

#define LIMIT 6000
#define PRIMES_BELOW_LIMIT 783
#define MAX_CPUS 64
#define SIPI_PAGE 0x8000u

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t lapic_read(unsigned reg) { return *(volatile uint32_t *)(0xfee00000u + reg); }
static inline void lapic_write(unsigned reg, uint32_t v) { *(volatile uint32_t *)(0xfee00000u + reg) = v; }

/* ---- serial console (16550 at 0x3f8), one line at a time across vcpus ---------------- */

static volatile uint32_t console_lock;

static void put(const char *s)
{
	for (; *s; s++) {
		while (!(inb(0x3fd) & 0x20)) /* transmitter empty */
			;
		outb(0x3f8, (uint8_t)*s);
	}
}

static void put_uint(uint32_t v)
{
	char buf[11], *p = buf + sizeof(buf) - 1;
	*p = 0;
	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	put(p);
}

static void lock(void)
{
	while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE))
		__asm__ volatile("pause");
}

static void unlock(void)
{
	__atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE);
}

/* ---- the work ------------------------------------------------------------------------ */

static unsigned ncpus;
static volatile uint32_t total, done;

static uint32_t count_primes(uint32_t from, uint32_t to)
{
	uint32_t n = 0;
	for (uint32_t k = from < 2 ? 2 : from; k < to; k++) {
		int prime = 1;
		for (uint32_t d = 2; d * d <= k; d++)
			if (k % d == 0) {
				prime = 0;
				break;
			}
		n += (uint32_t)prime;
	}
	return n;
}

static void share(unsigned id)
{
	uint32_t from = LIMIT * id / ncpus, to = LIMIT * (id + 1) / ncpus;
	uint32_t n = count_primes(from, to);
	lock();
	put("vcpu ");
	put_uint(id);
	put(": hello from APIC ID ");
	put_uint(lapic_read(0x20) >> 24);
	put(", ");
	put_uint(n);
	put(" primes in [");
	put_uint(from);
	put(", ");
	put_uint(to);
	put(")\n");
	unlock();
	__atomic_fetch_add(&total, n, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&done, 1, __ATOMIC_SEQ_CST);
}

void ap_main(unsigned apic_id);
void ap_main(unsigned apic_id)
{
	share(apic_id);
}

/* ---- the boot vcpu ---------------------------------------------------------------------- */

extern const uint8_t ap_start[], ap_start_end[], ap_gdt_ptr[];

static void send_ipi(unsigned apic_id, uint32_t command)
{
	lapic_write(0x310, apic_id << 24);
	lapic_write(0x300, command);
	while (lapic_read(0x300) & (1u << 12)) /* delivery pending */
		;
}

int kmain(uint32_t magic, const void *multiboot_info);
int kmain(uint32_t magic, const void *multiboot_info)
{
	(void)multiboot_info;
	if (magic != 0x2badb002)
		return 2;
	outw(0x510, 0x05); /* fw_cfg: number of CPUs */
	ncpus = inb(0x511) | (unsigned)inb(0x511) << 8;
	if (ncpus < 1 || ncpus > MAX_CPUS)
		ncpus = 1;
	lock();
	put("vcpu 0: multiboot kernel running, ");
	put_uint(ncpus);
	put(" vcpus; starting the others with INIT/SIPI\n");
	unlock();

	/* the APs' start-up code, at a page below 1 MiB (SIPI vector 8) */
	uint8_t *page = (uint8_t *)SIPI_PAGE;
	for (const uint8_t *p = ap_start; p < ap_start_end; p++)
		page[p - ap_start] = *p;
	uint32_t gdt_base;
	__builtin_memcpy(&gdt_base, ap_gdt_ptr + 2, 4);
	gdt_base += SIPI_PAGE;
	__builtin_memcpy(page + (ap_gdt_ptr - ap_start) + 2, &gdt_base, 4);
	for (unsigned id = 1; id < ncpus; id++) {
		send_ipi(id, 0x4500);                     /* INIT */
		send_ipi(id, 0x4600 | (SIPI_PAGE >> 12)); /* STARTUP */
		send_ipi(id, 0x4600 | (SIPI_PAGE >> 12));
	}

	share(0);
	while (done < ncpus)
		__asm__ volatile("pause");
	lock();
	put("vcpu 0: all ");
	put_uint(ncpus);
	put(" vcpus done: ");
	put_uint(total);
	put(" primes below ");
	put_uint(LIMIT);
	put(total == PRIMES_BELOW_LIMIT ? " (right)\n" : " (WRONG)\n");
	unlock();
	return total == PRIMES_BELOW_LIMIT ? 0 : 1;
}
