/* kvmrun: a small VMM on libkvm that boots multiboot kernels the way QEMU's pc machine
 * does with -kernel. Declarations shared by its files:
 *   main.c      options, usage, main()
 *   multiboot.c loading the kernel and modules, building the multiboot information
 *   machine.c   the VM: memory, interrupt controllers, CPUID, initial vcpu state
 *   devices.c   port and MMIO devices (UART, debug-exit, fw_cfg, pc-testdev, PM, PCI)
 *   acpi.c      the ACPI tables
 *   vcpu.c      one thread per vcpu, exit handling, stopping, pausing, the timeout
 *   stream.c    the migration stream format (also a snapshot's state file)
 *   channel.c   tcp: and unix: URIs
 *   migrate.c   live migration: the source's pre-copy and stop-and-copy
 *   incoming.c  the destination (-incoming), and loading a stream's state (-restore too)
 *   throttle.c  auto-converge: vcpus made to sleep a share of each period
 *   snapshot.c  snapshot DIR and -restore DIR
 *   monitor.c   the control socket (-monitor) and -migrate-at / -snapshot-at
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
	EXIT_DAMAGED = 18,  /* the incoming stream or snapshot is truncated, corrupt or malformed */
	EXIT_FOREIGN = 20,  /* ... is not kvmrun's, another version's, or another machine shape's */
	EXIT_CHANNEL = 22,  /* -incoming: cannot listen, or the connection broke mid-stream */
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
	int shape_given;          /* -m or -smp was on the command line */
	const char *incoming;     /* -incoming URI */
	const char *restore;      /* -restore DIR */
	const char *monitor;      /* -monitor unix:PATH */
	const char *migrate_uri;  /* -migrate-at SECONDS URI */
	double migrate_at;
	const char *snapshot_dir; /* -snapshot-at SECONDS DIR */
	double snapshot_at;
	uint64_t downtime_ms;     /* -downtime MS */
	uint64_t max_bandwidth;   /* -max-bandwidth MiB/s (0: no limit) */
	uint64_t dirty_ring;      /* -dirty-ring BYTES (0: the dirty bitmap); with -incoming and
				   * -restore without it, the stream's (machine_dirty_ring) */
	int ring_from_stream;     /* dirty_ring is the stream's, not the command line's */
	int snapshot_fd;          /* -restore: the snapshot's memory file, which libkvm maps
				   * MAP_PRIVATE (kvm_set_memory_region_fd); kept open for
				   * SEEK_DATA and for turning dirty logging on and off */
	uint8_t *ram[2];          /* host addresses of slot 0 (low RAM) and 1 (above 4 GiB),
				   * from kvm_guest_memory */
	int stats;                /* -stats: print KVM's statistics at exit */

	/* Set up by machine_create() and multiboot_load(). */
	int vm;
	uint64_t low_size, high_size;
	uint32_t entry;           /* where the boot vcpu starts */
	uint32_t mbi;             /* multiboot information address (EBX) */
	uint32_t gdt;             /* a flat GDT: 0x08 code, 0x10 data */
};

/* The migration stream (stream.c). */
#define STREAM_MAGIC "KVMRUNST"
#define STREAM_VERSION 2u /* 2: the DLOG section after the header */
#define STREAM_MAX_SECTION (64u << 20)
#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define TAG_RAM TAG('R', 'A', 'M', ' ')
#define TAG_UART TAG('U', 'A', 'R', 'T')
#define TAG_PMTIMER TAG('P', 'M', 'T', 'M')
#define TAG_ACPI TAG('A', 'C', 'P', 'I')
#define TAG_FWCFG TAG('F', 'W', 'C', 'F')
#define TAG_TESTDEV TAG('T', 'D', 'E', 'V')
#define TAG_DEBUGEXIT TAG('D', 'B', 'G', 'X')
#define TAG_PCI TAG('P', 'C', 'I', ' ')
#define TAG_VM TAG('V', 'M', ' ', ' ')
#define TAG_CPU TAG('C', 'P', 'U', ' ')
#define TAG_MEMFILE TAG('M', 'E', 'M', 'F') /* snapshot: the memory file's size */
#define TAG_DLOG TAG('D', 'L', 'O', 'G')    /* first after the header: the dirty ring's bytes
					     * per vcpu, 0 for the bitmap (kvm_restore_vm
					     * wants a VM with the same kind of dirty log) */
