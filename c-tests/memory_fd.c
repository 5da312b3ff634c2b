/* kvm_set_memory_region_fd and kvm_create_guest_memfd: a guest's memfd shared with another process, a file mapped copy-on-write (file unchanged, dirty log exact), in-place changes, snapshots, every errno, no fd or mapping left after delete, destroy and 1000 cycles, none in a fork() child while another thread changes slots, a guest running from a guest_memfd (a recorded skip where the kernel has none). */
#define _GNU_SOURCE
#include "harness.h"
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define FD_GPA 0x100000u
#define PAGES 80u
#define SIZE (PAGES * 4096ull)
#define TABLE 0x3000u
#define MEMFD_NAME "libkvm-test-fdmem"

/* What the pm_fdmem guest writes over `old` at `addr`. */
static uint32_t guest_value(uint32_t old, uint32_t addr)
{
	return ~(old ^ addr);
}

/* A VM with the guest at 0x2000 of a 64 KiB slot 0. */
static int guest_vm(void)
{
	int vm = vm_with_memory(0x10000);
	load_blob(vm, 0x2000, BLOB(pm_fdmem));
	return vm;
}

/* Vcpu 0 of `vm` on the calling thread, at the guest, with its address tables (rounds
 * of addresses, each ended by a 0). */
static void start_guest(int vm, const uint32_t *tables, size_t bytes)
{
	memcpy(kvm_guest_memory(vm, TABLE, bytes), tables, bytes);
	OK(kvm_create_vcpu(vm, 0));
	setup_protected_mode(0x2000);
	EDIT_REGS(r, r.rsi = TABLE);
}

/* One round of the guest: it must read want[0..n) at the round's addresses. */
static void round_expect(const uint32_t *want, int n)
{
	for (int i = 0; i < n; i++)
		CHECK_EQ(run_until_out(0x11), want[i]);
	run_until_out(0x10);
}

static void count_named(const char *fd, const char *target, void *arg)
{
	(void)fd;
	if (strstr(target, MEMFD_NAME))
		++*(int *)arg;
}

/* How many of this process's fds are the test's memfd. */
static int memfd_fds(void)
{
	int n = 0;
	each_fd(count_named, &n);
	return n;
}

static uint32_t *map_fd(int fd, uint64_t size, int prot)
{
	void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	return p;
}

/* The peer process (this test, spawned): maps the memfd it inherited as fd
 * `fdarg`, checks the guest's first round, writes its own values for the guest's second
 * round. */
static int peer(const char *fdarg)
{
	uint32_t *m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, atoi(fdarg), 0);
	if (m == MAP_FAILED)
		return 2;
	static const unsigned pages[] = { 0, 5, 79 };
	for (int i = 0; i < 3; i++)
		if (m[pages[i] * 1024] != guest_value(0, FD_GPA + pages[i] * 4096))
			return 3;
	/* libkvm's duplicate is close-on-exec: only the fd the parent passed came along. */
	if (memfd_fds() != 1)
		return 4;
	for (int i = 0; i < 3; i++)
		m[pages[i] * 1024 + 1] = 0xc0de0000 + pages[i];
	return 0;
}

/* Runs the peer as `self peer fd` with posix_spawn(3), which runs no fork() handler
 * (glibc's is a vfork-like clone): what reaches it is what lacks close-on-exec. Its exit
 * status, -1 if it did not exit. */
