/* Shared helpers of the C tests (see harness.h). */
#define _GNU_SOURCE
#include "harness.h"
#include "control_regs64.h"
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* on_exit handler: a test that passes must leave no KVM fd or mapping behind. */
static void leak_check_at_exit(int status, void *arg)
{
	(void)arg;
	if (status != 0)
		return;
	int fds = count_kvm_fds(), maps = count_kvm_mappings();
	if (fds || maps) {
		fprintf(stderr, "leak: %d KVM fds and %d KVM mappings remain at exit\n", fds, maps);
		_exit(1);
	}
}

void require_kvm(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		fprintf(stderr, "SKIP: /dev/kvm is not usable here: %s\n", strerror(errno));
		exit(SKIP);
	}
	static int armed;
	if (!armed++)
		on_exit(leak_check_at_exit, NULL);
}

/* One line "section: why" in the file the runner names (LIBKVM_TEST_SKIPS), and the
 * same on stdout for the test's log. */
void skip_section(const char *section, const char *why)
{
	printf("SKIP %s: %s\n", section, why);
	fflush(stdout);
	const char *path = getenv("LIBKVM_TEST_SKIPS");
	if (!path || !*path)
		return;
	FILE *f = fopen(path, "ae");
	if (!f)
		FAIL("cannot record the skipped section in %s: %s", path, strerror(errno));
	fprintf(f, "%s: %s\n", section, why);
	fclose(f);
}

void note_errno(const char *call, int err)
{
	const char *path = getenv("LIBKVM_TEST_ERRNOS");
	const char *k = strstr(call, "kvm_");
	if (!path || !*path || !k)
		return;
	/* Opened and closed each time: a test that counts its fds must not see this one. */
	FILE *f = fopen(path, "ae");
	if (!f)
		return;
	int n = (int)strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_");
	fprintf(f, "%.*s %s\n", n, k, strerrorname_np(err));
	fclose(f);
}

static const char *_Atomic phase_name;
static _Atomic long phase_deadline;   /* CLOCK_MONOTONIC seconds */
static _Atomic unsigned phase_seconds;
static atomic_int phase_stop;
static pthread_t phase_thread;
static pid_t phase_pid;               /* the process whose watchdog thread runs */

static long now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

static void *watchdog_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&phase_stop)) {
		struct timespec tick = { 0, 100 * 1000 * 1000 };
		nanosleep(&tick, NULL);
		if (now_s() <= atomic_load(&phase_deadline))
			continue;
		/* No stdio: a hung thread may hold the lock of stderr. */
		char msg[256];
		int n = snprintf(msg, sizeof(msg), "watchdog: phase \"%s\" hung: no progress in %u s\n",
				 atomic_load(&phase_name), atomic_load(&phase_seconds));
		if (write(2, msg, n > 0 && (size_t)n < sizeof(msg) ? (size_t)n : strlen(msg)) < 0)
			_exit(1);
		_exit(1);
	}
	return NULL;
}

/* atexit: stops and joins the watchdog, in the process that started it. */
static void watchdog_end(void)
{
	if (phase_pid != getpid())
		return;
	atomic_store(&phase_stop, 1);
	pthread_join(phase_thread, NULL);
	phase_pid = 0;
}

void watchdog_phase(const char *name, unsigned seconds)
{
	if (getenv("LIBKVM_TEST_INSTRUMENTED"))
		seconds *= 4;
	atomic_store(&phase_name, name);
	atomic_store(&phase_seconds, seconds);
	atomic_store(&phase_deadline, now_s() + (long)seconds);
	if (phase_pid == getpid())
		return;
	/* First phase of this process (a fork child has no watchdog thread of its parent). */
	static int registered;
	sigset_t all, old;
	sigfillset(&all);
	CHECK(pthread_sigmask(SIG_SETMASK, &all, &old) == 0);
	atomic_store(&phase_stop, 0);
	int e = pthread_create(&phase_thread, NULL, watchdog_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0)
		FAIL("watchdog: pthread_create: %s", strerror(e));
	phase_pid = getpid();
	if (!registered++)
		CHECK(atexit(watchdog_end) == 0);
}

