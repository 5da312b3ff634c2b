/* The lazy open of /dev/kvm fails with open(2)'s errno in every call that does it (EACCES, EMFILE, ENOENT, ENODEV), and the fd limit gives EMFILE for VMs and vcpus. */
#define _GNU_SOURCE
#include "harness.h"
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* The pairs the children record go to a file of our own that a child running as
 * nobody may write; the parent copies them to the runner's file afterwards. */
static char pairs[] = "/tmp/libkvm-dev-kvm-open-XXXXXX";
static const char *runner_pairs;

/* Every entry point that opens /dev/kvm when it is not open yet fails with `err`: a
 * failed open is not cached, so each of them tries again (and none of them leaves a
 * /dev/kvm fd behind). */
static void every_opener_fails(int err)
{
	struct { struct kvm_msr_list l; uint32_t room[4]; } list = { .l.nmsrs = 4 };
	struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 room[4]; } cpuid = { .c.nent = 4 };
	int fds = count_fds();
	CHECK_ERR(kvm_get_api_version(), err);
	CHECK_ERR(kvm_check_extension(-1, KVM_CAP_USER_MEMORY), err);
	CHECK_ERR(kvm_create_vm(), err);
	CHECK_ERR(kvm_get_vcpu_mmap_size(), err);
	CHECK_ERR(kvm_get_msr_index_list(&list.l), err);
	CHECK_ERR(kvm_get_supported_cpuid(&cpuid.c), err);
	CHECK_ERR(kvm_get_msr_feature_index_list(&list.l), err);
	CHECK_ERR(kvm_system_ioctl(KVM_GET_API_VERSION, NULL), err);
	CHECK_EQ(count_fds(), fds);
}

/* A child that runs `fn`; its exit status decides. */
static void in_child(const char *what, void (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		fn();
		fflush(NULL);
		_exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("%s: the child failed (status 0x%x)", what, st);
}

static void emfile_open(void)
{
	/* /dev/kvm is not open in this child (the parent never opened it). */
	CHECK_ERR_NOFILE(kvm_get_api_version(), EMFILE);
	CHECK_ERR_NOFILE(kvm_check_extension(-1, KVM_CAP_USER_MEMORY), EMFILE);
	CHECK_ERR_NOFILE(kvm_create_vm(), EMFILE);
	CHECK_ERR_NOFILE(kvm_get_vcpu_mmap_size(), EMFILE);
	struct { struct kvm_msr_list l; uint32_t room[4]; } list = { .l.nmsrs = 4 };
	CHECK_ERR_NOFILE(kvm_get_msr_index_list(&list.l), EMFILE);
	CHECK_ERR_NOFILE(kvm_get_msr_feature_index_list(&list.l), EMFILE);
	struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 room[4]; } cpuid = { .c.nent = 4 };
	CHECK_ERR_NOFILE(kvm_get_supported_cpuid(&cpuid.c), EMFILE);
	CHECK_ERR_NOFILE(kvm_system_ioctl(KVM_GET_API_VERSION, NULL), EMFILE);
	/* Once an fd is free again, the open succeeds: the failure was not cached. */
	CHECK_EQ(OK(kvm_get_api_version()), 12);
}

static dev_t kvm_rdev;

/* A private mount namespace with an empty tmpfs on /dev, so that what /dev/kvm is (if
 * anything) is ours to decide; nothing outside this child sees it. Returns 0 if the
 * host refuses the namespace (recorded as a skipped section). */
static int private_dev(const char *section)
{
	if (unshare(CLONE_NEWNS) != 0) {
		char why[128];
		snprintf(why, sizeof why, "unshare(CLONE_NEWNS) refused: %s", strerror(errno));
		skip_section(section, why);
		return 0;
	}
	/* Source and type are ignored for a propagation change (named for valgrind). */
	CHECK(mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0);
	CHECK(mount("tmpfs", "/dev", "tmpfs", 0, "mode=0755") == 0);
	return 1;
}

static void enoent_open(void)
{
	if (!private_dev("ENOENT of the lazy open"))
		return;
	every_opener_fails(ENOENT);
}