static int spawn_peer(int fd)
{
	char self[4096], arg[16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	CHECK(n > 0);
	self[n] = 0;
	snprintf(arg, sizeof(arg), "%d", fd);
	char *argv[] = { self, "peer", arg, NULL };
	extern char **environ;
	pid_t pid;
	CHECK(posix_spawn(&pid, self, NULL, NULL, argv, environ) == 0);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void shared_memfd(void)
{
	int mfd = memfd_create(MEMFD_NAME, 0); /* inherited by the peer */
	CHECK(mfd >= 0);
	CHECK(ftruncate(mfd, SIZE) == 0);
	int vm = guest_vm();
	OK(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, SIZE, mfd, 0, MAP_SHARED));
	CHECK_EQ(memfd_fds(), 2); /* ours and libkvm's own */
	uint32_t *mine = map_fd(mfd, SIZE, PROT_READ | PROT_WRITE);
	uint32_t tables[] = {
		FD_GPA, FD_GPA + 5 * 4096, FD_GPA + 79 * 4096, 0,
		FD_GPA + 4, FD_GPA + 5 * 4096 + 4, FD_GPA + 79 * 4096 + 4, 0,
	};
	start_guest(vm, tables, sizeof(tables));

	round_expect((uint32_t[]){ 0, 0, 0 }, 3);
	/* The guest's writes are in the file: in this process's own mapping of it... */
	for (int i = 0; i < 3; i++)
		CHECK_EQ(mine[(tables[i] - FD_GPA) >> 2], guest_value(0, tables[i]));
	/* ... and in another process's, whose writes the guest then reads. */
	CHECK_EQ(spawn_peer(mfd), 0);
	/* The caller may close its fd: libkvm's keeps the memory. */
	CHECK(close(mfd) == 0);
	CHECK_EQ(memfd_fds(), 1);
	/* A fork() child gets none of libkvm's fds (nor the guest memory). */
	void *host = kvm_guest_memory(vm, FD_GPA, 1);
	CHECK(host != NULL);
	pid_t p = fork();
	CHECK(p >= 0);
	if (p == 0)
		_exit(memfd_fds() == 0 && !is_mapped(host) ? 0 : 1);
	int status;
	CHECK(waitpid(p, &status, 0) == p);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	round_expect((uint32_t[]){ 0xc0de0000, 0xc0de0005, 0xc0de004f }, 3);
	uint32_t *guest = kvm_guest_memory(vm, FD_GPA, SIZE);
	CHECK(guest != NULL);
	for (int i = 4; i < 7; i++) {
		uint32_t off = (tables[i] - FD_GPA) >> 2;
		CHECK_EQ(guest[off], guest_value(0xc0de0000 + (tables[i] - FD_GPA) / 4096, tables[i]));
		CHECK_EQ(mine[off], guest[off]);
	}
	/* Deleting unmaps libkvm's mapping and closes its fd; the file keeps the data. */
	OK(kvm_set_memory_region(vm, 1, 0, 0, 0));
	CHECK(!is_mapped(guest));
	CHECK_EQ(memfd_fds(), 0); /* `mine` is a mapping, not an fd */
	CHECK_EQ(mine[(tables[6] - FD_GPA) >> 2], guest_value(0xc0de004f, tables[6]));
	CHECK(munmap(mine, SIZE) == 0);
	end_vm(vm);
}

/* A file of PAGES + 1 pages, dword k holding file_word(k); `rw` gets an O_RDWR fd of
 * it, the result an O_RDONLY one. Unlinked: it lives as long as its fds. */
static uint32_t file_word(uint32_t k)
{
	return 0xf11e0000u ^ (k * 2654435761u);
}

static int private_file(int *rw)
{
	char path[] = "/tmp/libkvm-fdmem-XXXXXX";
	*rw = mkstemp(path);
	CHECK(*rw >= 0);
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(ro >= 0);
	CHECK(unlink(path) == 0);
	static uint32_t words[(PAGES + 1) * 1024];
	for (uint32_t k = 0; k < (PAGES + 1) * 1024; k++)
		words[k] = file_word(k);
	CHECK(pwrite(*rw, words, sizeof(words), 0) == (ssize_t)sizeof(words));
	return ro;
}

/* The file still holds exactly what private_file wrote. */
static void file_unchanged(int fd)
{
	static uint32_t words[(PAGES + 1) * 1024];
	CHECK(pread(fd, words, sizeof(words), 0) == (ssize_t)sizeof(words));
	for (uint32_t k = 0; k < (PAGES + 1) * 1024; k++)
		if (words[k] != file_word(k))
			FAIL("file word %u changed: 0x%x", k, words[k]);
}

/* Reads slot 1's dirty log; exactly the pages in `want` (ending with -1) are set. */
static void expect_dirty(int vm, const int *want)
{
	uint64_t bitmap[2], expect[2] = { 0, 0 };
	memset(bitmap, 0xa5, sizeof(bitmap));
	OK(kvm_get_dirty_log(vm, 1, bitmap));
	for (; *want >= 0; want++)
		expect[*want / 64] |= 1ull << (*want % 64);
	CHECK_EQ(bitmap[0], expect[0]);
	CHECK_EQ(bitmap[1], expect[1]);
}

static void private_mapping(void)
{
	int rw, ro = private_file(&rw);
	int vm = guest_vm();
	/* From page 1 of the file, through a read-only fd: private needs no write access. */
	OK(kvm_set_memory_region_fd(vm, 1, KVM_MEM_LOG_DIRTY_PAGES, FD_GPA, SIZE, ro, 4096,
				    MAP_PRIVATE));
	static const int pages[] = { 0, 3, 7, 63, 64, 79 };
	uint32_t tables[7], want[6];
	for (int i = 0; i < 6; i++) {
		tables[i] = FD_GPA + pages[i] * 4096 + 4 * i * 17;
		want[i] = file_word((4096 + tables[i] - FD_GPA) / 4);
	}
	tables[6] = 0;
	start_guest(vm, tables, sizeof(tables));
	expect_dirty(vm, (int[]){ -1 });
	round_expect(want, 6); /* the guest read the file */
	expect_dirty(vm, (int[]){ 0, 3, 7, 63, 64, 79, -1 });
	const uint32_t *guest = kvm_guest_memory(vm, FD_GPA, SIZE);
	CHECK(guest != NULL);
	for (int i = 0; i < 6; i++)
		CHECK_EQ(guest[(tables[i] - FD_GPA) / 4], guest_value(want[i], tables[i]));
	CHECK_EQ(guest[10 * 1024 + 5], file_word(11 * 1024 + 5)); /* untouched: the file's */
	*(uint32_t *)kvm_guest_memory(vm, FD_GPA + 20 * 4096, 4) = 0x12345678;
	file_unchanged(rw);

	/* The same file, offset and MAP_PRIVATE (through another fd of it): flags and
	 * address change in place, contents kept. */
	OK(kvm_set_memory_region_fd(vm, 1, 0, 2 * FD_GPA, SIZE, rw, 4096, MAP_PRIVATE));
	uint32_t *moved = kvm_guest_memory(vm, 2 * FD_GPA, SIZE);
	CHECK(moved == guest);
	CHECK_EQ(moved[20 * 1024], 0x12345678);
	CHECK_ERR(kvm_get_dirty_log(vm, 1, (uint64_t[2]){ 0 }), EINVAL);
	OK(kvm_set_memory_region_fd(vm, 1, KVM_MEM_LOG_DIRTY_PAGES, FD_GPA, SIZE, ro, 4096,
				    MAP_PRIVATE | MAP_POPULATE));
	CHECK_EQ(guest[(tables[1] - FD_GPA) / 4], guest_value(want[1], tables[1]));
	/* Other memory for the slot: refused, the slot unchanged. */
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, SIZE, ro, 0, MAP_PRIVATE), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, SIZE, rw, 4096, MAP_SHARED), EINVAL);
	CHECK_ERR(kvm_set_memory_region(vm, 1, 0, FD_GPA, SIZE), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 0, 0, 0, 0x10000, rw, 0, MAP_PRIVATE), EINVAL);
	CHECK_ERR(kvm_set_user_memory_region(vm, 1, 0, FD_GPA, SIZE, (void *)guest), EINVAL);
	CHECK(kvm_guest_memory(vm, FD_GPA, SIZE) == guest);

	/* kvm_save_vm records the layout; a VM of that layout takes it back, whatever backs
	 * its memory (here the same file, copy-on-write: a restore's way). */
	OK(kvm_detach_vcpu());
	size_t len;
	uint8_t *blob = save_vm_blob(vm, &len);
	int vm2 = vm_with_memory(0x10000);
	OK(kvm_create_vcpu(vm2, 0));
	OK(kvm_detach_vcpu());
	OK(kvm_set_memory_region_fd(vm2, 1, KVM_MEM_LOG_DIRTY_PAGES, FD_GPA, SIZE + 4096, rw, 0,
				    MAP_PRIVATE));
	CHECK_ERR(kvm_restore_vm(vm2, blob, len), EINVAL); /* another size */
	OK(kvm_set_memory_region(vm2, 1, 0, 0, 0));
	OK(kvm_set_memory_region_fd(vm2, 1, KVM_MEM_LOG_DIRTY_PAGES, FD_GPA, SIZE, ro, 4096,
				    MAP_PRIVATE));
	OK(kvm_restore_vm(vm2, blob, len));
	CHECK_EQ(*(uint32_t *)kvm_guest_memory(vm2, tables[2], 4), want[2]); /* fresh copy */
	free(blob);
	OK(kvm_destroy_vm(vm2));

	OK(kvm_destroy_vm(vm));
	CHECK(!is_mapped(guest));
	file_unchanged(rw);
	CHECK(close(ro) == 0 && close(rw) == 0);
}