#define TAG_END TAG('E', 'N', 'D', ' ')
#define RUN_DATA 0u
#define RUN_ZERO 1u
/* What stream_get_*() return besides 0. */
enum { STREAM_TRUNCATED = 1, STREAM_CORRUPT = 2, STREAM_FOREIGN = 3 };

struct stream {
	int fd, is_socket;
	uint64_t bytes;           /* written or read so far */
	uint32_t sections;
	int err;                  /* writing: the errno that stopped it */
	char why[200];            /* reading: what went wrong */
	uint8_t *buf;             /* reading: the last section's payload */
	size_t cap;
	int64_t fault_close, fault_corrupt, fault_die, fault_drop; /* KVMRUN_FAULT, or -1 */
	const char *fault_tag;    /* KVMRUN_FAULT=corrupt-tag=TAG, or NULL */
	uint64_t rate;            /* writing: at most this many bytes per second, 0 for no limit */
	double rate_start;        /* CLOCK_MONOTONIC seconds of the first write */
};
void stream_init(struct stream *s, int fd, int is_socket);
/* The header and the DLOG section. */
int stream_put_header(struct stream *s, const struct machine *m);
int stream_put_section(struct stream *s, uint32_t tag, const void *payload, size_t len);
int stream_put_end(struct stream *s);
/* The header and the DLOG section: the machine's shape and its dirty ring's bytes. */
int stream_get_header(struct stream *s, uint64_t *ram_size, unsigned *ncpus, uint32_t *ring);
int stream_get_section(struct stream *s, uint32_t *tag, uint8_t **payload, size_t *len);
void stream_free(struct stream *s);
uint32_t crc32_of(const void *p, size_t n);
uint32_t get32(const uint8_t *p);
uint64_t get64(const uint8_t *p);

/* channel.c: fds for "tcp:HOST:PORT", "unix:PATH" and "file:PATH" (uri_connect creates
 * the file, uri_listen opens it to read); -1 with the reason in `why`. */
int uri_valid(const char *uri, char *why, size_t whylen);
int uri_is_file(const char *uri);
int uri_connect(const char *uri, char *why, size_t whylen);
int uri_listen(const char *uri, char *why, size_t whylen);
int uri_accept(int lfd, char *why, size_t whylen);
/* stats.c: the -stats tables of VM `vm` and its `n` vcpus, on `f`. */
#include <stdio.h>
void stats_print(FILE *f, int vm, const int *vcpu_fds, unsigned n);

/* main.c */
/* Prints "kvmrun: <message>" and a newline on stderr. */
void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* machine.c */
int machine_create(struct machine *m);
/* Turns the dirty ring on with m->dirty_ring bytes per vcpu (if not 0), before the first
 * vcpu; 0, or the exit status with the reason in `why`. */
int machine_dirty_ring(struct machine *m, char *why, size_t whylen);
/* With -incoming and -restore: takes the stream's dirty ring (bytes per vcpu, 0 for the
 * bitmap) where -dirty-ring is not given; 0, or `contradiction` (the exit status) if
 * -dirty-ring is given and the stream's machine has the bitmap, with `why`. */
