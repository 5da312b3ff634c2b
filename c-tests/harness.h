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
 * c-tests/matrix-man.sh, which checks that every errno a man page lists is produced by
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

/* Runs until an exit other than KVM_EXIT_INTR; fails the test if it is not `reason`. */
void run_expect(int reason);
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
int count_kvm_mappings(void);
int is_mapped(const void *addr);
int count_fds(void);
/* Fails the test if any KVM fd (VM or vcpu) or KVM mapping (run area) of this process
 * remains. Every test that exits 0 is checked like this at exit; `where` names the
 * scenario in the message. */
void check_no_kvm_leaks(const char *where);
/* A field of /proc/self/status in kB (VmRSS, VmSize, ...). */
long proc_status_kb(const char *field);
/* Number of mappings in /proc/self/maps. */
int count_mappings(void);

#endif