/* Every errno of kvm_set_memory_region_fd. */
static void errors(void)
{
	int vm = vm_with_memory(0x10000);
	int mfd = memfd_create(MEMFD_NAME, MFD_CLOEXEC);
	CHECK(mfd >= 0);
	CHECK(ftruncate(mfd, SIZE) == 0);
	int rw, ro = private_file(&rw);
	const int S = MAP_SHARED, P = MAP_PRIVATE;

	CHECK_ERR(kvm_set_memory_region_fd(-1, 1, 0, FD_GPA, 4096, mfd, 0, S), EBADF);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, -1, 0, S), EBADF);
	int closed = dup(mfd);
	CHECK(closed >= 0 && close(closed) == 0);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, closed, 0, S), EBADF);
	/* map_flags: exactly one of MAP_SHARED and MAP_PRIVATE, at most MAP_POPULATE more. */
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, mfd, 0, 0), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, mfd, 0, S | P), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, mfd, 0, S | MAP_FIXED), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, mfd, 0, P | MAP_ANONYMOUS),
		  EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, mfd, 0, MAP_POPULATE), EINVAL);
	/* offset and size against the file. */
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, mfd, 1, S), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, SIZE, mfd, 4096, S), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, SIZE + 4096, mfd, 0, S), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 8192, mfd, ~0xfffull, S), EINVAL);
	/* The rules of every slot. */
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA + 1, 4096, mfd, 0, S), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4095, mfd, 0, S), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 1u << 7, FD_GPA, 4096, mfd, 0, S), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1u << 20, 0, FD_GPA, 4096, mfd, 0, S), EINVAL);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, 0xf000, 8192, mfd, 0, S), EEXIST);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, 0, 0, mfd, 0, S), ENOENT);
	/* What mmap says: a pipe cannot be mapped; access the fd was not opened for. */
	int pipefd[2];
	CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, pipefd[0], 0, P), ENODEV);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, ro, 0, S), EACCES);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", rw);
	int wo = open(path, O_WRONLY | O_CLOEXEC);
	CHECK(wo >= 0);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, wo, 0, P), EACCES);
	CHECK(close(wo) == 0 && close(pipefd[0]) == 0 && close(pipefd[1]) == 0);
	/* More than the address space holds, of a (sparse) file that large. */
	int huge = memfd_create(MEMFD_NAME, MFD_CLOEXEC);
	CHECK(huge >= 0);
	CHECK(ftruncate(huge, 1ll << 48) == 0);
	const char *inst = getenv("LIBKVM_TEST_INSTRUMENTED");
	if (inst && strcmp(inst, "valgrind") == 0)
		skip_section("ENOMEM", "valgrind's address-space manager refuses a mapping larger "
			     "than the address space with EINVAL, not the kernel's ENOMEM");
	else
		CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, 1ull << 40, 1ull << 48, huge, 0, P),
			  ENOMEM);
	CHECK(close(huge) == 0);
	/* No fd left for libkvm's duplicate. */
	struct rlimit old;
	CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
	int lowest = dup(mfd);
	CHECK(lowest >= 0 && close(lowest) == 0);
	struct rlimit low = { (rlim_t)lowest, old.rlim_max };
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	errno = 0;
	int probe = dup(mfd), probe_err = errno;
	if (probe >= 0) {
		close(probe);
		CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
		skip_section("EMFILE", "RLIMIT_NOFILE does not reach this process's fds (valgrind keeps it)");
	} else {
		errno = 0;
		int r = kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, 4096, mfd, 0, S), e = errno;
		/* The limit back first: recording the errno opens a file. */
		CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
		CHECK_EQ(probe_err, EMFILE);
		CHECK_EQ(r, -1);
		CHECK_EQ(e, EMFILE);
		note_errno("kvm_set_memory_region_fd", EMFILE);
	}
	/* A slot a memory alias points into cannot be deleted. */
	OK(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, SIZE, mfd, 0, S));
	struct kvm_memory_alias a = { .slot = 0, .guest_phys_addr = 0x400000,
				      .memory_size = 4096, .target_phys_addr = FD_GPA + 4096 };
	OK(kvm_set_memory_alias(vm, &a));
	CHECK(kvm_guest_memory(vm, 0x400000, 4096) == kvm_guest_memory(vm, FD_GPA + 4096, 4096));
	CHECK_ERR(kvm_set_memory_region_fd(vm, 1, 0, 0, 0, -1, 0, 0), EBUSY);
	a.memory_size = 0;
	OK(kvm_set_memory_alias(vm, &a));
	OK(kvm_set_memory_region_fd(vm, 1, 0, 0, 0, -1, 0, 0));
	OK(kvm_destroy_vm(vm));
	CHECK(close(mfd) == 0 && close(ro) == 0 && close(rw) == 0);
}