int machine_adopt_dirty_ring(struct machine *m, uint32_t ring, int contradiction, char *why, size_t whylen);
/* Turns dirty-page logging of the RAM slots on or off. */
int machine_dirty_log(struct machine *m, int on);
/* The RAM slots: (slot, guest address, size) for i = 0, 1; returns the number. */
unsigned machine_ram_slots(const struct machine *m, unsigned slot[2], uint64_t gpa[2], uint64_t size[2]);
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
/* Migration: writes each device's section; loads one (1), not a device's (0), malformed (-1). */
int devices_save(struct stream *s);
int devices_load(uint32_t tag, const uint8_t *p, size_t n);

/* vcpu.c: one thread per vcpu. vcpus_start() starts them: each boots its vcpu, or with
 * -incoming / -restore waits for vcpus_load(). vcpus_wait() waits until the machine
 * stops and returns the exit status. */
int vcpus_start(struct machine *m);
int vcpus_wait(struct machine *m);
/* Ends the machine with status `st` (unless it already ends). */
void vcpus_end(int st);
/* Stops every vcpu out of the guest (nested: each call wants a vcpus_resume()); -1 if
 * the machine is ending. */
int vcpus_pause(void);
void vcpus_resume(void);
void vcpus_kick_all(void);
int vcpus_paused(void);
/* While paused: each vcpu saves its state (kvm_save_vcpu) on its own thread into
 * blobs[i] (malloc'ed), lens[i]. 0, or -1 with the reason in `why`. */
int vcpus_save(uint8_t **blobs, size_t *lens, char *why, size_t whylen);
/* Waits until every vcpu exists (kvm_restore_vm wants them all); -1 if the machine ends. */
int vcpus_wait_created(void);
/* Before they ever ran: each vcpu loads blobs[i] (kvm_restore_vcpu) on its own thread. */
int vcpus_load(uint8_t *const *blobs, const size_t *lens, char *why, size_t whylen);
/* After vcpus_load(): the vcpus start running. */
void vcpus_go(void);
/* Throttling (throttle.c): the share of each period the vcpus sleep, 0-99 percent. */
void throttle_set(struct machine *m, unsigned percent);
/* Called by each vcpu thread between runs: sleeps its share (throttle.c). */
void throttle_point(void);

/* migrate.c */
/* Live-migrates the running machine to `uri` (blocking); 0 when the destination took
 * over (the caller ends the machine with status 0), -1 when it failed (the guest runs on). */
int migrate_to(struct machine *m, const char *uri);
/* When the machine ends: says so if a migration was still running. */
void migrate_machine_ended(void);
/* Formats `info migrate` into buf. */
void migrate_info(char *buf, size_t len);
/* The device, VM and vcpu sections and END (shared by migration and snapshots). */
int save_machine_state(struct machine *m, struct stream *s, uint8_t **blobs, size_t *lens, char *why, size_t whylen);
/* Frees n vcpu blobs and the two arrays. */
void free_blobs(uint8_t **blobs, size_t *lens, unsigned n);

/* incoming.c */
/* -incoming, before the vcpus exist: waits for the source and reads the stream's header
 * (its shape and dirty ring: machine_dirty_ring); 0, or the exit status. */
int incoming_open(struct machine *m);
/* -incoming, once the vcpus started: receives the machine; the exit status if it fails,
 * or -1 to run. */
int migrate_incoming(struct machine *m);
/* Reads a stream's sections up to END (its header already read) into the machine, then
 * loads the VM and the vcpus; 0, or the exit status with the reason in `why`. */
int load_stream(struct machine *m, struct stream *s, char *why, size_t whylen);

/* snapshot.c */
int snapshot_save(struct machine *m, const char *dir, char *why, size_t whylen);
/* -restore: reads DIR's shape and dirty ring into m (before machine_create); the exit
 * status or 0. */
int snapshot_open(struct machine *m);
/* After machine_create and vcpus_start: loads the state; the exit status, or -1 to run. */
int snapshot_restore(struct machine *m);

/* monitor.c: the control socket and the timed -migrate-at / -snapshot-at. */
int monitor_start(struct machine *m);

#endif
