/* kvm_stats_lookup/name/read/info and kvm_exit_reason_name: a real-mode guest does N port writes and M hlts; another thread reads the vcpu's statistics while it is halted (stopped after an HLT exit, and blocked inside KVM_RUN on the in-kernel irqchip) and finds exactly M more halt_exits, at least N + M + 1 more exits, and no exit caused by its reads, nor a return from kvm_run of a vcpu spinning at ring 3; names, lookups, sizes and every errno; a vcpu's statistics fd opened with the vcpu (a first call on a vcpu blocked in KVM_RUN does not wait), a VM's on first use, O_CLOEXEC, and are gone with the VM. */
#define _GNU_SOURCE
#include "harness.h"
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_OUTS 37
#define M_HLTS 11

/* ---- helpers ------------------------------------------------------------------------ */

static uint64_t stat1(int fd, const char *name)
{
	uint64_t v;
	int i = OK(kvm_stats_lookup(fd, name));
	CHECK_EQ(OK(kvm_stats_read(fd, i, &v, 1)), 1);
	return v;
}

struct fd_count { const char *what; int n, fd; };

static void count_target(const char *fd, const char *target, void *arg)
{
	struct fd_count *c = arg;
	if (strncmp(target, c->what, strlen(c->what)) == 0) {
		c->n++;
		c->fd = atoi(fd);
	}
}

/* How many fds of this process are statistics fds of this kind ("kvm-vcpu-stats",
 * "kvm-vm-stats"); the last one in *fd unless fd is NULL. */
static int stats_fds(const char *kind, int *fd)
{
	char what[64];
	snprintf(what, sizeof(what), "anon_inode:%s", kind);
	struct fd_count c = { what, 0, -1 };
	each_fd(count_target, &c);
	if (fd)
		*fd = c.fd;
	return c.n;
}

/* The flags field of /proc/self/fdinfo/FD (octal). */
static unsigned long fd_flags(int fd)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	unsigned long flags = 0;
	int found = 0;
	while (fgets(line, sizeof(line), f))
		found |= sscanf(line, "flags: %lo", &flags) == 1;
	fclose(f);
	CHECK(found);
	return flags;
}

/* ---- names, lookups, sizes, errnos -------------------------------------------------- */

/* Every index has a name that looks up to it, its size agrees between kvm_stats_info and
 * kvm_stats_read, and index -1 reads every value in index order. Returns the count. */
static int check_table(int fd)
{
	int n = 0, total = 0;
	while (kvm_stats_name(fd, n))
		n++;
	CHECK(n > 0);
	CHECK_ERR(kvm_stats_name(fd, n), ERANGE);
	uint64_t all[4096], one[256];
	int count = OK(kvm_stats_read(fd, -1, NULL, 0));
	CHECK(count >= n && count <= 4096);
	CHECK_EQ(OK(kvm_stats_read(fd, -1, all, 4096)), count);
	for (int i = 0; i < n; i++) {
		const char *name = kvm_stats_name(fd, i);
		CHECK(name != NULL && name[0] != 0);
		CHECK_EQ(OK(kvm_stats_lookup(fd, name)), i); /* also: names are unique */
		uint32_t flags, size;
		int16_t exp;
		OK(kvm_stats_info(fd, i, &flags, &exp, &size));
		CHECK((flags & KVM_STATS_TYPE_MASK) <= KVM_STATS_TYPE_MAX);
		CHECK((flags & KVM_STATS_UNIT_MASK) <= KVM_STATS_UNIT_MAX);
		CHECK((flags & KVM_STATS_BASE_MASK) <= KVM_STATS_BASE_MAX);
		CHECK(size >= 1 && size <= 256);
		CHECK_EQ(OK(kvm_stats_read(fd, i, NULL, 0)), size);
		CHECK_EQ(OK(kvm_stats_read(fd, i, one, 256)), size);
		/* Nothing runs: the values read one by one are those read all at once. */
		for (uint32_t k = 0; k < size; k++)
			if (one[k] != all[total + k])
				FAIL("%s[%u]: %llu alone, %llu in the read of all", name, k,
				     (unsigned long long)one[k], (unsigned long long)all[total + k]);
		if (size > 1) {
			CHECK_ERR(kvm_stats_read(fd, i, one, size - 1), E2BIG);
			CHECK_ERR(kvm_stats_read(fd, i, one, 0), E2BIG);
		}
		total += size;
	}
	CHECK_EQ(total, count);
	CHECK_ERR(kvm_stats_read(fd, -1, all, count - 1), E2BIG);
	return n;
}