void deadline(unsigned secs)
{
	watchdog_phase("the whole test", secs);
}

void skip_test(const char *why)
{
	skip_section("the whole test", why);
	exit(SKIP);
}

int vm_with_memory(uint64_t size)
{
	int vm = OK(kvm_create_vm());
	OK(kvm_set_memory_region(vm, 0, 0, 0, size));
	return vm;
}

void load_blob(int vm, uint64_t gpa, struct blob b)
{
	size_t n = (size_t)(b.end - b.start);
	void *p = kvm_guest_memory(vm, gpa, n);
	if (!p)
		FAIL("guest memory at 0x%llx+%zu: %s", (unsigned long long)gpa, n, strerror(errno));
	memcpy(p, b.start, n);
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, int db, int l, int g)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = g ? 0xffffffff : 0xffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->db = db;
	s->l = l;
	s->g = g;
}

static void set_ip(uint64_t ip)
{
	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = ip;
	regs.rflags = 2;
	regs.rsp = 0;
	OK(kvm_set_regs(&regs));
}

void setup_real_mode(uint16_t ip)
{
	EDIT_SREGS(s, s.cs.selector = 0; s.cs.base = 0);
	set_ip(ip);
}

void setup_unreal_mode(uint16_t ip)
{
	setup_real_mode(ip);
	EDIT_SREGS(s, s.ds.limit = 0xffffffff; s.ds.g = 1);
}

void setup_protected_mode(uint32_t eip)
{
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	flat_segment(&s.cs, 0x08, 11, 1, 0, 1);
	flat_segment(&s.ds, 0x10, 3, 1, 0, 1);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.cr0 |= 0x11; /* PE | ET */
	OK(kvm_set_sregs(&s));
	set_ip(eip);
}

void setup_long_mode(int vm, uint64_t pt_base, uint64_t rip)
{
	uint64_t *pml4 = kvm_guest_memory(vm, pt_base, 0x3000);
	CHECK(pml4 != NULL);
	uint64_t *pdpt = pml4 + 512, *pd = pml4 + 1024;
	memset(pml4, 0, 0x3000);
	pml4[0] = (pt_base + 0x1000) | 3;         /* present, writable */
	pdpt[0] = (pt_base + 0x2000) | 3;
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = (i << 21) | 0x83;          /* present, writable, 2 MiB page */

	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	flat_segment(&s.cs, 0x08, 11, 0, 1, 1);
	flat_segment(&s.ds, 0x10, 3, 1, 0, 1);
	s.es = s.fs = s.gs = s.ss = s.ds;
	long_mode_control(&s, pt_base);
	OK(kvm_set_sregs(&s));
	set_ip(rip);
}

void setup_user_long_mode(int vm, uint64_t pt_base, uint64_t rip)
{
	setup_long_mode(vm, pt_base, rip);
	uint64_t *pt = kvm_guest_memory(vm, pt_base, 0x3000);
	CHECK(pt != NULL);
	for (int i = 0; i < 3 * 512; i++)
		if (pt[i] & 1)
			pt[i] |= 4;                /* user-accessible */
	EDIT_SREGS(s, s.cs.selector = 0x1b; s.cs.dpl = 3; s.ds.selector = 0x23; s.ds.dpl = 3; s.es = s.fs = s.gs = s.ss = s.ds);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rflags = 0x3002;                         /* IOPL 3 */
	OK(kvm_set_regs(&r));
}

