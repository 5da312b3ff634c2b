/* kvmrun: a small VMM on libkvm that boots multiboot kernels the way QEMU's pc machine
 * does with -kernel. Declarations shared by its files:
 *   main.c      options, usage, main()
 *   multiboot.c loading the kernel and modules, building the multiboot information
 *   machine.c   the VM: memory, interrupt controllers, CPUID, initial vcpu state
 *   devices.c   port and MMIO devices (UART, debug-exit, fw_cfg, pc-testdev, PM, PCI)
 *   acpi.c      the ACPI tables
 *   vcpu.c      one thread per vcpu, exit handling, stopping, the timeout
 *   stats.c     -stats: the exits by kind of each vcpu, and the VM's counters, at exit
 * Everything goes through libkvm's own calls: kvmrun uses none of its escape hatches
 * (kvm_system_ioctl, kvm_vm_ioctl, kvm_vcpu_ioctl), since libkvm has a call for each
 * thing it does (GSI routing, PIC and PIT state included). */
#ifndef KVMRUN_H
#define KVMRUN_H

#include <stdint.h>
#include <stddef.h>
#include <libkvm.h>

/* Exit statuses of kvmrun itself. They are even, so they never collide with a status
 * from isa-debug-exit, which is always odd ((value << 1) | 1). */
enum {
	EXIT_USAGE = 2,     /* bad command line */
	EXIT_LOAD = 4,      /* kernel or module unreadable, malformed or too big for RAM */
	EXIT_HOST = 6,      /* KVM or the host refused something (no /dev/kvm, no memory, ...) */
	EXIT_SHUTDOWN = 8,  /* triple fault (KVM_EXIT_SHUTDOWN) */
	EXIT_EMULATION = 10, /* KVM could not emulate an instruction (KVM_EXIT_INTERNAL_ERROR) */
	EXIT_FAIL_ENTRY = 12, /* the hardware refused to enter the guest (KVM_EXIT_FAIL_ENTRY) */
	EXIT_TIMEOUT = 14,  /* -t expired */
	EXIT_UNHANDLED = 16, /* an exit kvmrun does not handle (KVM_EXIT_SYSTEM_EVENT, ...) */
};

/* Guest-physical layout, as on QEMU's pc machine. */
#define LOW_RAM_MAX 0xe0000000ULL   /* RAM above 3.5 GiB goes above 4 GiB */
#define HIGH_RAM_BASE 0x100000000ULL
#define BIOS_AREA 0xf0000u          /* 0xf0000-0xfffff: ACPI tables, reserved in the map */
#define BIOS_AREA_END 0x100000u
#define TSS_ADDR 0xfffbd000ULL
#define IDENTITY_MAP_ADDR 0xfeffc000ULL
#define LAPIC_ADDR 0xfee00000u
#define IOAPIC_ADDR 0xfec00000u
#define TESTDEV_MMIO 0xff000000ULL
#define TESTDEV_MMIO_LEN 0x10000u
#define PM_BASE 0x600u              /* PM1a event 0x600, control 0x604, timer 0x608 */
#define PM_TIMER_HZ 3579545ULL
#define MAX_VCPUS 255

struct module {
	char *path;     /* the file name */
	char *cmdline;  /* the whole -initrd entry: file name and arguments */
};

struct machine {
	/* From the command line. */
	uint64_t ram_size;
	unsigned ncpus;
	const char *kernel;
	const char *append;
	struct module *modules;
	unsigned nmodules;
	double timeout;           /* seconds, 0 for none */
	int verbose;
	int stats;                /* -stats: print KVM's statistics at exit */

	/* Set up by machine_create() and multiboot_load(). */
	int vm;
	uint64_t low_size, high_size;
	uint32_t entry;           /* where the boot vcpu starts */
	uint32_t mbi;             /* multiboot information address (EBX) */
	uint32_t gdt;             /* a flat GDT: 0x08 code, 0x10 data */
};

/* stats.c: the -stats tables of VM `vm` and its `n` vcpus, on `f`. */
#include <stdio.h>
void stats_print(FILE *f, int vm, const int *vcpu_fds, unsigned n);

/* main.c */
/* Prints "kvmrun: <message>" and a newline on stderr. */
void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* machine.c */
int machine_create(struct machine *m);
int vcpu_configure(const struct machine *m, unsigned id);

/* multiboot.c: loads the kernel and modules and builds the multiboot information.
 * Returns 0, or -1 after printing why. */
int multiboot_load(struct machine *m);

/* acpi.c: writes RSDP, RSDT, FADT, FACS, DSDT and MADT into the BIOS area. */
int acpi_build(const struct machine *m);

/* devices.c */
void devices_init(const struct machine *m);
/* Each returns -1 to go on running, or the status kvmrun must exit with. */
int device_pio(uint16_t port, int is_write, uint8_t *data, unsigned size);
int device_mmio(uint64_t addr, int is_write, uint8_t *data, unsigned len);
void devices_flush(void);

/* vcpu.c: runs the machine until it stops; returns the exit status. */
int vcpus_run(struct machine *m);

#endif
