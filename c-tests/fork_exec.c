/* A fork child gets clean errors from every call on the parent's VM (and can make its own); the parent's VM keeps working; no libkvm fd survives exec. */
#define _GNU_SOURCE
#include "harness.h"
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int vm, vcpu_fd;
static struct kvm_run *run_area;
static uint8_t *guest_ram;

/* /dev/kvm or a VM/vcpu fd: not a path that merely has "kvm" in it (the test's own log in
 * a checkout such as .../libkvm/build/). */
static void flag_kvm_fd(const char *fd, const char *target, void *bad)
{
	if (strcmp(target, "/dev/kvm") == 0 || strncmp(target, "anon_inode:kvm", 14) == 0) {
		fprintf(stderr, "fd %s -> %s survived exec\n", fd, target);
		*(int *)bad = 1;
	}
}

/* --list-fds: run after exec; fails if any KVM fd was inherited. */
static int list_fds(void)
{
	int bad = 0;
	int n = each_fd(flag_kvm_fd, &bad);
	printf("after exec: %d fds, none of KVM\n", n);
	return bad;
}

static int wait_status(pid_t pid)
{
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st))
		FAIL("child %d died with signal %d", pid, WTERMSIG(st));
	return WEXITSTATUS(st);
}

/* In the child: every call on what it inherited fails cleanly. */
static void child_checks(void)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	/* The inherited fds are closed, the run area and guest memory unmapped. */
	CHECK_EQ(count_kvm_fds(), 0);
	CHECK_EQ(count_kvm_mappings(), 0);
	CHECK(fcntl(vm, F_GETFD) == -1 && errno == EBADF);
	CHECK(!is_mapped(run_area));
	CHECK(!is_mapped(guest_ram));
	/* The forking thread's vcpu is not the child's. */
	CHECK_ERR(kvm_run(), ESRCH);
	CHECK_ERR(kvm_run_area(), ESRCH);
	CHECK_ERR(kvm_get_regs(&r), ESRCH);
	CHECK_ERR(kvm_set_regs(&r), ESRCH);
	CHECK_ERR(kvm_get_sregs(&s), ESRCH);
	CHECK_ERR(kvm_set_sregs(&s), ESRCH);
	CHECK_ERR(kvm_nmi(), ESRCH);
	CHECK_ERR(kvm_vcpu_ioctl(KVM_GET_REGS, &r), ESRCH);
	CHECK_ERR(kvm_detach_vcpu(), ESRCH);
	struct kvm_vcpu_events ev;
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp;
	struct kvm_fpu fpu;
	struct kvm_guest_debug dbg = { 0 };
	struct { struct kvm_msrs h; struct kvm_msr_entry e[1]; } msrs = { .h.nmsrs = 1 };
	struct { struct kvm_cpuid2 h; struct kvm_cpuid_entry2 e[256]; } cpuid = { .h.nent = 256 };
	uint64_t phys;
	uint8_t valid, wr, user;
	CHECK_ERR(kvm_get_vcpu_events(&ev), ESRCH);
	CHECK_ERR(kvm_set_vcpu_events(&ev), ESRCH);
	CHECK_ERR(kvm_get_lapic(&lapic), ESRCH);
	CHECK_ERR(kvm_set_lapic(&lapic), ESRCH);
	CHECK_ERR(kvm_get_mp_state(&mp), ESRCH);
	CHECK_ERR(kvm_set_mp_state(&mp), ESRCH);
	CHECK_ERR(kvm_get_fpu(&fpu), ESRCH);
	CHECK_ERR(kvm_set_fpu(&fpu), ESRCH);
	CHECK_ERR(kvm_debug_guest(&dbg), ESRCH);
	CHECK_ERR(kvm_get_msrs(&msrs.h), ESRCH);
	CHECK_ERR(kvm_set_msrs(&msrs.h), ESRCH);
	CHECK_ERR(kvm_set_cpuid(&cpuid.h), ESRCH);
	CHECK_ERR(kvm_translate(0, &phys, &valid, &wr, &user), ESRCH);
	CHECK_ERR(kvm_interrupt(32), ESRCH);
	CHECK_ERR(kvm_set_signal_mask(NULL), ESRCH);
	CHECK_ERR(kvm_kick_vcpu(vcpu_fd), EBADF);
	struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_DISABLE_EXITS };
	struct kvm_debugregs dr;
	struct { struct kvm_nested_state h; char d[4096]; } ns = { .h.size = sizeof(ns) };
	uint64_t val;
	struct kvm_one_reg one = { .id = 0x2030000200000010ULL, .addr = (uintptr_t)&val };
	struct kvm_sregs2 s2;
	struct kvm_xcrs xcrs;
	static char xsave[1 << 16];
	static char blob[1 << 16];
	size_t len = sizeof(blob);
	CHECK_ERR(kvm_enable_vcpu_cap(&cap), ESRCH);
	CHECK_ERR(kvm_get_debugregs(&dr), ESRCH);
	CHECK_ERR(kvm_set_debugregs(&dr), ESRCH);
	CHECK_ERR(kvm_get_nested_state(&ns.h), ESRCH);
	CHECK_ERR(kvm_set_nested_state(&ns.h), ESRCH);
	CHECK_ERR(kvm_get_one_reg(&one), ESRCH);
	CHECK_ERR(kvm_set_one_reg(&one), ESRCH);
	CHECK_ERR(kvm_get_sregs2(&s2), ESRCH);
	CHECK_ERR(kvm_set_sregs2(&s2), ESRCH);
	CHECK_ERR(kvm_get_tsc_khz(), ESRCH);
	CHECK_ERR(kvm_set_tsc_khz(0), ESRCH);
	CHECK_ERR(kvm_get_xcrs(&xcrs), ESRCH);
	CHECK_ERR(kvm_set_xcrs(&xcrs), ESRCH);
	CHECK_ERR(kvm_get_xsave((struct kvm_xsave *)xsave, sizeof(xsave)), ESRCH);
	CHECK_ERR(kvm_set_xsave((struct kvm_xsave *)xsave, sizeof(xsave)), ESRCH);
	CHECK_ERR(kvm_get_xsave_size(), ESRCH);
	CHECK_ERR(kvm_kvmclock_ctrl(), ESRCH);
	CHECK_ERR(kvm_save_vcpu(blob, &len), ESRCH);
	CHECK_ERR(kvm_restore_vcpu(blob, len), ESRCH);
	/* The parent's VM and vcpu are no VM and vcpu of the child. */
	CHECK_ERR(kvm_attach_vcpu(vcpu_fd), EBADF);
	CHECK_ERR(kvm_guest_memory(vm, 0x1000, 1), EBADF);
	CHECK_ERR(kvm_set_memory_region(vm, 1, 0, 0x100000, 4096), EBADF);
	CHECK_ERR(kvm_set_memory_region(vm, 0, 0, 0, 0), EBADF);
	CHECK_ERR(kvm_create_vcpu(vm, 1), EBADF);
	CHECK_ERR(kvm_check_extension(vm, KVM_CAP_USER_MEMORY), EBADF);
	CHECK_ERR(kvm_vm_ioctl(vm, KVM_CHECK_EXTENSION, (void *)KVM_CAP_USER_MEMORY), EBADF);
	CHECK_ERR(kvm_create_irqchip(vm), EBADF);
	CHECK_ERR(kvm_create_pit2(vm, 0), EBADF);
	CHECK_ERR(kvm_irq_line(vm, 4, 1), EBADF);
	struct kvm_msi msi = { .address_lo = 0xfee00000 };
	CHECK_ERR(kvm_signal_msi(vm, &msi), EBADF);
	CHECK_ERR(kvm_irqfd(vm, 0, 5, 0), EBADF);
	struct kvm_ioeventfd io = { .addr = 0x600, .len = 1, .flags = KVM_IOEVENTFD_FLAG_PIO };
	CHECK_ERR(kvm_ioeventfd(vm, &io), EBADF);
	CHECK_ERR(kvm_set_tss_addr(vm, 0xfffbd000), EBADF);
	CHECK_ERR(kvm_set_identity_map_addr(vm, 0xfeffc000), EBADF);
	CHECK_ERR(kvm_set_user_memory_region(vm, 1, 0, 0x100000, 4096, guest_ram), EBADF);
	uint64_t bitmap[4];
	CHECK_ERR(kvm_get_dirty_log(vm, 0, bitmap), EBADF);
	struct kvm_memory_alias alias = { .slot = 0, .guest_phys_addr = 0x200000,
		.memory_size = 0x1000 };
	CHECK_ERR(kvm_set_memory_alias(vm, &alias), EBADF);
	CHECK_ERR(kvm_get_memory_alias(vm, &alias), EBADF);
	struct kvm_clear_dirty_log cl = { .num_pages = 64, .dirty_bitmap = bitmap };
	struct kvm_coalesced_mmio entry;
	struct kvm_coalesced_mmio_zone zone = { .addr = 0x100000, .size = 0x1000 };
	struct kvm_clock_data clock;
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };
	static struct kvm_pit_state2 pit;
	struct kvm_irq_level lvl = { .irq = 4, .level = 1 };
	struct kvm_irq_routing routing = { .nr = 0 };
	CHECK_ERR(kvm_clear_dirty_log(vm, &cl), EBADF);
	CHECK_ERR(kvm_coalesced_mmio_next(vm, &entry), EBADF);
	CHECK_ERR(kvm_register_coalesced_mmio(vm, &zone), EBADF);
	CHECK_ERR(kvm_unregister_coalesced_mmio(vm, &zone), EBADF);
	CHECK_ERR(kvm_enable_cap(vm, &cap), EBADF);
	CHECK_ERR(kvm_get_clock(vm, &clock), EBADF);
	CHECK_ERR(kvm_set_clock(vm, &clock), EBADF);
	CHECK_ERR(kvm_get_irqchip(vm, &chip), EBADF);
	CHECK_ERR(kvm_set_irqchip(vm, &chip), EBADF);
	CHECK_ERR(kvm_get_pit2(vm, &pit), EBADF);
	CHECK_ERR(kvm_set_pit2(vm, &pit), EBADF);
	CHECK_ERR(kvm_irq_line_status(vm, &lvl), EBADF);
	CHECK_ERR(kvm_set_gsi_routing(vm, &routing), EBADF);
	len = sizeof(blob);
	CHECK_ERR(kvm_save_vm(vm, blob, &len), EBADF);
	CHECK_ERR(kvm_restore_vm(vm, blob, 100), EBADF);
	CHECK_ERR(kvm_destroy_vm(vm), EBADF);
	/* The calls on /dev/kvm work; the kick signal stays the one the parent fixed. */
	CHECK(kvm_check_extension(-1, KVM_CAP_USER_MEMORY) > 0);
	CHECK(kvm_get_vcpu_mmap_size() > 0);
	CHECK(kvm_get_library_version() >= 10000);
	OK(kvm_get_supported_cpuid(&cpuid.h));
	struct { struct kvm_msr_list h; uint32_t i[1024]; } list = { .h.nmsrs = 1024 };
	OK(kvm_get_msr_index_list(&list.h));
	list.h.nmsrs = 1024;
	OK(kvm_get_msr_feature_index_list(&list.h));
	struct { struct kvm_msrs h; struct kvm_msr_entry e[1]; } feat = { .h.nmsrs = 1,
		.e[0].index = list.h.nmsrs ? list.i[0] : 0x10a };
	/* The child reads the host's feature MSR as the parent's /dev/kvm reports it. */
	__typeof__(feat) raw = feat;
	CHECK_EQ(OK(kvm_get_msr_features(&feat.h)), list.h.nmsrs ? 1 : 0);
	CHECK_EQ(OK(kvm_system_ioctl(KVM_GET_MSRS, &raw.h)), list.h.nmsrs ? 1 : 0);
	CHECK_EQ(feat.e[0].data, raw.e[0].data);
	CHECK(kvm_system_ioctl(KVM_CHECK_EXTENSION, (void *)KVM_CAP_USER_MEMORY) > 0);
	CHECK_ERR(kvm_set_kick_signal(SIGUSR2), EBUSY);
	/* The child can have VMs of its own. */
	CHECK(kvm_get_api_version() == 12);
	int own = vm_with_memory(0x10000);
	real_mode_vcpu(own, 0, 0x1000, BLOB(rm_report));
	OK(kvm_get_regs(&r));
	r.rsi = 21;
	OK(kvm_set_regs(&r));
	CHECK_EQ(run_until_out(0x10), 42);
	end_vm(own);
}