static void check_errnos(int fd, int n)
{
	uint64_t v[8];
	uint32_t flags, size;
	int16_t exp;
	CHECK_ERR(kvm_stats_lookup(fd, "no_such_statistic"), ENOENT);
	CHECK_ERR(kvm_stats_lookup(fd, ""), ENOENT);
	CHECK_ERR(kvm_stats_lookup(fd, NULL), EFAULT);
	CHECK_ERR(kvm_stats_name(fd, -1), ERANGE);
	CHECK_ERR(kvm_stats_name(fd, INT_MAX), ERANGE);
	CHECK_ERR(kvm_stats_read(fd, n, v, 8), ERANGE);
	CHECK_ERR(kvm_stats_read(fd, -2, v, 8), ERANGE);
	CHECK_ERR(kvm_stats_read(fd, INT_MIN, v, 8), ERANGE);
	CHECK_ERR(kvm_stats_read(fd, 0, NULL, 1), EFAULT);
	CHECK_ERR(kvm_stats_read(fd, -1, NULL, 8), EFAULT);
	CHECK_ERR(kvm_stats_read(fd, -1, v, 0), E2BIG);
	CHECK_ERR(kvm_stats_info(fd, n, &flags, &exp, &size), ERANGE);
	CHECK_ERR(kvm_stats_info(fd, -1, &flags, &exp, &size), ERANGE);
	CHECK_ERR(kvm_stats_info(fd, 0, NULL, &exp, &size), EFAULT);
	CHECK_ERR(kvm_stats_info(fd, 0, &flags, NULL, &size), EFAULT);
	CHECK_ERR(kvm_stats_info(fd, 0, &flags, &exp, NULL), EFAULT);
}

/* A histogram is several values: the kernel's halt-wait histogram, where it has one. */
static void check_histogram(int vcpu)
{
	int i = kvm_stats_lookup(vcpu, "halt_wait_hist");
	if (i < 0) {
		CHECK_EQ(errno, ENOENT);
		skip_section("histogram", "this kernel has no halt_wait_hist statistic");
		return;
	}
	uint32_t flags, size;
	int16_t exp;
	OK(kvm_stats_info(vcpu, i, &flags, &exp, &size));
	CHECK_EQ(flags & KVM_STATS_TYPE_MASK, KVM_STATS_TYPE_LOG_HIST);
	CHECK_EQ(flags & KVM_STATS_UNIT_MASK, KVM_STATS_UNIT_SECONDS);
	CHECK_EQ(exp, -9); /* nanoseconds */
	CHECK(size > 1);
	uint64_t v;
	CHECK_ERR(kvm_stats_read(vcpu, i, &v, 1), E2BIG);
	/* "exits" is one cumulative count without a unit. */
	OK(kvm_stats_info(vcpu, OK(kvm_stats_lookup(vcpu, "exits")), &flags, &exp, &size));
	CHECK_EQ(flags, KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_NONE | KVM_STATS_BASE_POW10);
	CHECK_EQ(size, 1);
}

/* ---- the guest: N port writes, M hlts ----------------------------------------------- */

static int vcpu_fd;
static uint64_t seen_exits, seen_io, seen_halt;

/* Another thread's reads of the halted vcpu: the counters, and "exits" read again after
 * a thousand reads of everything, unchanged (no read made the vcpu exit). */
