/* Shared helpers of the benchmarks (see bench.h). */
#define _GNU_SOURCE
#include "bench.h"
#include "control_regs64.h"
#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int bench_rounds(int dflt)
{
	const char *s = getenv("BENCH_ROUNDS");
	int n = s ? atoi(s) : dflt;
	return n > 0 ? n : 1;
}

long bench_iters(long dflt)
{
	const char *s = getenv("BENCH_SCALE");
	double f = s ? atof(s) : 1.0;
	long n = (long)(dflt * f);
	return n > 0 ? n : 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double percentile(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	int i = (int)(p * (n - 1) + 0.5);
	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void log_line(const char *line)
{
	fputs(line, stdout);
	fflush(stdout);
	const char *path = getenv("BENCH_LOG");
	if (path) {
		FILE *f = fopen(path, "a");
		if (f) {
			fputs(line, f);
			fclose(f);
		}
	}
}

const char *bench_labels[2] = { "libkvm", "raw" };

void report(const char *name, const char *unit, double lib, double raw, double ratio,
	    double goal)
{
	char line[512], verdict[64] = "";
	if (goal > 0)
		snprintf(verdict, sizeof(verdict), "  goal <= %.2f: %s", goal,
			 ratio <= goal ? "met" : "MISSED");
	snprintf(line, sizeof(line), "%-44s %-6s %10.1f %-3s %-6s %10.1f %-3s ratio %.3f%s\n",
		 name, bench_labels[0], lib, unit, bench_labels[1], raw, unit, ratio, verdict);
	log_line(line);
}

void report_note(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	log_line(line);
}

double compare(const char *name, int rounds, double (*lib)(void *), double (*raw)(void *),
	       void *arg, double goal)
{
	double *l = calloc((size_t)rounds, sizeof(double));
	double *r = calloc((size_t)rounds, sizeof(double));
	double *q = calloc((size_t)rounds, sizeof(double));
	if (!l || !r || !q)
		DIE("out of memory");
	for (int i = 0; i < rounds; i++) {
		if (i % 2 == 0) {
			l[i] = lib(arg);
			r[i] = raw(arg);
		} else {
			r[i] = raw(arg);
			l[i] = lib(arg);
		}
		q[i] = l[i] / r[i];
	}
	double ratio = median(q, rounds);
	report(name, "ns", median(l, rounds), median(r, rounds), ratio, goal);
	free(l);
	free(r);
	free(q);
	return ratio;
}

/* ---- raw side ------------------------------------------------------------------------ */

int raw_kvm(void)
{
	static int fd = -1;
	if (fd < 0)
		fd = TRY(open("/dev/kvm", O_RDWR | O_CLOEXEC));
	return fd;
}

void raw_vm_create(struct raw_vm *r, size_t size, uint32_t flags)
{
	raw_vm_create_fd(r, size, flags, -1, MAP_PRIVATE | MAP_ANONYMOUS);
}

void raw_vm_create_fd(struct raw_vm *r, size_t size, uint32_t flags, int fd, int map_flags)
{
	memset(r, 0, sizeof(*r));
	r->vcpu = -1;
	r->vm = TRY(ioctl(raw_kvm(), KVM_CREATE_VM, 0));
	r->mem_size = size;
	r->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, map_flags | MAP_NORESERVE, fd, 0);
	if (r->mem == MAP_FAILED)
		DIE("mmap: %s", strerror(errno));
	struct kvm_userspace_memory_region region = {
		.slot = 0, .flags = flags, .guest_phys_addr = 0, .memory_size = size,
		.userspace_addr = (uintptr_t)r->mem,
	};
	TRY(ioctl(r->vm, KVM_SET_USER_MEMORY_REGION, &region));
}

void raw_vcpu_create(struct raw_vm *r, unsigned id)
{
	static long run_size;
	if (!run_size)
		run_size = TRY(ioctl(raw_kvm(), KVM_GET_VCPU_MMAP_SIZE, 0));
	r->vcpu = TRY(ioctl(r->vm, KVM_CREATE_VCPU, id));
	r->run_size = (size_t)run_size;
	r->run = mmap(NULL, r->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->vcpu, 0);
	if (r->run == MAP_FAILED)
		DIE("mmap run area: %s", strerror(errno));
}

void raw_vm_destroy(struct raw_vm *r)
{
	if (r->run)
		munmap(r->run, r->run_size);
	if (r->vcpu >= 0)
		close(r->vcpu);
	close(r->vm);
	munmap(r->mem, r->mem_size);
	memset(r, 0, sizeof(*r));
}

void raw_load(struct raw_vm *r, uint64_t gpa, struct blob b)
{
	memcpy(r->mem + gpa, b.start, (size_t)(b.end - b.start));
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, int db)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->db = db;
	s->g = 1;
}

static void real_mode_sregs(struct kvm_sregs *s)
{
	s->cs.selector = 0;
	s->cs.base = 0;
}