/* 1000 create/delete cycles of a shared memfd slot and a private file slot (and a VM
 * destroyed with both in place every 100): fds and mappings exactly back. */
static void cycles(void)
{
	int mfd = memfd_create(MEMFD_NAME, MFD_CLOEXEC);
	CHECK(mfd >= 0);
	CHECK(ftruncate(mfd, SIZE) == 0);
	int rw, ro = private_file(&rw);
	int vm = vm_with_memory(0x10000);
	int fds0 = count_fds(), maps0 = count_mappings();
	int instrumented = getenv("LIBKVM_TEST_INSTRUMENTED") != NULL;
	for (int i = 1; i <= 1000; i++) {
		int pop = i % 2 ? MAP_POPULATE : 0;
		OK(kvm_set_memory_region_fd(vm, 1, 0, FD_GPA, SIZE, mfd, 0, MAP_SHARED | pop));
		OK(kvm_set_memory_region_fd(vm, 2, KVM_MEM_LOG_DIRTY_PAGES, 2 * FD_GPA, SIZE, ro,
					    4096, MAP_PRIVATE | pop));
		*(uint32_t *)kvm_guest_memory(vm, 2 * FD_GPA, 4) = i;
		CHECK_EQ(count_fds(), fds0 + 2);
		if (i % 100 == 0) {
			OK(kvm_destroy_vm(vm));
			vm = vm_with_memory(0x10000);
		} else {
			OK(kvm_set_memory_region(vm, 1, 0, 0, 0));
			OK(kvm_set_memory_region_fd(vm, 2, 0, 0, 0, -1, 0, 0));
		}
		CHECK_EQ(count_fds(), fds0);
		if (!instrumented)
			CHECK_EQ(count_mappings(), maps0);
	}
	CHECK_EQ(memfd_fds(), 1);
	OK(kvm_destroy_vm(vm));
	file_unchanged(rw);
	CHECK(close(mfd) == 0 && close(ro) == 0 && close(rw) == 0);
	check_no_kvm_leaks("after the cycles");
}

