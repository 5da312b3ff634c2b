/* The test kernels' library: port and MMIO access, the serial console, checks that
 * print "ok ..." or "FAIL ...", the multiboot information, interrupts and AP start-up. */
#ifndef KERNEL_LIB_H
#define KERNEL_LIB_H

#include <stddef.h>
#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t rd32(uintptr_t a) { return *(volatile uint32_t *)a; }
static inline void wr32(uintptr_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline uint16_t rd16(uintptr_t a) { return *(volatile uint16_t *)a; }
static inline void wr16(uintptr_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline uint8_t rd8(uintptr_t a) { return *(volatile uint8_t *)a; }
static inline void wr8(uintptr_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]);

void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

void kputs(const char *s);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "ok <what>" or "FAIL <what>" and counts failures. */
extern unsigned failures;
#define CHECK(cond, ...) check((cond), __VA_ARGS__)
void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The value kmain() returns: 0 if every check passed. */
int finish(void);

/* Multiboot information (the fields the tests read). */
struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr, drives_length, drives_addr, config_table;
	uint32_t boot_loader_name;
};
struct mb_mod { uint32_t start, end, cmdline, pad; };
struct __attribute__((packed)) mb_mmap { uint32_t size; uint64_t addr, len; uint32_t type; };

/* The value of "key=" in the kernel's command line, as a number (default `dflt`). */
uint32_t arg_u32(const char *cmdline, const char *key, uint32_t dflt);
/* Whether the command line has the word `word`. */
int arg_has(const char *cmdline, const char *word);

/* Local APIC. */
#define LAPIC 0xfee00000u
static inline uint32_t lapic_read(unsigned reg) { return rd32(LAPIC + reg); }
static inline void lapic_write(unsigned reg, uint32_t v) { wr32(LAPIC + reg, v); }
static inline unsigned apic_id(void) { return lapic_read(0x20) >> 24; }

/* Starts the APs with these APIC IDs with INIT/SIPI at ap_main(apic_id) (which the
 * kernel defines), through start-up code copied to 0x8000. */
void start_aps(const unsigned *ids, unsigned n);
void ap_main(unsigned apic_id);

/* Interrupts: a flat IDT whose every vector calls irq_handler(vector). */
void idt_init(void);
extern void (*irq_handler)(unsigned vector);
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }

#endif