void setup_descriptor_tables(int vm, uint64_t gdt, uint64_t idt)
{
	uint64_t *g = kvm_guest_memory(vm, gdt, 0x118);
	CHECK(g != NULL);
	g[0] = 0;
	g[1] = 0x00cf9a000000ffffULL;              /* 0x08: flat 32-bit code */
	g[2] = 0x00cf92000000ffffULL;              /* 0x10: flat data */
	uint8_t *ops = (uint8_t *)g + 0x100;
	uint16_t glimit = 23, ilimit = 256 * 8 - 1;
	uint32_t gbase = (uint32_t)gdt, ibase = (uint32_t)idt;
	memcpy(ops, &glimit, 2);
	memcpy(ops + 2, &gbase, 4);
	memcpy(ops + 0x10, &ilimit, 2);
	memcpy(ops + 0x12, &ibase, 4);
	void *i = kvm_guest_memory(vm, idt, 256 * 8);
	CHECK(i != NULL);
	memset(i, 0, 256 * 8);
	EDIT_SREGS(s, s.gdt.base = gdt; s.gdt.limit = glimit; s.idt.base = idt; s.idt.limit = ilimit);
}

void set_interrupt_gate(int vm, uint64_t idt, unsigned vector, uint32_t handler)
{
	uint32_t *gate = kvm_guest_memory(vm, idt + 8 * vector, 8);
	CHECK(gate != NULL);
	gate[0] = (0x08u << 16) | (handler & 0xffff);
	gate[1] = (handler & 0xffff0000) | 0x8e00; /* present, DPL 0, 32-bit interrupt gate */
}

static const char *const exit_names[] = {
	[KVM_EXIT_UNKNOWN] = "UNKNOWN", [KVM_EXIT_EXCEPTION] = "EXCEPTION", [KVM_EXIT_IO] = "IO",
	[KVM_EXIT_HYPERCALL] = "HYPERCALL", [KVM_EXIT_DEBUG] = "DEBUG", [KVM_EXIT_HLT] = "HLT",
	[KVM_EXIT_MMIO] = "MMIO", [KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
	[KVM_EXIT_SHUTDOWN] = "SHUTDOWN", [KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
	[KVM_EXIT_INTR] = "INTR", [KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
};

const char *exit_name(int reason)
{
	if (reason >= 0 && (size_t)reason < sizeof(exit_names) / sizeof(exit_names[0]) && exit_names[reason])
		return exit_names[reason];
	return "?";
}

static void describe_exit(int reason)
{
	struct kvm_regs r;
	struct kvm_run *run = kvm_run_area();
	fprintf(stderr, "exit %d (%s)", reason, exit_name(reason));
	if (kvm_get_regs(&r) == 0)
		fprintf(stderr, " at rip 0x%llx rax 0x%llx", (unsigned long long)r.rip, (unsigned long long)r.rax);
	if (reason == KVM_EXIT_IO)
		fprintf(stderr, " port 0x%x dir %d", run->io.port, run->io.direction);
	if (reason == KVM_EXIT_MMIO)
		fprintf(stderr, " mmio 0x%llx", (unsigned long long)run->mmio.phys_addr);
	if (reason == KVM_EXIT_INTERNAL_ERROR)
		fprintf(stderr, " suberror %u", run->internal.suberror);
	fputc('\n', stderr);
}

void end_vm(int vm)
{
	OK(kvm_detach_vcpu());
	OK(kvm_destroy_vm(vm));
}

void run_expect(int reason)
{
	int r;
	do
		r = kvm_run();
	while (r == -1 && errno == EINTR);
	if (r == -1)
		FAIL("kvm_run: %s", strerror(errno));
	if (r != reason) {
		describe_exit(r);
		FAIL("expected exit %s, got %s", exit_name(reason), exit_name(r));
	}
}

void check_mmio(uint64_t gpa, uint32_t len, int is_write)
{
	struct kvm_run *run = kvm_run_area();
	if (run->exit_reason != KVM_EXIT_MMIO || run->mmio.phys_addr != gpa ||
	    run->mmio.len != len || run->mmio.is_write != is_write) {
		describe_exit((int)run->exit_reason);
		FAIL("expected an MMIO %s of %u bytes at 0x%llx, got %u bytes, %s", is_write ? "write" : "read",
		     len, (unsigned long long)gpa, run->mmio.len, run->mmio.is_write ? "write" : "read");
	}
}

uint32_t run_until_out(uint16_t port)
{
	run_expect(KVM_EXIT_IO);
	struct kvm_run *run = kvm_run_area();
	if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != port) {
		describe_exit(KVM_EXIT_IO);
		FAIL("expected out to port 0x%x", port);
	}
	const uint8_t *data = (const uint8_t *)run + run->io.data_offset;
	uint32_t v = 0;
	memcpy(&v, data, run->io.size);
	return v;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static __thread timer_t watchdog;
static __thread int watchdog_armed;

void watchdog_start(int ms)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
	struct sigevent ev;
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = SIGALRM;
	ev._sigev_un._tid = gettid();
	CHECK(timer_create(CLOCK_MONOTONIC, &ev, &watchdog) == 0);
	struct itimerspec it = {
		.it_value = { ms / 1000, (ms % 1000) * 1000000L },
		.it_interval = { ms / 1000, (ms % 1000) * 1000000L },
	};
	CHECK(timer_settime(watchdog, 0, &it, NULL) == 0);
	watchdog_armed = 1;
}

void watchdog_stop(void)
{
	if (watchdog_armed)
		CHECK(timer_delete(watchdog) == 0);
	watchdog_armed = 0;
}

int each_fd(void (*fn)(const char *fd, const char *target, void *arg), void *arg)
{
	DIR *d = opendir("/proc/self/fd");
	CHECK(d != NULL);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char path[300], target[256];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t len = readlink(path, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = 0;
		n++;
		if (fn)
			fn(e->d_name, target, arg);
	}
	closedir(d);
	return n;
}

static void count_prefixed(const char *fd, const char *target, void *arg)
{
	(void)fd;
	struct { const char *prefix; int n; } *c = arg;
	if (strncmp(target, c->prefix, strlen(c->prefix)) == 0)
		c->n++;
}

static int count_fd_links(const char *prefix)
{
	struct { const char *prefix; int n; } c = { prefix, 0 };
	each_fd(count_prefixed, &c);
	return c.n;
}

int count_kvm_fds(void)
{
	return count_fd_links("anon_inode:kvm-");
}

int kvm_fds_per_vcpu(void)
{
	return 1 + (kvm_check_extension(-1, KVM_CAP_BINARY_STATS_FD) > 0);
}

int count_fds(void)
{
	return count_fd_links("");
}

int count_kvm_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	CHECK(f != NULL);
	char line[512];
	int n = 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "kvm-vcpu") || strstr(line, "kvm-vm"))
			n++;
	fclose(f);
	return n;
}