static void *read_halted(void *arg)
{
	(void)arg;
	CHECK(kvm_run_area() == NULL); /* this thread has no vcpu, and needs none */
	seen_exits = stat1(vcpu_fd, "exits");
	seen_io = stat1(vcpu_fd, "io_exits");
	seen_halt = stat1(vcpu_fd, "halt_exits");
	uint64_t all[4096];
	for (int k = 0; k < 1000; k++)
		OK(kvm_stats_read(vcpu_fd, -1, all, 4096));
	CHECK_EQ(stat1(vcpu_fd, "exits"), seen_exits);
	return NULL;
}

/* Whether the kernel counts io_exits: VMX's and SVM's exit handlers do; kvm_pvm's does
 * not (it counts the exit in "exits" only). */
static int kernel_counts_io_exits(void)
{
	return access("/sys/module/kvm_intel", F_OK) == 0 || access("/sys/module/kvm_amd", F_OK) == 0;
}

/* The first call on a VM opens its statistics fd: without a free fd it fails with
 * EMFILE, and a later call, with one, opens it. */
static void emfile_on_first_use(int vm)
{
	CHECK_EQ(stats_fds("kvm-vm-stats", NULL), 0);
	if (!nofile_enforced()) {
		skip_section("EMFILE", "RLIMIT_NOFILE does not reach the kernel here (valgrind keeps it)");
		return;
	}
	CHECK_ERR_NOFILE(kvm_stats_lookup(vm, "remote_tlb_flush"), EMFILE);
	CHECK_ERR_NOFILE(kvm_stats_read(vm, -1, NULL, 0), EMFILE);
	CHECK_EQ(stats_fds("kvm-vm-stats", NULL), 0); /* nothing was left half open */
}