struct churn {
	int vm, mfd;
	atomic_int stop;
	long rounds;
};

/* Creates and deletes slot 1 of c->vm, backed by c->mfd, until told to stop. */
static void *churn(void *arg)
{
	struct churn *c = arg;
	while (!atomic_load(&c->stop)) {
		OK(kvm_set_memory_region_fd(c->vm, 1, 0, FD_GPA, SIZE, c->mfd, 0, MAP_SHARED));
		OK(kvm_set_memory_region(c->vm, 1, 0, 0, 0));
		c->rounds++;
	}
	return NULL;
}

/* fork() while another thread creates and deletes a slot backed by the test's memfd:
 * fork waits for the slot calls, and every child holds the test's own memfd and none of
 * libkvm's duplicates (the child closes those of the slots that exist at fork). */
static void fork_during_slot_changes(void)
{
	struct churn c = { .mfd = memfd_create(MEMFD_NAME, MFD_CLOEXEC) };
	CHECK(c.mfd >= 0);
	CHECK(ftruncate(c.mfd, SIZE) == 0);
	c.vm = vm_with_memory(0x10000);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, churn, &c) == 0);
	for (int i = 0; i < 300; i++) {
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0)
			_exit(memfd_fds() == 1 ? 0 : 1);
		int status;
		CHECK(waitpid(pid, &status, 0) == pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	atomic_store(&c.stop, 1);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(c.rounds > 0);
	CHECK_EQ(memfd_fds(), 1);
	OK(kvm_destroy_vm(c.vm));
	CHECK(close(c.mfd) == 0);
}

/* kvm_create_guest_memfd, and a slot bound to a guest_memfd: the guest runs from it and
 * kvm_guest_memory reads what it wrote. Where the kernel has no guest_memfd, EOPNOTSUPP
 * and a recorded skip. */