int is_mapped(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	CHECK(f != NULL);
	char line[512];
	int found = 0;
	uintptr_t a = (uintptr_t)addr;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi)
			found = 1;
	}
	fclose(f);
	return found;
}

void check_no_kvm_leaks(const char *where)
{
	int fds = count_kvm_fds(), maps = count_kvm_mappings();
	if (fds || maps)
		FAIL("%s: %d KVM fds and %d KVM mappings remain", where, fds, maps);
}

long proc_status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	CHECK(f != NULL);
	char line[256];
	long v = -1;
	size_t n = strlen(field);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	if (v < 0)
		FAIL("no %s in /proc/self/status", field);
	return v;
}

int count_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	CHECK(f != NULL);
	int n = 0, c, last = '\n';
	while ((c = fgetc(f)) != EOF) {
		if (c == '\n')
			n++;
		last = c;
	}
	if (last != '\n')
		n++;
	fclose(f);
	return n;
}

/* ---- preambles many tests share ---------------------------------------------------- */

int real_mode_vcpu(int vm, unsigned id, uint64_t gpa, struct blob b)
{
	load_blob(vm, gpa, b);
	int fd = OK(kvm_create_vcpu(vm, id));
	setup_real_mode((uint16_t)gpa);
	return fd;
}

int protected_mode_vcpu(int vm, unsigned id, uint64_t gpa, struct blob b)
{
	load_blob(vm, gpa, b);
	int fd = OK(kvm_create_vcpu(vm, id));
	setup_protected_mode((uint32_t)gpa);
	return fd;
}