static void outs_and_hlts(void)
{
	int vm = vm_with_memory(0x10000);
	vcpu_fd = real_mode_vcpu(vm, 0, 0x1000, BLOB(rm_stats_outs_hlts));
	EDIT_REGS(r, r.rsi = N_OUTS; r.rdi = M_HLTS);
	CHECK_EQ(stats_fds("kvm-vcpu-stats", NULL), 1); /* opened with the vcpu */
	check_errnos(vcpu_fd, check_table(vcpu_fd)); /* the first call reads the descriptors */
	CHECK_EQ(stats_fds("kvm-vcpu-stats", NULL), 1);
	check_histogram(vcpu_fd);
	on_thread(read_halted, NULL);
	uint64_t exits0 = seen_exits, io0 = seen_io, halt0 = seen_halt;

	int outs = 0, hlts = 0;
	for (;;) {
		int r = OK(kvm_run());
		const char *name = kvm_exit_reason_name(r);
		if (r == KVM_EXIT_HLT) {
			CHECK(strcmp(name, "HLT") == 0);
			hlts++;
			continue;
		}
		CHECK(strcmp(name, "IO") == 0);
		CHECK_EQ(r, KVM_EXIT_IO);
		if (kvm_run_area()->io.port == 0x51)
			break;
		CHECK_EQ(kvm_run_area()->io.port, 0x50);
		CHECK_EQ(*((uint8_t *)kvm_run_area() + kvm_run_area()->io.data_offset), N_OUTS - outs);
		outs++;
	}
	CHECK_EQ(outs, N_OUTS);
	CHECK_EQ(hlts, M_HLTS);
	run_expect(KVM_EXIT_HLT); /* the last hlt: the vcpu is halted now */
	on_thread(read_halted, NULL);
	check_table(vcpu_fd); /* again, with counters that are not 0 */
	printf("%d outs, %d hlts: exits +%llu, io_exits +%llu, halt_exits +%llu\n", outs, hlts + 1,
	       (unsigned long long)(seen_exits - exits0), (unsigned long long)(seen_io - io0),
	       (unsigned long long)(seen_halt - halt0));
	/* Each hlt exits once, counted where the kernel leaves KVM_RUN for it. */
	CHECK_EQ(seen_halt - halt0, M_HLTS + 1);
	/* Every exit to userspace is at least one exit of the vcpu; the host's own interrupts
	 * (timer ticks) may add more while the guest runs, never fewer. */
	CHECK(seen_exits - exits0 >= N_OUTS + 1 + M_HLTS + 1);
	if (kernel_counts_io_exits()) {
		CHECK_EQ(seen_io - io0, N_OUTS + 1);
	} else {
		CHECK(seen_io - io0 == 0 || seen_io - io0 == N_OUTS + 1);
		skip_section("io_exits", "this host's KVM (neither kvm_intel nor kvm_amd: kvm_pvm) "
			     "does not count io_exits; the port writes were checked in \"exits\"");
	}

	/* The VM's statistics are its own: other names, its own fd. */
	emfile_on_first_use(vm);
	int n = check_table(vm);
	check_errnos(vm, n);
	CHECK(kvm_stats_lookup(vm, "remote_tlb_flush") >= 0);
	CHECK_ERR(kvm_stats_lookup(vm, "exits"), ENOENT);
	CHECK_ERR(kvm_stats_lookup(vcpu_fd, "remote_tlb_flush"), ENOENT);
	int sfd;
	CHECK_EQ(stats_fds("kvm-vm-stats", &sfd), 1);
	OK(kvm_detach_vcpu());
	int other = OK(kvm_create_vcpu(vm, 1));
	CHECK_EQ(stats_fds("kvm-vcpu-stats", NULL), 2); /* opened with the vcpu */
	CHECK(kvm_stats_lookup(other, "exits") >= 0);
	CHECK_EQ(stats_fds("kvm-vcpu-stats", NULL), 2);
	CHECK(fd_flags(sfd) & O_CLOEXEC);
	CHECK_EQ(stats_fds("kvm-vcpu-stats", &sfd), 2);
	CHECK(fd_flags(sfd) & O_CLOEXEC);
	CHECK_EQ(count_kvm_fds(), 6); /* the VM, two vcpus and their statistics: each once */
	/* A fork child gets none of them (libkvm closes its copies), and the names are no
	 * VM or vcpu of its. */
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		if (stats_fds("kvm-", NULL) != 0 || kvm_stats_read(vm, -1, NULL, 0) != -1 ||
		    errno != EBADF)
			_exit(1);
		_exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	end_vm(vm);
	CHECK_ERR(kvm_stats_read(vcpu_fd, -1, NULL, 0), EBADF);
	CHECK_ERR(kvm_stats_lookup(vcpu_fd, "exits"), EBADF);
	CHECK_ERR(kvm_stats_name(vm, 0), EBADF);
	CHECK_ERR(kvm_stats_info(vm, 0, NULL, NULL, NULL), EBADF);
	CHECK_EQ(stats_fds("kvm-", NULL), 0);
	check_no_kvm_leaks("after kvm_destroy_vm");
}

/* ---- halted inside KVM_RUN: reads from another thread do not wake it ---------------- */

static volatile int returned;
static int run_result, run_errno;

static void *owner(void *arg)
{
	OK(kvm_attach_vcpu(*(int *)arg));
	run_result = kvm_run(); /* blocks in the guest's hlt until kicked */
	run_errno = errno;
	__atomic_store_n(&returned, 1, __ATOMIC_SEQ_CST);
	OK(kvm_detach_vcpu());
	return NULL;
}

