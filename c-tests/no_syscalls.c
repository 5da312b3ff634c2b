/* kvm_run + kvm_get_regs + kvm_set_regs make exactly one system call per exit, KVM_RUN, on the sync-regs path (three on the slow path): counted with strace. */
#define _GNU_SOURCE
#include "harness.h"
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * The test runs itself under `strace -f -C` twice, once looping 0 times and once N
 * times over run + get_regs + set_regs (after the same setup and warm-up), and compares
 * strace's counts: the only difference allowed is N ioctls, all of them KVM_RUN. Any
 * other system call in the loop (an allocation, a lock, a second ioctl) would show up
 * as a difference. With LIBKVM_NO_SYNC_REGS=1 the same loop must show 3N ioctls, which
 * also proves the count can see them.
 */

enum { N = 300, MAX_NAMES = 64 };

/* The traced program: setup, warm-up, then n iterations. */
static int loop(long n)
{
	int vm = vm_with_memory(0x10000);
	real_mode_vcpu(vm, 0, 0x1000, BLOB(sr_mix));
	uint32_t wrote = 0;
	/* Warm-up: the first read is an ioctl; from then on the kernel copies the
	 * registers out on every exit. */
	for (long i = -3; i < n; i++) {
		struct kvm_regs r;
		if (kvm_run() != KVM_EXIT_IO)
			FAIL("kvm_run: %s", strerror(errno));
		if (kvm_get_regs(&r) < 0)
			FAIL("kvm_get_regs: %s", strerror(errno));
		/* The guest copies EBX to EDX on every pass. */
		if ((uint32_t)r.rdx != wrote)
			FAIL("guest saw 0x%x, host wrote 0x%x", (uint32_t)r.rdx, wrote);
		r.rbx = ++wrote;
		if (kvm_set_regs(&r) < 0)
			FAIL("kvm_set_regs: %s", strerror(errno));
	}
	end_vm(vm);
	return 0;
}

struct counts {
	int n;
	char name[MAX_NAMES][32];
	long calls[MAX_NAMES];
	long kvm_run_lines;
};

static long count_of(const struct counts *c, const char *name)
{
	for (int i = 0; i < c->n; i++)
		if (strcmp(c->name[i], name) == 0)
			return c->calls[i];
	return 0;
}

/* Runs `self loop n` under strace and reads its summary and trace. */
static void trace(const char *self, long n, int slow, struct counts *c)
{
	char out[] = "/tmp/libkvm-no-syscalls-XXXXXX";
	int fd = mkstemp(out);
	CHECK(fd >= 0);
	close(fd);
	char arg[32];
	snprintf(arg, sizeof(arg), "%ld", n);
	pid_t p = fork();
	CHECK(p >= 0);
	if (p == 0) {
		/* Under make check-asan: LeakSanitizer cannot run under ptrace (ASan can).
		 * Under make check-valgrind, strace and the program it traces run natively
		 * (--trace-children-skip): without valgrind's preloads either. */
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		unsetenv("LD_PRELOAD");
		if (slow)
			setenv("LIBKVM_NO_SYNC_REGS", "1", 1);
		else
			unsetenv("LIBKVM_NO_SYNC_REGS");
		execlp("strace", "strace", "-f", "-C", "-U", "calls,name", "-o", out, self, "loop",
		       arg, (char *)NULL);
		_exit(127);
	}
	int status;
	CHECK(waitpid(p, &status, 0) == p);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		unlink(out);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			FAIL("strace is needed for this test (Debian package strace)");
		FAIL("the traced loop failed (status 0x%x)", status);
	}

	FILE *f = fopen(out, "r");
	CHECK(f != NULL);
	memset(c, 0, sizeof(*c));
	char line[512];
	int in_summary = 0, rules = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!in_summary) {
			if (strstr(line, "ioctl(") && strstr(line, "KVM_RUN"))
				c->kvm_run_lines++;
			if (strstr(line, "calls syscall"))
				in_summary = 1;
			continue;
		}
		if (line[0] == '-') {
			if (++rules == 2)
				break;
			continue;
		}
		long calls;
		char name[32];
		if (sscanf(line, "%ld %31s", &calls, name) == 2 && c->n < MAX_NAMES) {
			strcpy(c->name[c->n], name);
			c->calls[c->n++] = calls;
		}
	}
	fclose(f);
	unlink(out);
	if (!in_summary || c->n == 0)
		FAIL("no strace summary for the loop of %ld", n);
}

static void compare(const char *self, int slow)
{
	struct counts a, b;
	trace(self, 0, slow, &a);
	trace(self, N, slow, &b);
	long per_exit = slow ? 3 : 1;
	fprintf(stderr, "%s path, %d exits: %ld ioctls (%ld KVM_RUN) more than with none\n",
		slow ? "slow" : "fast", N, count_of(&b, "ioctl") - count_of(&a, "ioctl"),
		b.kvm_run_lines - a.kvm_run_lines);
	CHECK_EQ(count_of(&b, "ioctl") - count_of(&a, "ioctl"), per_exit * N);
	CHECK_EQ(b.kvm_run_lines - a.kvm_run_lines, N);
	/* Nothing else, in either direction. */
	for (int i = 0; i < b.n; i++)
		if (strcmp(b.name[i], "ioctl") != 0 && b.calls[i] != count_of(&a, b.name[i]))
			FAIL("%s: %ld calls with %d exits, %ld with none", b.name[i], b.calls[i], N,
			     count_of(&a, b.name[i]));
	for (int i = 0; i < a.n; i++)
		if (count_of(&b, a.name[i]) == 0)
			FAIL("%s: %ld calls with no exits, none with %d", a.name[i], a.calls[i], N);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "loop") == 0)
		return loop(atol(argv[2]));
	require_kvm();
	char self[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	CHECK(len > 0);
	self[len] = 0;
	if (kvm_check_extension(-1, KVM_CAP_SYNC_REGS) > 0)
		compare(self, 0);
	else
		skip_section("the sync-regs path", "KVM_CAP_SYNC_REGS is 0");
	compare(self, 1);
	return 0;
}