uint32_t run_until_out_within(uint16_t port, unsigned secs)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	watchdog_start(100);
	for (;;) {
		errno = 0;
		int r = kvm_run();
		if (r == -1 && errno == EINTR) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if (t.tv_sec - t0.tv_sec > (time_t)secs)
				FAIL("no out to port 0x%x within %u s", port, secs);
			continue;
		}
		if (r != KVM_EXIT_IO)
			FAIL("waiting for port 0x%x: kvm_run %d (%s), errno %d", port, r, exit_name(r), errno);
		struct kvm_run *run = kvm_run_area();
		if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != port)
			FAIL("expected an out to port 0x%x, got I/O on port 0x%x", port, run->io.port);
		uint32_t v = 0;
		memcpy(&v, (uint8_t *)run + run->io.data_offset, run->io.size);
		watchdog_stop();
		return v;
	}
}

#define APIC_LOAD 0x1000
#define APIC_HANDLER(sym) ({ extern const uint8_t sym[], rm_apic_start[]; \
	(uint16_t)(sym - rm_apic_start + APIC_LOAD); })

uint16_t *real_mode_ivt(int vm)
{
	uint16_t *ivt = kvm_guest_memory(vm, 0, 0x400);
	CHECK(ivt != NULL);
	return ivt;
}

void apic_guest_vcpu(int vm)
{
	load_blob(vm, APIC_LOAD, BLOB(rm_apic));
	uint16_t *ivt = real_mode_ivt(vm);
	ivt[0x40 * 2] = APIC_HANDLER(rm_apic_h40);
	ivt[0x41 * 2] = APIC_HANDLER(rm_apic_h41);
	OK(kvm_create_vcpu(vm, 0));
	setup_unreal_mode(APIC_LOAD);
	EDIT_REGS(r, r.rsp = 0x8000);
}

void apic_guest_first_interrupt(void)
{
	run_until_out(0x0f);
	CHECK_ERR(kvm_interrupt(0x40), EAGAIN);
	run_until_out(0x10);
	OK(kvm_interrupt(0x40));
	CHECK_EQ(run_until_out(0x30) & 0xff, 0x40);
	run_until_out(0x11);
}

void apic_guest_held_interrupt(int vm)
{
	run_until_out(0x12);
	OK(kvm_interrupt(0x41));
	run_until_out(0x13);
	CHECK_EQ(run_until_out(0x30) & 0xff, 0x41);
	run_until_out(0x14);
	CHECK_EQ(*(uint8_t *)kvm_guest_memory(vm, 0x500, 1), 2);
	CHECK_EQ(kvm_run_area()->request_interrupt_window, 0);
}

void on_thread(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	CHECK(pthread_create(&t, NULL, fn, arg) == 0);
	CHECK(pthread_join(t, NULL) == 0);
}

void run_interrupted_by(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	CHECK(pthread_create(&t, NULL, fn, arg) == 0);
	errno = 0;
	CHECK_EQ(kvm_run(), -1);
	CHECK_EQ(errno, EINTR);
	CHECK(pthread_join(t, NULL) == 0);
}

struct kvm_cpuid2 *cpuid_alloc(unsigned n)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
	CHECK(c != NULL);
	c->nent = n;
	return c;
}

struct kvm_cpuid2 *supported_cpuid(void)
{
	struct kvm_cpuid2 *c = cpuid_alloc(256);
	OK(kvm_get_supported_cpuid(c));
	return c;
}

void set_supported_cpuid(void)
{
	struct kvm_cpuid2 *c = supported_cpuid();
	OK(kvm_set_cpuid(c));
	free(c);
}

struct kvm_cpuid_entry2 *cpuid_leaf(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	return NULL;
}