static void blocked_in_kvm_run(void)
{
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	int cpu = real_mode_vcpu(vm, 0, 0x1000, BLOB(rm_stats_block));
	OK(kvm_detach_vcpu());
	pthread_t t;
	CHECK(pthread_create(&t, NULL, owner, &cpu) == 0);
	/* The first call comes once the vcpu has (most likely) blocked inside KVM_RUN, and
	 * must not wait for it: libkvm opened the statistics fd with the vcpu, since
	 * KVM_GET_STATS_FD would wait (the kernel takes the vcpu's mutex) while holding the
	 * lock fork() waits for. The vcpu is still inside kvm_run afterwards (below). */
	usleep(100000);
	watchdog_phase("first call on a blocked vcpu", 30);
	int exits = OK(kvm_stats_lookup(cpu, "exits"));
	int halts = OK(kvm_stats_lookup(cpu, "halt_exits"));
	int blocking = kvm_stats_lookup(cpu, "blocking");
	watchdog_phase("vcpu blocks in hlt", 30);
	uint64_t h = 0, b = 1;
	while (h == 0 || b == 0) { /* the read path, polled: it never disturbs the vcpu */
		CHECK_EQ(OK(kvm_stats_read(cpu, halts, &h, 1)), 1);
		if (blocking >= 0)
			OK(kvm_stats_read(cpu, blocking, &b, 1));
		usleep(1000);
	}
	watchdog_phase("reads of a blocked vcpu", 60);
	uint64_t e0, e, signals0 = stat1(cpu, "signal_exits");
	OK(kvm_stats_read(cpu, exits, &e0, 1));
	uint64_t all[4096];
	for (int k = 0; k < 10000; k++)
		OK(kvm_stats_read(cpu, -1, all, 4096));
	OK(kvm_stats_read(cpu, exits, &e, 1));
	CHECK_EQ(e, e0);                  /* no read made it exit */
	CHECK_EQ(stat1(cpu, "signal_exits"), signals0); /* nor signalled it */
	if (blocking >= 0)
		CHECK_EQ(stat1(cpu, "blocking"), 1); /* it is still blocked in its hlt */
	CHECK(!__atomic_load_n(&returned, __ATOMIC_SEQ_CST)); /* nor return from kvm_run */
	CHECK_EQ(h, 1);
	OK(kvm_stats_read(cpu, halts, &h, 1));
	CHECK_EQ(h, 1);
	if (blocking < 0)
		skip_section("blocking", "this kernel has no \"blocking\" statistic");
	watchdog_phase("kick", 30);
	OK(kvm_kick_vcpu(cpu));
	CHECK(pthread_join(t, NULL) == 0);
	CHECK_EQ(run_result, -1);
	CHECK_EQ(run_errno, EINTR);
	/* The kick woke it: one signal exit, no longer blocking; it never re-entered the
	 * guest, so "exits" is where it was. */
	CHECK_EQ(stat1(cpu, "signal_exits"), signals0 + 1);
	CHECK_EQ(stat1(cpu, "exits"), e0);
	if (blocking >= 0)
		CHECK_EQ(stat1(cpu, "blocking"), 0);
	OK(kvm_destroy_vm(vm));
	watchdog_phase("done", 30);
}

/* ---- running in the guest: reads from another thread do not stop it ---------------- */

static void spinning_in_kvm_run(void)
{
	int vm = vm_with_memory(0x400000);
	/* mb_loop is "jmp ." (EB FE), the same two bytes in 64-bit mode: at ring 3 it runs
	 * natively, inside KVM_RUN, without an exit of its own. */
	load_blob(vm, 0x4000, BLOB(mb_loop));
	int cpu = OK(kvm_create_vcpu(vm, 0));
	setup_user_long_mode(vm, 0x10000, 0x4000);
	int signals = OK(kvm_stats_lookup(cpu, "signal_exits")); /* opens, before it runs */
	uint64_t s0;
	OK(kvm_stats_read(cpu, signals, &s0, 1));
	OK(kvm_detach_vcpu());
	__atomic_store_n(&returned, 0, __ATOMIC_SEQ_CST);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, owner, &cpu) == 0);
	watchdog_phase("reads of a running vcpu", 60);
	usleep(20000); /* most likely in the guest by now; the checks hold either way */
	uint64_t all[4096], s1;
	for (int k = 0; k < 10000; k++)
		OK(kvm_stats_read(cpu, -1, all, 4096));
	CHECK(!__atomic_load_n(&returned, __ATOMIC_SEQ_CST)); /* no read stopped it */
	OK(kvm_stats_read(cpu, signals, &s1, 1));
	CHECK_EQ(s1, s0);
	watchdog_phase("kick", 30);
	OK(kvm_kick_vcpu(cpu));
	CHECK(pthread_join(t, NULL) == 0);
	CHECK_EQ(run_result, -1);
	CHECK_EQ(run_errno, EINTR);
	OK(kvm_destroy_vm(vm));
	watchdog_phase("done", 30);
}