/* A misc-device minor that no driver has registered (from /proc/misc). */
static unsigned unused_misc_minor(void)
{
	char seen[256] = { 0 };
	FILE *f = fopen("/proc/misc", "re");
	CHECK(f != NULL);
	unsigned minor;
	char name[64];
	while (fscanf(f, "%u %63s", &minor, name) == 2)
		if (minor < 256)
			seen[minor] = 1;
	fclose(f);
	/* Dynamic minors are handed out downwards from 255 and fixed ones sit low: pick
	 * from the middle. */
	for (minor = 160; minor < 256; minor++)
		if (!seen[minor])
			return minor;
	FAIL("every misc minor from 160 up is registered");
}

static void enodev_open(void)
{
	unsigned minor = unused_misc_minor();
	if (!private_dev("ENODEV of the lazy open"))
		return;
	/* A /dev/kvm that exists but names a device no driver serves. */
	CHECK(mknod("/dev/kvm", S_IFCHR | 0600, makedev(10, minor)) == 0);
	every_opener_fails(ENODEV);
}

static void eacces_open(void)
{
	if (!private_dev("EACCES of the lazy open"))
		return;
	/* The real KVM device, root's only, whatever the host's own /dev/kvm allows. */
	CHECK(mknod("/dev/kvm", S_IFCHR | 0600, kvm_rdev) == 0);
	CHECK(chown("/dev/kvm", 0, 0) == 0);
	CHECK(setgroups(0, NULL) == 0);
	CHECK(setresgid(65534, 65534, 65534) == 0);
	CHECK(setresuid(65534, 65534, 65534) == 0);
	every_opener_fails(EACCES);
}

/* The same node opened by root works: the EACCES above is the permission alone. */
static void root_opens_node(void)
{
	if (!private_dev("EACCES of the lazy open (root's open of the same node)"))
		return;
	CHECK(mknod("/dev/kvm", S_IFCHR | 0600, kvm_rdev) == 0);
	CHECK_EQ(OK(kvm_get_api_version()), 12);
}

static void copy_pairs(void)
{
	if (!runner_pairs || !*runner_pairs)
		return;
	FILE *in = fopen(pairs, "re"), *out = fopen(runner_pairs, "ae");
	CHECK(in && out);
	char line[256];
	while (fgets(line, sizeof line, in))
		fputs(line, out);
	fclose(in);
	fclose(out);
}

int main(void)
{
	require_kvm();
	struct stat st;
	CHECK(stat("/dev/kvm", &st) == 0 && S_ISCHR(st.st_mode));
	kvm_rdev = st.st_rdev;

	runner_pairs = getenv("LIBKVM_TEST_ERRNOS");
	int fd = mkstemp(pairs);
	CHECK(fd >= 0);
	CHECK(fchmod(fd, 0666) == 0);
	close(fd);
	CHECK(setenv("LIBKVM_TEST_ERRNOS", pairs, 1) == 0);

	int nofile = nofile_enforced();
	if (nofile)
		in_child("EMFILE", emfile_open);
	else
		skip_section("EMFILE", "RLIMIT_NOFILE does not reach the kernel here (valgrind keeps it)");
	if (geteuid() != 0) {
		skip_section("ENOENT, ENODEV and EACCES of the lazy open", "not root (mount namespace, mknod)");
	} else {
		in_child("ENOENT", enoent_open);
		in_child("ENODEV", enodev_open);
		in_child("root's open", root_opens_node);
		in_child("EACCES", eacces_open);
	}

	/* In this process /dev/kvm is open from here on: the VM and vcpu fds hit the limit. */
	CHECK_EQ(OK(kvm_get_api_version()), 12);
	if (nofile)
		CHECK_ERR_NOFILE(kvm_create_vm(), EMFILE);
	int vm = OK(kvm_create_vm());
	if (nofile)
		CHECK_ERR_NOFILE(kvm_create_vcpu(vm, 0), EMFILE);
	/* The kernel undid the vcpu it could not give an fd: id 0 is free, and runs. */
	OK(kvm_create_vcpu(vm, 0));
	OK(kvm_set_memory_region(vm, 0, 0, 0, 0x10000));
	load_blob(vm, 0x1000, BLOB(rm_report42));
	setup_real_mode(0x1000);
	CHECK_EQ(run_until_out(0x10), 42);
	end_vm(vm);

	copy_pairs();
	unlink(pairs);
	printf("lazy open: %s from every opener%s\n", nofile ? "EMFILE, ENOENT, ENODEV, EACCES" :
	       "ENOENT, ENODEV, EACCES", nofile ? "; EMFILE for VM and vcpu fds" : "");
	return 0;
}