/* ---- snapshots across processes ------------------------------------------------------ */

uint8_t *save_vcpu_blob(size_t *len)
{
	size_t n = 0;
	CHECK_ERR(kvm_save_vcpu(NULL, &n), E2BIG);
	uint8_t *b = malloc(n);
	CHECK(b != NULL);
	OK(kvm_save_vcpu(b, &n));
	*len = n;
	return b;
}

uint8_t *save_vm_blob(int vm, size_t *len)
{
	size_t n = 0;
	CHECK_ERR(kvm_save_vm(vm, NULL, &n), E2BIG);
	uint8_t *b = malloc(n);
	CHECK(b != NULL);
	OK(kvm_save_vm(vm, b, &n));
	*len = n;
	return b;
}

struct kvm_msr_list *read_msr_list(int (*get)(struct kvm_msr_list *))
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	CHECK_ERR(get(&probe), E2BIG);
	uint32_t n = probe.nmsrs;
	CHECK(n > 0);
	struct kvm_msr_list *list = calloc(1, sizeof(*list) + (n + 8) * sizeof(uint32_t));
	CHECK(list != NULL);
	list->nmsrs = n - 1;
	CHECK_ERR(get(list), E2BIG);
	CHECK_EQ(list->nmsrs, n);
	list->nmsrs = n + 8;
	OK(get(list));
	CHECK_EQ(list->nmsrs, n);
	return list;
}

void write_records(char *path, const struct record *r, size_t count)
{
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	FILE *f = fdopen(fd, "wb");
	CHECK(f != NULL);
	for (size_t i = 0; i < count; i++) {
		uint64_t n = r[i].n;
		CHECK(fwrite(&n, 8, 1, f) == 1);
		CHECK(fwrite(r[i].p, 1, r[i].n, f) == r[i].n);
	}
	CHECK(fclose(f) == 0);
}

void *get_record(FILE *f, size_t *n)
{
	uint64_t len;
	CHECK(fread(&len, 8, 1, f) == 1);
	void *p = malloc(len ? len : 1);
	CHECK(p != NULL);
	CHECK(fread(p, 1, len, f) == len);
	if (n)
		*n = len;
	return p;
}

uint32_t blob_crc32(const uint8_t *p, size_t n, uint32_t c)
{
	c = ~c;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320 ^ (c >> 1) : c >> 1;
	}
	return ~c;
}

int run_self(const char *argv0, const char *arg, const char *path, pid_t *pid)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	CHECK(n > 0);
	self[n] = 0;
	pid_t p = fork();
	CHECK(p >= 0);
	if (p == 0) {
		execl(self, argv0, arg, path, (char *)NULL);
		_exit(127);
	}
	int status;
	CHECK(waitpid(p, &status, 0) == p);
	if (pid)
		*pid = p;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- the fd limit ---------------------------------------------------------------- */

static struct rlimit saved_nofile;

void limit_fds(void)
{
	int lowest = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(lowest >= 0);
	close(lowest);
	CHECK(getrlimit(RLIMIT_NOFILE, &saved_nofile) == 0);
	struct rlimit r = { lowest, saved_nofile.rlim_max };
	CHECK(setrlimit(RLIMIT_NOFILE, &r) == 0);
}

void unlimit_fds(void)
{
	CHECK(setrlimit(RLIMIT_NOFILE, &saved_nofile) == 0);
}

int nofile_enforced(void)
{
	/* Opened before the limit (which would refuse it); the kernel writes the text
	 * when it is first read, under the limit. */
	FILE *f = fopen("/proc/self/limits", "re");
	CHECK(f != NULL);
	limit_fds();
	struct rlimit want;
	CHECK(getrlimit(RLIMIT_NOFILE, &want) == 0);
	char line[256];
	unsigned long long soft = 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Max open files %llu", &soft) == 1)
			break;
	unlimit_fds();
	fclose(f);
	return soft == want.rlim_cur;
}
