/* Shared helpers of the C tests: checks that report file and line, guest setup (real,
 * protected and long mode), guest blobs, and leak checks on /proc/self. Every test is a
 * standalone program: exit 0 pass, 1 fail, 77 skip (no /dev/kvm). */
#ifndef LIBKVM_TEST_HARNESS_H
#define LIBKVM_TEST_HARNESS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <libkvm.h>

#define SKIP 77

#define FAIL(...) do { fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

#define CHECK(cond) do { if (!(cond)) FAIL("check failed: %s (errno %d: %s)", #cond, \
	errno, strerror(errno)); } while (0)

#define CHECK_EQ(a, b) do { unsigned long long a_ = (unsigned long long)(a), \
	b_ = (unsigned long long)(b); if (a_ != b_) \
	FAIL("%s == %s failed: 0x%llx != 0x%llx", #a, #b, a_, b_); } while (0)

/* The call must fail and set this errno: return -1, or NULL for a function returning a
 * pointer (told apart by type, the call evaluated once). Success, or any other return
 * value, fails the check whatever errno holds (a call that succeeds may leave errno set
 * by something it did inside). */
#define CHECK_ERR(call, err) do { errno = 0; \
	int ptr_ = __builtin_classify_type(call) == 5 /* pointer_type_class */; \
	long r_ = (long)(intptr_t)(call); int e_ = errno; \
	if (r_ != (ptr_ ? 0 : -1)) FAIL("%s returned %ld, expected %s with %s", #call, r_, \
		ptr_ ? "NULL" : "-1", #err); \
	if (e_ != (err)) FAIL("%s: errno %d (%s), expected %s", #call, e_, strerror(e_), #err); \
	note_errno(#call, e_); } while (0)

/* Records that a test saw `call`'s function fail with `err` (CHECK_ERR does), for
 * c-tests/invariants/matrix-man.sh, which checks that every errno a man page lists is produced by
 * some test. Appends "function ERRNAME" to $LIBKVM_TEST_ERRNOS when the runner sets it. */
void note_errno(const char *call, int err);

/* Fails the test with the libkvm errno if `call` returned -1. */
#define OK(call) ({ errno = 0; long r_ = (long)(call); \
	if (r_ == -1) { FAIL("%s failed: errno %d (%s)", #call, errno, strerror(errno)); } \
	r_; })

/* Exits 77 (skip) when /dev/kvm is missing; every KVM test calls it first. It also
 * arranges that a test which exits 0 fails instead if a KVM fd or mapping is left
 * (see check_no_kvm_leaks). */
void require_kvm(void);

/* A guest blob from c-tests/guests/ (see guest.h). */
struct blob { const uint8_t *start, *end; };
#define BLOB(name) ({ extern const uint8_t name##_start[], name##_end[]; \
	(struct blob){ name##_start, name##_end }; })

/* Creates a VM with `size` bytes of libkvm memory at guest-physical 0 (slot 0). */
int vm_with_memory(uint64_t size);
/* Copies a blob into guest memory at `gpa`. */
void load_blob(int vm, uint64_t gpa, struct blob b);

/* Sets the calling thread's vcpu to start at `ip` in each mode (flat segments). */
void setup_real_mode(uint16_t ip);
/* Real mode with a 4 GiB DS limit ("unreal" mode): addr32 data accesses reach the
 * local APIC at 0xfee00000. */
void setup_unreal_mode(uint16_t ip);
void setup_protected_mode(uint32_t eip);
/* Builds identity-mapping page tables (2 MiB pages, first 1 GiB) at `pt_base` (three
 * 4 KiB pages) and enters 64-bit mode at `rip`. */
void setup_long_mode(int vm, uint64_t pt_base, uint64_t rip);
/* Like setup_long_mode, but the guest runs in ring 3 (user pages, CPL 3 segments) with
 * IOPL 3, so `in`/`out` work and `hlt` faults. On kvm_pvm this code runs natively, not
 * through the instruction emulator: use it for guest loops that must be fast. */
void setup_user_long_mode(int vm, uint64_t pt_base, uint64_t rip);
/* Descriptor tables for 32-bit guests that take interrupts: a GDT at `gdt` (null, flat
 * code 0x08, flat data 0x10) with its LGDT operand at gdt + 0x100, and an IDT of 256
 * absent gates at `idt` with its LIDT operand at gdt + 0x110. Loads both into the calling
 * thread's vcpu (with setup_protected_mode, call this after it). */
void setup_descriptor_tables(int vm, uint64_t gdt, uint64_t idt);
/* Makes IDT vector `vector` a 32-bit interrupt gate to `handler`. */
void set_interrupt_gate(int vm, uint64_t idt, unsigned vector, uint32_t handler);

/* A part of a test that this host cannot run, because it lacks what `why` names (a
 * capability KVM_CHECK_EXTENSION reports as 0, a CPUID bit KVM_GET_SUPPORTED_CPUID does
 * not offer, ...): printed, and recorded for the runner (c-tests/run-tests), which counts
 * it in the summary's "skipped" and lists it. The test goes on with its other parts. Only
 * for what the host reports it lacks, never for a failure. */
void skip_section(const char *section, const char *why);
/* The same for a whole test: records it and exits 77, which the runner then counts as
 * skipped, not failed (a 77 without a record is a failure where /dev/kvm works). */
void skip_test(const char *why) __attribute__((noreturn));

/* The end of most tests: detaches the calling thread's vcpu and destroys `vm`, each
 * checked to succeed. */
void end_vm(int vm);

/* Runs until an exit other than KVM_EXIT_INTR; fails the test if it is not `reason`. */
void run_expect(int reason);
/* The last exit was KVM_EXIT_MMIO at `gpa`, of `len` bytes, a write if `is_write`. */
void check_mmio(uint64_t gpa, uint32_t len, int is_write);
/* Runs until the guest does an `out` to `port`; returns the value (size 1, 2 or 4). */
uint32_t run_until_out(uint16_t port);

const char *exit_name(int reason);

/* A SIGALRM at the calling thread every `ms` milliseconds (its handler does nothing and
 * is installed without SA_RESTART), so that kvm_run() of a guest that never exits
 * returns -1/EINTR; watchdog_stop() ends it. Periodic, so a signal that lands just
 * before KVM_RUN is followed by one that lands inside it. */
void watchdog_start(int ms);
void watchdog_stop(void);

/* Watchdogs for the tests where a bug would hang (a lost kick, a lost interrupt, a vcpu
 * that never starts), instead of waiting for the runner's 300 s timeout: the test names
 * each phase as it enters it, with the seconds it may take; if a phase takes longer, the
 * process prints "watchdog: phase NAME hung" and exits 1. The watchdog is a thread of its
 * own that blocks every signal (so no run mask or handler of the test can stop it, and no
 * signal meant for a test thread lands on it), started by the first call in a process and
 * stopped and joined at exit (so a leak checker finds nothing of it). Under valgrind or
 * ASan (LIBKVM_TEST_INSTRUMENTED) every phase may take 4 times as long. */
void watchdog_phase(const char *name, unsigned seconds);
/* One phase for the whole test. */
void deadline(unsigned secs);

/* Leak checks: counts of this process's KVM fds and KVM run-area mappings, and whether
 * an address is mapped at all. */
int count_kvm_fds(void);
/* The KVM fds each vcpu holds: its own, and its statistics' where the kernel has binary
 * statistics (libkvm opens them with the vcpu). */
int kvm_fds_per_vcpu(void);
int count_kvm_mappings(void);
int is_mapped(const void *addr);
int count_fds(void);
/* Calls fn (unless NULL) with the name and link target of each open fd of this process;
 * returns how many there are. */
int each_fd(void (*fn)(const char *fd, const char *target, void *arg), void *arg);
/* Fails the test if any KVM fd (VM or vcpu) or KVM mapping (run area) of this process
 * remains. Every test that exits 0 is checked like this at exit; `where` names the
 * scenario in the message. */
void check_no_kvm_leaks(const char *where);
/* ---- preambles many tests share ---------------------------------------------------- */

/* Loads `b` at `gpa`, creates vcpu `id` of `vm` on the calling thread and sets it to start
 * there in real mode (setup_real_mode) or protected mode (setup_protected_mode). Returns
 * the vcpu's fd. */
int real_mode_vcpu(int vm, unsigned id, uint64_t gpa, struct blob b);
int protected_mode_vcpu(int vm, unsigned id, uint64_t gpa, struct blob b);
/* Reads the calling thread's vcpu registers into `r`, runs the statements (which edit
 * r), writes them back: EDIT_REGS(r, r.rsi = 21; r.rbx = 6). */
#define EDIT_REGS(r, ...) do { struct kvm_regs r; OK(kvm_get_regs(&r)); __VA_ARGS__; \
	OK(kvm_set_regs(&r)); } while (0)
/* The same for the special registers: EDIT_SREGS(s, s.cr4 |= 1 << 5). */
#define EDIT_SREGS(s, ...) do { struct kvm_sregs s; OK(kvm_get_sregs(&s)); __VA_ARGS__; \
	OK(kvm_set_sregs(&s)); } while (0)
/* Like run_until_out, but fails after `secs` without that exit: a lost interrupt, NMI or
 * breakpoint leaves the guest spinning (a periodic watchdog makes kvm_run return to look
 * at the time). */
uint32_t run_until_out_within(uint16_t port, unsigned secs);

/* The rm_apic guest (guests/interrupt.S) at 0x1000, its handlers of vectors 0x40 and 0x41 in
 * the IVT, on vcpu 0 of `vm` (the calling thread's) in unreal mode, so that it reaches
 * the local APIC at 0xfee00000. For a VM whose local APICs are the kernel's. */
void apic_guest_vcpu(int vm);
/* Its first steps: kvm_interrupt(0x40) is refused (EAGAIN) before the guest enables its
 * APIC; once it has, with interrupts on, the handler runs. */
void apic_guest_first_interrupt(void);
/* Its next steps: with interrupts off the APIC holds kvm_interrupt(0x41) until the
 * guest's sti, then the handler runs; two handler runs in all (the refused one never
 * arrived), and the in-kernel path never asked for an interrupt window. */
void apic_guest_held_interrupt(int vm);

/* Runs fn(arg) on a new thread (one without a vcpu) and waits for it. */
void on_thread(void *(*fn)(void *), void *arg);
/* A zeroed CPUID buffer for n entries (nent = n). */
struct kvm_cpuid2 *cpuid_alloc(unsigned n);
/* KVM_GET_SUPPORTED_CPUID into a buffer of 256 entries (malloc'd). */
struct kvm_cpuid2 *supported_cpuid(void);
/* The calling thread's vcpu gets the host's supported CPUID. */
void set_supported_cpuid(void);
/* Starts fn(arg) on a new thread (which kicks, signals or otherwise interrupts the
 * caller), checks that the calling thread's kvm_run returns -1 with EINTR, and joins it. */
void run_interrupted_by(void *(*fn)(void *), void *arg);
/* The entry of function `fn`, index `idx` in `c`, or NULL. */
struct kvm_cpuid_entry2 *cpuid_leaf(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx);

/* The real-mode interrupt vector table at guest-physical 0 of `vm`: entry v is
 * ivt[2 * v] (offset), ivt[2 * v + 1] (segment). */
uint16_t *real_mode_ivt(int vm);

/* ---- snapshots across processes ------------------------------------------------------ */

/* The calling thread's vcpu, or `vm`, saved into a malloc'd blob of the size the E2BIG
 * probe reports; its length in *len. */
uint8_t *save_vcpu_blob(size_t *len);
uint8_t *save_vm_blob(int vm, size_t *len);
/* An MSR index list read with its E2BIG protocol, which this checks: a list too short
 * by one is E2BIG with the count needed in nmsrs, one with room to spare is filled and
 * nmsrs set to the count. `get` is kvm_get_msr_index_list or
 * kvm_get_msr_feature_index_list; the list is malloc'd, its count in nmsrs. */
struct kvm_msr_list *read_msr_list(int (*get)(struct kvm_msr_list *));

/* Records handed from a test to its re-executed self: WRITE_RECORDS(path, {p, n}, ...)
 * writes each {pointer, length} as a length-prefixed record to a new file at the
 * mkstemp(3) template `path` (which it completes); get_record reads the next one back
 * (it mallocs it; its length in *n unless n is NULL). */
struct record { const void *p; size_t n; };
void write_records(char *path, const struct record *r, size_t count);
#define WRITE_RECORDS(path, ...) \
	write_records(path, (const struct record[]){ __VA_ARGS__ }, \
		      sizeof((const struct record[]){ __VA_ARGS__ }) / sizeof(struct record))
void *get_record(FILE *f, size_t *n);
/* The CRC-32 (IEEE, reflected) of n bytes continuing from c: the blob format's. */
uint32_t blob_crc32(const uint8_t *p, size_t n, uint32_t c);
/* Runs this program again in a child as `argv0 arg path` (its own path, not
 * /proc/self/exe, which under valgrind names valgrind) and waits for it. Returns its exit
 * status (-1 if it did not exit), its pid in *pid unless pid is NULL. */
int run_self(const char *argv0, const char *arg, const char *path, pid_t *pid);

/* ---- the fd limit ------------------------------------------------------------------ */

/* RLIMIT_NOFILE at the lowest free fd, so that the next fd made fails with EMFILE;
 * unlimit_fds() puts the limit back. */
void limit_fds(void);
void unlimit_fds(void);
/* CHECK_ERR of a call made under limit_fds(): the check and its record (which opens a
 * file, so needs an fd of its own) come after the limit is lifted again. */
#define CHECK_ERR_NOFILE(call, err) do { limit_fds(); errno = 0; long r_ = (long)(call); \
	int e_ = errno; unlimit_fds(); \
	if (r_ != -1) FAIL("%s returned %ld under the fd limit, expected -1 with %s", #call, r_, #err); \
	if (e_ != (err)) FAIL("%s: errno %d (%s), expected %s", #call, e_, strerror(e_), #err); \
	note_errno(#call, e_); } while (0)
/* Whether the fd limit reaches the kernel, as /proc/self/limits shows it: valgrind
 * keeps RLIMIT_NOFILE to itself (its setrlimit never reaches the kernel, and fds that
 * ioctls return are not held to its own count), so under it no KVM fd meets the limit. */
int nofile_enforced(void);

/* A field of /proc/self/status in kB (VmRSS, VmSize, ...). */
long proc_status_kb(const char *field);
/* Number of mappings in /proc/self/maps. */
int count_mappings(void);

#endif
