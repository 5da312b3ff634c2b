/* The test kernels' library (see lib.h). */
#include "lib.h"
#include <stdarg.h>

unsigned failures;

void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;
	while (n--)
		*dp++ = *sp++;
	return d;
}

void *memset(void *d, int c, size_t n)
{
	uint8_t *dp = d;
	while (n--)
		*dp++ = (uint8_t)c;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x < *y ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (uint8_t)*a < (uint8_t)*b ? -1 : 1;
		if (!*a)
			return 0;
	}
	return 0;
}

/* ---- console ---------------------------------------------------------------------- */

static volatile uint32_t console_lock;

static void putc_serial(char c)
{
	while (!(inb(0x3fd) & 0x20))
		;
	outb(0x3f8, (uint8_t)c);
}

static void put_num(uint32_t v, unsigned base)
{
	char buf[12];
	int n = 0;
	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n)
		putc_serial(buf[--n]);
}

static void vprint(const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			putc_serial(*fmt);
			continue;
		}
		switch (*++fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			while (*s)
				putc_serial(*s++);
			break;
		}
		case 'u': put_num(va_arg(ap, uint32_t), 10); break;
		case 'x': put_num(va_arg(ap, uint32_t), 16); break;
		case 'c': putc_serial((char)va_arg(ap, int)); break;
		case '%': putc_serial('%'); break;
		default: putc_serial('?'); break;
		}
	}
}

static void lock_console(void)
{
	while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE))
		cpu_relax();
}

static void unlock_console(void)
{
	__atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE);
}

void kputs(const char *s)
{
	lock_console();
	while (*s)
		putc_serial(*s++);
	unlock_console();
}

void kprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	lock_console();
	vprint(fmt, ap);
	unlock_console();
	va_end(ap);
}

void check(int ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	lock_console();
	vprint(ok ? "ok " : "FAIL ", ap);
	vprint(fmt, ap);
	putc_serial('\n');
	unlock_console();
	va_end(ap);
	if (!ok)
		failures++;
}

int finish(void)
{
	kprintf("%u failure(s)\n", failures);
	return failures ? 0x10 + (int)(failures < 0x70 ? failures : 0x70) : 0;
}

/* ---- command line ----------------------------------------------------------------- */

static const char *find_word(const char *s, const char *w, size_t wl)
{
	for (const char *p = s; *p; p++)
		if ((p == s || p[-1] == ' ') && strncmp(p, w, wl) == 0)
			return p;
	return 0;
}

uint32_t arg_u32(const char *cmdline, const char *key, uint32_t dflt)
{
	size_t kl = strlen(key);
	const char *p = find_word(cmdline, key, kl);
	if (!p || p[kl] != '=')
		return dflt;
	uint32_t v = 0;
	for (p += kl + 1; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (uint32_t)(*p - '0');
	return v;
}

int arg_has(const char *cmdline, const char *word)
{
	size_t wl = strlen(word);
	const char *p = find_word(cmdline, word, wl);
	return p && (p[wl] == 0 || p[wl] == ' ');
}

/* ---- APs -------------------------------------------------------------------------- */

extern const uint8_t ap_trampoline[], ap_trampoline_end[], ap_gdt_offset[], ap_gdt_ptr_offset[];
#define TRAMPOLINE 0x8000u

static void icr(unsigned dest, uint32_t cmd)
{
	lapic_write(0x310, dest << 24);
	lapic_write(0x300, cmd);
	while (lapic_read(0x300) & (1u << 12)) /* delivery pending */
		cpu_relax();
}

void start_aps(const unsigned *ids, unsigned n)
{
	uint8_t *t = (uint8_t *)TRAMPOLINE;
	memcpy(t, ap_trampoline, (size_t)(ap_trampoline_end - ap_trampoline));
	/* the GDT pointer's base: where the GDT landed */
	uint32_t gdt = TRAMPOLINE + (uint32_t)(uintptr_t)ap_gdt_offset;
	memcpy(t + (uintptr_t)ap_gdt_ptr_offset + 2, &gdt, 4);
	for (unsigned i = 0; i < n; i++) {
		icr(ids[i], 0x00004500);                       /* INIT, assert */
		icr(ids[i], 0x00004600 | (TRAMPOLINE >> 12)); /* SIPI */
		icr(ids[i], 0x00004600 | (TRAMPOLINE >> 12)); /* SIPI again, as the MP spec says */
	}
}

/* ---- interrupts ------------------------------------------------------------------- */

extern const uint32_t isr_table[256];
void (*irq_handler)(unsigned vector);
static uint64_t idt[256];

void isr_common_c(unsigned vector);
void isr_common_c(unsigned vector)
{
	if (irq_handler)
		irq_handler(vector);
}

void idt_init(void)
{
	for (unsigned v = 0; v < 256; v++) {
		uint32_t h = isr_table[v];
		/* 32-bit interrupt gate, present, DPL 0, selector 0x08 */
		idt[v] = (uint64_t)(h & 0xffff) | (uint64_t)0x08 << 16 | (uint64_t)0x8e00 << 32 |
			 (uint64_t)(h >> 16) << 48;
	}
	struct __attribute__((packed)) { uint16_t limit; uint32_t base; } p = { sizeof(idt) - 1, (uint32_t)(uintptr_t)idt };
	__asm__ volatile("lidt %0" : : "m"(p));
}

/* Kernels that start APs define their own. */
__attribute__((weak)) void ap_main(unsigned id)
{
	(void)id;
}