static void guest_memfd(void)
{
	int vm = OK(kvm_create_vm());
	CHECK_ERR(kvm_create_guest_memfd(-1, 0x10000, 0), EBADF);
	if (OK(kvm_check_extension(vm, LIBKVM_CAP_GUEST_MEMFD)) == 0) {
		CHECK_ERR(kvm_create_guest_memfd(vm, 0x10000, 0), EOPNOTSUPP);
		CHECK_ERR(kvm_create_guest_memfd(vm, 0x10000, LIBKVM_GUEST_MEMFD_MMAP), EOPNOTSUPP);
		OK(kvm_destroy_vm(vm));
		skip_section("guest_memfd", "KVM_CAP_GUEST_MEMFD is 0 (EOPNOTSUPP checked)");
		return;
	}
	uint64_t flags = (uint64_t)OK(kvm_check_extension(vm, LIBKVM_CAP_GUEST_MEMFD_FLAGS));
	const uint64_t both = LIBKVM_GUEST_MEMFD_MMAP | LIBKVM_GUEST_MEMFD_INIT_SHARED;
	CHECK_ERR(kvm_create_guest_memfd(vm, 0x10000, 1ull << 63), EINVAL);
	if (both & ~flags)
		CHECK_ERR(kvm_create_guest_memfd(vm, 0x10000, both & ~flags), EINVAL);
	CHECK_ERR(kvm_create_guest_memfd(vm, 0, 0), EINVAL);
	CHECK_ERR(kvm_create_guest_memfd(vm, 4095, 0), EINVAL);
	/* Not mappable by the host: no slot of libkvm's can use it. */
	int plain = OK(kvm_create_guest_memfd(vm, 0x10000, 0));
	CHECK(fcntl(plain, F_GETFD) & FD_CLOEXEC);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 0, 0, 0, 0x10000, plain, 0, MAP_SHARED), EINVAL);
	CHECK(close(plain) == 0);
	if ((flags & both) != both) {
		OK(kvm_destroy_vm(vm));
		skip_section("guest_memfd slot", "KVM_CAP_GUEST_MEMFD_FLAGS lacks MMAP or INIT_SHARED");
		return;
	}
	/* Mappable but private: a host access would be SIGBUS, so libkvm refuses it. */
	int priv = OK(kvm_create_guest_memfd(vm, 0x10000, LIBKVM_GUEST_MEMFD_MMAP));
	CHECK_ERR(kvm_set_memory_region_fd(vm, 0, 0, 0, 0x10000, priv, 0, MAP_SHARED), EINVAL);
	CHECK(close(priv) == 0);
	int gm = OK(kvm_create_guest_memfd(vm, 0x10000, both));
	CHECK(fcntl(gm, F_GETFD) & FD_CLOEXEC);
	CHECK_ERR(kvm_set_memory_region_fd(vm, 0, 0, 0, 0x10000, gm, 0, MAP_PRIVATE), EINVAL);
	/* All of the guest's memory, its code included, is the guest_memfd's. */
	OK(kvm_set_memory_region_fd(vm, 0, 0, 0, 0x10000, gm, 0, MAP_SHARED));
	load_blob(vm, 0x2000, BLOB(pm_fdmem));
	uint32_t tables[] = { 0x8000, 0x9004, 0xfffc, 0 }, want[3];
	for (int i = 0; i < 3; i++)
		*(uint32_t *)kvm_guest_memory(vm, tables[i], 4) = want[i] = 0x600d0000 + i;
	start_guest(vm, tables, sizeof(tables));
	round_expect(want, 3);
	uint32_t *file = map_fd(gm, 0x10000, PROT_READ);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(*(uint32_t *)kvm_guest_memory(vm, tables[i], 4),
			 guest_value(want[i], tables[i]));
		CHECK_EQ(file[tables[i] / 4], guest_value(want[i], tables[i]));
	}
	CHECK(close(gm) == 0);
	OK(kvm_detach_vcpu());
	void *host = kvm_guest_memory(vm, 0, 1);
	OK(kvm_set_memory_region(vm, 0, 0, 0, 0));
	CHECK(!is_mapped(host));
	CHECK(munmap(file, 0x10000) == 0);
	OK(kvm_destroy_vm(vm));
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "peer") == 0)
		return peer(argv[2]);
	require_kvm();
	deadline(120);
	shared_memfd();
	private_mapping();
	errors();
	cycles();
	fork_during_slot_changes();
	guest_memfd();
	return 0;
}