static void protected_mode_sregs(struct kvm_sregs *s)
{
	flat_segment(&s->cs, 0x08, 11, 1);
	flat_segment(&s->ds, 0x10, 3, 1);
	s->es = s->fs = s->gs = s->ss = s->ds;
	s->cr0 |= 0x11; /* PE | ET */
}

static void start_regs(struct kvm_regs *g, uint64_t ip)
{
	memset(g, 0, sizeof(*g));
	g->rip = ip;
	g->rflags = 2;
}

void raw_setup_real_mode(struct raw_vm *r, uint16_t ip)
{
	struct kvm_sregs s;
	struct kvm_regs g;
	TRY(ioctl(r->vcpu, KVM_GET_SREGS, &s));
	real_mode_sregs(&s);
	TRY(ioctl(r->vcpu, KVM_SET_SREGS, &s));
	start_regs(&g, ip);
	TRY(ioctl(r->vcpu, KVM_SET_REGS, &g));
}

void raw_setup_protected_mode(struct raw_vm *r, uint32_t eip)
{
	struct kvm_sregs s;
	struct kvm_regs g;
	TRY(ioctl(r->vcpu, KVM_GET_SREGS, &s));
	protected_mode_sregs(&s);
	TRY(ioctl(r->vcpu, KVM_SET_SREGS, &s));
	start_regs(&g, eip);
	TRY(ioctl(r->vcpu, KVM_SET_REGS, &g));
}

void raw_run_expect(struct raw_vm *r, int reason)
{
	TRY(ioctl(r->vcpu, KVM_RUN, 0));
	if ((int)r->run->exit_reason != reason)
		DIE("raw: exit %u, expected %d", r->run->exit_reason, reason);
}

/* ---- libkvm side --------------------------------------------------------------------- */

int lib_vm_create(size_t size, uint32_t flags, uint64_t gpa, struct blob b)
{
	int vm = TRY(kvm_create_vm());
	TRY(kvm_set_memory_region(vm, 0, flags, 0, size));
	size_t n = (size_t)(b.end - b.start);
	void *p = kvm_guest_memory(vm, gpa, n);
	if (!p)
		DIE("kvm_guest_memory: %s", strerror(errno));
	memcpy(p, b.start, n);
	return vm;
}

void lib_setup_real_mode(uint16_t ip)
{
	struct kvm_sregs s;
	struct kvm_regs g;
	TRY(kvm_get_sregs(&s));
	real_mode_sregs(&s);
	TRY(kvm_set_sregs(&s));
	start_regs(&g, ip);
	TRY(kvm_set_regs(&g));
}

void lib_setup_protected_mode(uint32_t eip)
{
	struct kvm_sregs s;
	struct kvm_regs g;
	TRY(kvm_get_sregs(&s));
	protected_mode_sregs(&s);
	TRY(kvm_set_sregs(&s));
	start_regs(&g, eip);
	TRY(kvm_set_regs(&g));
}

void lib_setup_user_long_mode(int vm, uint64_t pt_base, uint64_t rip)
{
	/* One user-accessible 2 MiB page at 0: PML4, PDPT and PD at pt_base. */
	uint64_t *pt = kvm_guest_memory(vm, pt_base, 0x3000);
	if (!pt)
		DIE("kvm_guest_memory: %s", strerror(errno));
	memset(pt, 0, 0x3000);
	pt[0] = (pt_base + 0x1000) | 7;   /* present, writable, user */
	pt[512] = (pt_base + 0x2000) | 7;
	pt[1024] = 0x87;                  /* the 2 MiB page at 0 */
	struct kvm_sregs s;
	struct kvm_regs g;
	TRY(kvm_get_sregs(&s));
	flat_segment(&s.cs, 0x1b, 11, 0);
	s.cs.l = 1;
	flat_segment(&s.ds, 0x23, 3, 1);
	s.cs.dpl = s.ds.dpl = 3;
	s.es = s.fs = s.gs = s.ss = s.ds;
	long_mode_control(&s, pt_base);
	TRY(kvm_set_sregs(&s));
	start_regs(&g, rip);
	TRY(kvm_set_regs(&g));
}

void lib_run_expect(int reason)
{
	int r = TRY(kvm_run());
	if (r != reason)
		DIE("libkvm: exit %d, expected %d", r, reason);
}

double lib_exit_loop(long iters)
{
	uint64_t t0 = now_ns();
	for (long i = 0; i < iters; i++)
		if (kvm_run() != KVM_EXIT_IO)
			DIE("libkvm: unexpected exit (%s)", strerror(errno));
	return (double)(now_ns() - t0) / (double)iters;
}

double raw_exit_loop(struct raw_vm *r, long iters)
{
	int fd = r->vcpu;
	struct kvm_run *run = r->run;
	uint64_t t0 = now_ns();
	for (long i = 0; i < iters; i++)
		if (ioctl(fd, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_IO)
			DIE("raw: unexpected exit (%s)", strerror(errno));
	return (double)(now_ns() - t0) / (double)iters;
}
