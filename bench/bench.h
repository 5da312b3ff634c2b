/* Shared helpers of the benchmarks in bench/: timing and statistics, the raw-ioctl side
 * (a VM and vcpu driven with ioctl(2) and the run area mmap()ed by hand), and guest setup
 * for both sides. Each benchmark measures the libkvm path and the raw path in one
 * process, alternating between them round by round, and prints medians and the ratio
 * libkvm/raw (the median of the per-round ratios: this machine is noisy). */
#ifndef LIBKVM_BENCH_H
#define LIBKVM_BENCH_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libkvm.h>

#define DIE(...) do { fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)
/* Fails the benchmark with errno if `call` returned -1. */
#define TRY(call) ({ long r_ = (long)(call); \
	if (r_ == -1) { DIE("%s: %s", #call, strerror(errno)); } r_; })

/* A guest blob from bench/guests.S (GUEST_BEGIN/GUEST_END of c-tests/guest.h). */
struct blob { const uint8_t *start, *end; };
#define BLOB(name) ({ extern const uint8_t name##_start[], name##_end[]; \
	(struct blob){ name##_start, name##_end }; })

/* Monotonic time in nanoseconds (vDSO: no system call). */
uint64_t now_ns(void);

/* Rounds and iterations, from BENCH_ROUNDS / BENCH_SCALE (a factor on the iteration
 * counts, for a quick smoke run) when set. */
int bench_rounds(int dflt);
long bench_iters(long dflt);

/* Statistics over n doubles (the array is sorted in place). */
double median(double *v, int n);
double percentile(double *v, int n, double p);

/* One line of results: name, libkvm and raw medians (unit given), ratio and, when goal
 * > 0, whether ratio <= goal. Also appended to $BENCH_LOG when set. */
void report(const char *name, const char *unit, double lib, double raw, double ratio,
	    double goal);
/* The names report() gives the two sides ("libkvm", "raw"). */
extern const char *bench_labels[2];
void report_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs `lib` and `raw` `rounds` times each, alternating which goes first; each call
 * returns the cost of one operation (ns). Prints the line and returns the ratio. */
double compare(const char *name, int rounds, double (*lib)(void *), double (*raw)(void *),
	       void *arg, double goal);

/* ---- the raw side: plain ioctls -------------------------------------------------- */

struct raw_vm {
	int vm, vcpu;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;
	size_t mem_size;
};

/* /dev/kvm, opened once. */
int raw_kvm(void);
/* A VM with `size` bytes of anonymous memory at guest-physical 0 (slot 0, `flags`). */
void raw_vm_create(struct raw_vm *r, size_t size, uint32_t flags);
/* The same with `size` bytes of file `fd` from offset 0, mapped with `map_flags`. */
void raw_vm_create_fd(struct raw_vm *r, size_t size, uint32_t flags, int fd, int map_flags);
/* Vcpu `id` and its run area. */
void raw_vcpu_create(struct raw_vm *r, unsigned id);
void raw_vm_destroy(struct raw_vm *r);
void raw_load(struct raw_vm *r, uint64_t gpa, struct blob b);
/* Real mode at 0:ip, or flat 32-bit protected mode at eip (both unpaged). */
void raw_setup_real_mode(struct raw_vm *r, uint16_t ip);
void raw_setup_protected_mode(struct raw_vm *r, uint32_t eip);
/* KVM_RUN once; dies unless the exit is `reason`. */
void raw_run_expect(struct raw_vm *r, int reason);
/* `iters` KVM_RUNs, each of which must end in KVM_EXIT_IO: the cost of one (ns). */
double raw_exit_loop(struct raw_vm *r, long iters);

/* ---- the libkvm side -------------------------------------------------------------- */

/* A VM with `size` bytes of libkvm memory at 0 (slot 0, `flags`) and the blob at gpa. */
int lib_vm_create(size_t size, uint32_t flags, uint64_t gpa, struct blob b);
void lib_setup_real_mode(uint16_t ip);
void lib_setup_protected_mode(uint32_t eip);
void lib_run_expect(int reason);
/* `iters` kvm_run() calls of the calling thread's vcpu, each of which must end in
 * KVM_EXIT_IO: the cost of one (ns). */
double lib_exit_loop(long iters);
/* 64-bit ring 3 at rip (page tables at pt_base, identity-mapping the first 2 MiB):
 * guest code that kvm_pvm runs natively, not through its instruction emulator. */
void lib_setup_user_long_mode(int vm, uint64_t pt_base, uint64_t rip);

#endif