/* ---- exit reason names -------------------------------------------------------------- */

static void exit_names(void)
{
#define NAME(r) CHECK(strcmp(kvm_exit_reason_name(KVM_EXIT_##r), #r) == 0)
	NAME(UNKNOWN); NAME(EXCEPTION); NAME(IO); NAME(HYPERCALL); NAME(DEBUG); NAME(HLT);
	NAME(MMIO); NAME(IRQ_WINDOW_OPEN); NAME(SHUTDOWN); NAME(FAIL_ENTRY); NAME(INTR);
	NAME(SET_TPR); NAME(TPR_ACCESS); NAME(S390_SIEIC); NAME(S390_RESET); NAME(DCR);
	NAME(NMI); NAME(INTERNAL_ERROR); NAME(OSI); NAME(PAPR_HCALL); NAME(S390_UCONTROL);
	NAME(WATCHDOG); NAME(S390_TSCH); NAME(EPR); NAME(SYSTEM_EVENT); NAME(S390_STSI);
	NAME(IOAPIC_EOI); NAME(HYPERV); NAME(ARM_NISV); NAME(X86_RDMSR); NAME(X86_WRMSR);
	NAME(DIRTY_RING_FULL); NAME(AP_RESET_HOLD); NAME(X86_BUS_LOCK); NAME(XEN);
	NAME(RISCV_SBI); NAME(RISCV_CSR); NAME(NOTIFY);
#undef NAME
	/* Newer than this system's <linux/kvm.h>: the kernel's numbers. */
	static const struct { int v; const char *name; } newer[] = {
		{ 38, "LOONGARCH_IOCSR" }, { 39, "MEMORY_FAULT" }, { 40, "TDX" }, { 41, "ARM_SEA" },
	};
	for (unsigned i = 0; i < sizeof(newer) / sizeof(newer[0]); i++)
		CHECK(strcmp(kvm_exit_reason_name(newer[i].v), newer[i].name) == 0);
	for (int r = -1000; r <= 1000; r++)
		CHECK(kvm_exit_reason_name(r) != NULL);
	int unknown[] = { -1, 42, 43, 1000, INT_MAX, INT_MIN };
	for (unsigned i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		CHECK(strcmp(kvm_exit_reason_name(unknown[i]), "UNKNOWN") == 0);
	/* A static string: the same pointer every time. */
	CHECK(kvm_exit_reason_name(KVM_EXIT_IO) == kvm_exit_reason_name(KVM_EXIT_IO));
}

int main(void)
{
	require_kvm();
	exit_names();
	if (kvm_check_extension(-1, KVM_CAP_BINARY_STATS_FD) <= 0) {
		int vm = vm_with_memory(0x1000);
		CHECK_ERR(kvm_stats_lookup(vm, "remote_tlb_flush"), EOPNOTSUPP);
		OK(kvm_destroy_vm(vm));
		skip_test("KVM_CAP_BINARY_STATS_FD is 0: the kernel has no binary statistics");
	}
	CHECK_ERR(kvm_stats_read(-1, -1, NULL, 0), EBADF);
	outs_and_hlts();
	blocked_in_kvm_run();
	spinning_in_kvm_run();
	return 0;
}