/* A thread that keeps the registry busy while the main thread forks. */
static volatile int churn_stop;

static void *churn(void *arg)
{
	(void)arg;
	while (!churn_stop) {
		int v = OK(kvm_create_vm());
		OK(kvm_set_memory_region(v, 0, 0, 0, 0x1000));
		OK(kvm_create_vcpu(v, 0));
		end_vm(v);
	}
	return NULL;
}

static void exec_lists_no_kvm_fd(const char *self)
{
	/* fork + exec (atfork handlers run, then O_CLOEXEC)... */
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execl(self, self, "--list-fds", (char *)NULL);
		_exit(127);
	}
	CHECK_EQ(wait_status(pid), 0);
	/* ...and posix_spawn, which runs no fork handlers: O_CLOEXEC alone. */
	char *argv[] = { (char *)self, "--list-fds", NULL };
	CHECK(posix_spawn(&pid, self, NULL, NULL, argv, environ) == 0);
	CHECK_EQ(wait_status(pid), 0);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--list-fds") == 0)
		return list_fds();
	require_kvm();
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	CHECK(n > 0);
	self[n] = 0;

	/* The parent's VM: memory, a vcpu owned by this thread, a guest stopped at an
	 * exit (rm_report doubles SI on port 0x10, then reports BX + 1 on 0x11). */
	vm = vm_with_memory(0x10000);
	load_blob(vm, 0x1000, BLOB(rm_report));
	guest_ram = kvm_guest_memory(vm, 0, 0x10000);
	vcpu_fd = OK(kvm_create_vcpu(vm, 0));
	run_area = kvm_run_area();
	setup_real_mode(0x1000);
	EDIT_REGS(r, r.rsi = 50; r.rbx = 6);
	CHECK_EQ(run_until_out(0x10), 100);
	guest_ram[0x8000] = 0x5a;

	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		child_checks();
		exit(0);
	}
	CHECK_EQ(wait_status(pid), 0);

	/* The parent carries on where it was: the guest's next exit, its registers, its
	 * memory. */
	CHECK_EQ(run_until_out(0x11), 7);
	run_expect(KVM_EXIT_HLT);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rsi, 50);
	CHECK_EQ(guest_ram[0x8000], 0x5a);
	CHECK(kvm_run_area() == run_area);

	/* Forks while another thread creates and destroys VMs: no child inherits the
	 * registry half-changed or locked. */
	pthread_t t;
	CHECK(pthread_create(&t, NULL, churn, NULL) == 0);
	/* Under valgrind each child's exit is a leak check of its own: fewer forks. */
	const char *inst = getenv("LIBKVM_TEST_INSTRUMENTED");
	int forks = inst && strcmp(inst, "valgrind") == 0 ? 30 : 200;
	for (int i = 0; i < forks; i++) {
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			CHECK_ERR(kvm_destroy_vm(vm), EBADF);
			CHECK_ERR(kvm_get_regs(&r), ESRCH);
			CHECK_EQ(count_kvm_fds(), 0);
			int own = OK(kvm_create_vm());
			OK(kvm_destroy_vm(own));
			check_no_kvm_leaks("fork child");
			/* _exit: LeakSanitizer's exit-time check cannot stop the parent's
			 * threads, which do not exist here, and hangs (valgrind still checks). */
			_exit(0);
		}
		CHECK_EQ(wait_status(pid), 0);
	}
	churn_stop = 1;
	CHECK(pthread_join(t, NULL) == 0);

	exec_lists_no_kvm_fd(self);

	end_vm(vm);
	return 0;
}
