/* Every exported function × every class of bad argument it can take: the errno its man page names. */
/*
 * How it is built, so that a new function adds a few lines:
 * - VM_CALLS: one wrapper per function taking a VM fd (valid other arguments); each is
 *   called with every bad VM fd of BAD_VM_FDS and must fail with EBADF.
 * - VCPU_CALLS: one wrapper per per-vcpu function (valid arguments); each is called on a
 *   thread that never had a vcpu, on one that detached its vcpu, and after the VM was
 *   destroyed, and must fail with ESRCH.
 * - NULL_CALLS: one wrapper per pointer argument, called with NULL: EFAULT.
 * - VCPU_FD_CALLS: functions naming a vcpu by fd, with every bad vcpu fd: EBADF.
 * - OBJECT_FD_CALLS: functions naming a VM or a vcpu by fd, with every fd that is
 *   neither: EBADF.
 * - Then one function per area with the value classes (ranges, alignment, overflow,
 *   overlap, out-of-range ids, sizes of 0, wild pointers the kernel dereferences).
 * Every case is counted; the total and the count per class are printed.
 */
#define _GNU_SOURCE
#include "harness.h"
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int cases, failures;

/* Cases per class, for the summary. */
static struct { const char *class; int n; } tally[128];

static void count_class(const char *class)
{
	int i;
	for (i = 0; i < (int)(sizeof(tally) / sizeof(tally[0])) && tally[i].class; i++)
		if (strcmp(tally[i].class, class) == 0)
			break;
	CHECK(i < (int)(sizeof(tally) / sizeof(tally[0])));
	tally[i].class = class;
	tally[i].n++;
}

/* With MATRIX_ERRNOS set, every (function, errno) pair checked is printed, once, for
 * c-tests/invariants/matrix-man.sh to look up in the function's man page. */
static int list_pairs;
static struct { char fn[48]; int err; } pairs[512];
static int n_pairs;

static void note_pair(const char *call, int err)
{
	const char *k = strstr(call, "kvm_");
	if (!list_pairs || !k)
		return;
	char fn[48];
	size_t n = strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_");
	if (n >= sizeof(fn))
		n = sizeof(fn) - 1;
	memcpy(fn, k, n);
	fn[n] = 0;
	for (int i = 0; i < n_pairs; i++)
		if (pairs[i].err == err && strcmp(pairs[i].fn, fn) == 0)
			return;
	CHECK(n_pairs < (int)(sizeof(pairs) / sizeof(pairs[0])));
	strcpy(pairs[n_pairs].fn, fn);
	pairs[n_pairs++].err = err;
	printf("errno %s %s\n", fn, strerrorname_np(err));
}

/* Records one case: `r` is what the call returned (pointer calls: see P()), `e` errno. */
static void expect(const char *call, const char *class, long r, int e, int want)
{
	cases++;
	count_class(class);
	note_pair(call, want);
	if (r == -1 && e == want)
		return;
	failures++;
	if (r != -1)
		fprintf(stderr, "FAIL %s [%s]: returned %ld, expected -1/%s\n", call, class, r,
			strerrorname_np(want));
	else
		fprintf(stderr, "FAIL %s [%s]: errno %s, expected %s\n", call, class,
			strerrorname_np(e), strerrorname_np(want));
}

/* A pointer-returning call as -1 (NULL) or 0. */
#define P(call) ((call) == NULL ? -1L : 0L)
/* One hand-written case. */
#define BAD(class, call, want) do { errno = 0; long r_ = (long)(call); \
	expect(#call, class, r_, errno, want); } while (0)

/* ---- state the wrappers use ----------------------------------------------------- */

static uint32_t stat_flags, stat_size;
static int16_t stat_exponent;

static int vm;                  /* a VM with 64 KiB at 0 and vcpu 0 */
static int vcpu_fd;
static int eventfd_fd;
static struct kvm_regs regs;
static struct kvm_sregs sregs;
static struct kvm_vcpu_events events;
static struct kvm_lapic_state lapic;
static struct kvm_mp_state mp_state;
static struct kvm_msi msi = { .address_lo = 0xfee00000 };
static struct kvm_ioeventfd ioev = { .addr = 0x600, .len = 1, .flags = KVM_IOEVENTFD_FLAG_PIO };
static char user_mem[8192] __attribute__((aligned(4096)));
static uint64_t bitmap[8];
static struct kvm_memory_alias alias = { .slot = 0, .guest_phys_addr = 0x200000,
	.memory_size = 0x1000, .target_phys_addr = 0 };
static struct kvm_fpu fpu;
static struct kvm_guest_debug debug;
static struct { struct kvm_msrs h; struct kvm_msr_entry e[4]; } msrs = { .h.nmsrs = 1,
	.e[0].index = 0x174 /* IA32_SYSENTER_CS */ };
static struct { struct kvm_cpuid2 h; struct kvm_cpuid_entry2 e[256]; } cpuid;
static struct { struct kvm_msr_list h; uint32_t i[1024]; } msr_list;
static sigset_t sigmask;
static uint64_t clear_bits[4];
static struct kvm_clear_dirty_log clear_log = { .slot = 0, .num_pages = 64,
	.dirty_bitmap = clear_bits };
static struct kvm_coalesced_mmio coalesced;
static struct kvm_coalesced_mmio_zone zone = { .addr = 0x100000, .size = 0x1000 };
static struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_DISABLE_EXITS };
static struct kvm_clock_data clock_data;
static struct kvm_irqchip irqchip = { .chip_id = KVM_IRQCHIP_IOAPIC };
static struct kvm_pit_state2 pit;
static struct kvm_irq_level irq_level = { .irq = 4, .level = 1 };
static struct kvm_irq_routing routing;
static char blob[1 << 16];
static size_t blob_len = sizeof(blob);
static char vm_blob[1 << 12];
static size_t vm_blob_len;
static struct kvm_debugregs debugregs;
static struct { struct kvm_nested_state h; char data[0x4000]; } nested = { .h.size = sizeof(nested) };
static uint64_t one_reg_value;
static struct kvm_one_reg one_reg = { .id = 0x2030000200000010ULL /* MSR 0x10, the TSC */ };
static struct kvm_sregs2 sregs2;
static struct kvm_xcrs xcrs;
static char xsave_buf[1 << 16] __attribute__((aligned(64)));
static struct kvm_xsave *const xsave = (struct kvm_xsave *)xsave_buf;
static uint64_t phys;
static uint8_t valid, writeable, usermode;

/* ---- functions taking a VM fd ---------------------------------------------------- */

static long vm_check_extension(int fd) { return kvm_check_extension(fd, KVM_CAP_USER_MEMORY); }
static long vm_destroy(int fd) { return kvm_destroy_vm(fd); }
static long vm_create_vcpu(int fd) { return kvm_create_vcpu(fd, 7); }
static long vm_set_memory_region(int fd) { return kvm_set_memory_region(fd, 5, 0, 0x100000, 4096); }
static long vm_set_user_memory_region(int fd)
{
	return kvm_set_user_memory_region(fd, 5, 0, 0x100000, 4096, user_mem);
}
static long vm_guest_memory(int fd) { return P(kvm_guest_memory(fd, 0x1000, 1)); }
static int mem_fd; /* a memfd of 64 KiB */
static long vm_set_memory_region_fd(int fd)
{
	return kvm_set_memory_region_fd(fd, 5, 0, 0x100000, 4096, mem_fd, 0, MAP_SHARED);
}
static long vm_create_guest_memfd(int fd) { return kvm_create_guest_memfd(fd, 0x10000, 0); }
static long vm_set_tss_addr(int fd) { return kvm_set_tss_addr(fd, 0xfffbd000); }
static long vm_set_identity_map_addr(int fd) { return kvm_set_identity_map_addr(fd, 0xfeffc000); }
static long vm_create_irqchip(int fd) { return kvm_create_irqchip(fd); }
static long vm_create_pit2(int fd) { return kvm_create_pit2(fd, 0); }
static long vm_irq_line(int fd) { return kvm_irq_line(fd, 4, 1); }
static long vm_signal_msi(int fd) { return kvm_signal_msi(fd, &msi); }
static long vm_irqfd(int fd) { return kvm_irqfd(fd, eventfd_fd, 5, 0); }
static long vm_ioeventfd(int fd) { return kvm_ioeventfd(fd, &ioev); }
static long vm_vm_ioctl(int fd) { return kvm_vm_ioctl(fd, KVM_CHECK_EXTENSION, (void *)KVM_CAP_USER_MEMORY); }
static long vm_get_dirty_log(int fd) { return kvm_get_dirty_log(fd, 0, bitmap); }
static long vm_set_memory_alias(int fd) { return kvm_set_memory_alias(fd, &alias); }
static long vm_get_memory_alias(int fd) { return kvm_get_memory_alias(fd, &alias); }
static long vm_clear_dirty_log(int fd) { return kvm_clear_dirty_log(fd, &clear_log); }
static long vm_coalesced_mmio_next(int fd) { return kvm_coalesced_mmio_next(fd, &coalesced); }
static long vm_enable_cap(int fd) { return kvm_enable_cap(fd, &cap); }
static long vm_get_clock(int fd) { return kvm_get_clock(fd, &clock_data); }
static long vm_set_clock(int fd) { return kvm_set_clock(fd, &clock_data); }
static long vm_get_irqchip(int fd) { return kvm_get_irqchip(fd, &irqchip); }
static long vm_set_irqchip(int fd) { return kvm_set_irqchip(fd, &irqchip); }
static long vm_get_pit2(int fd) { return kvm_get_pit2(fd, &pit); }
static long vm_set_pit2(int fd) { return kvm_set_pit2(fd, &pit); }
static long vm_irq_line_status(int fd) { return kvm_irq_line_status(fd, &irq_level); }
static long vm_set_gsi_routing(int fd) { return kvm_set_gsi_routing(fd, &routing); }
static long vm_register_coalesced(int fd) { return kvm_register_coalesced_mmio(fd, &zone); }
static long vm_unregister_coalesced(int fd) { return kvm_unregister_coalesced_mmio(fd, &zone); }
static long vm_save_vm(int fd) { size_t n = sizeof(blob); return kvm_save_vm(fd, blob, &n); }
static long vm_restore_vm(int fd) { return kvm_restore_vm(fd, vm_blob, vm_blob_len); }
static long vm_enable_dirty_ring(int fd) { return kvm_enable_dirty_ring(fd, 65536); }

static const struct { const char *name; long (*call)(int); int minus1_ok; } VM_CALLS[] = {
	{ "kvm_check_extension", vm_check_extension, 1 }, /* -1 means /dev/kvm itself */
	{ "kvm_destroy_vm", vm_destroy, 0 },
	{ "kvm_create_vcpu", vm_create_vcpu, 0 },
	{ "kvm_set_memory_region", vm_set_memory_region, 0 },
	{ "kvm_set_user_memory_region", vm_set_user_memory_region, 0 },
	{ "kvm_guest_memory", vm_guest_memory, 0 },
	{ "kvm_set_tss_addr", vm_set_tss_addr, 0 },
	{ "kvm_set_identity_map_addr", vm_set_identity_map_addr, 0 },
	{ "kvm_create_irqchip", vm_create_irqchip, 0 },
	{ "kvm_create_pit2", vm_create_pit2, 0 },
	{ "kvm_irq_line", vm_irq_line, 0 },
	{ "kvm_signal_msi", vm_signal_msi, 0 },
	{ "kvm_irqfd", vm_irqfd, 0 },
	{ "kvm_ioeventfd", vm_ioeventfd, 0 },
	{ "kvm_vm_ioctl", vm_vm_ioctl, 0 },
	{ "kvm_get_dirty_log", vm_get_dirty_log, 0 },
	{ "kvm_set_memory_alias", vm_set_memory_alias, 0 },
	{ "kvm_get_memory_alias", vm_get_memory_alias, 0 },
	{ "kvm_clear_dirty_log", vm_clear_dirty_log, 0 },
	{ "kvm_coalesced_mmio_next", vm_coalesced_mmio_next, 0 },
	{ "kvm_enable_cap", vm_enable_cap, 0 },
	{ "kvm_get_clock", vm_get_clock, 0 },
	{ "kvm_set_clock", vm_set_clock, 0 },
	{ "kvm_get_irqchip", vm_get_irqchip, 0 },
	{ "kvm_set_irqchip", vm_set_irqchip, 0 },
	{ "kvm_get_pit2", vm_get_pit2, 0 },
	{ "kvm_set_pit2", vm_set_pit2, 0 },
	{ "kvm_irq_line_status", vm_irq_line_status, 0 },
	{ "kvm_set_gsi_routing", vm_set_gsi_routing, 0 },
	{ "kvm_register_coalesced_mmio", vm_register_coalesced, 0 },
	{ "kvm_unregister_coalesced_mmio", vm_unregister_coalesced, 0 },
	{ "kvm_save_vm", vm_save_vm, 0 },
	{ "kvm_restore_vm", vm_restore_vm, 0 },
	{ "kvm_enable_dirty_ring", vm_enable_dirty_ring, 0 },
	{ "kvm_set_memory_region_fd", vm_set_memory_region_fd, 0 },
	{ "kvm_create_guest_memfd", vm_create_guest_memfd, 0 },
};

/* ---- functions acting on the calling thread's vcpu ------------------------------- */

static long vc_run(void) { return kvm_run(); }
static long vc_run_area(void) { return P(kvm_run_area()); }
static long vc_get_regs(void) { return kvm_get_regs(&regs); }
static long vc_set_regs(void) { return kvm_set_regs(&regs); }
static long vc_get_sregs(void) { return kvm_get_sregs(&sregs); }
static long vc_set_sregs(void) { return kvm_set_sregs(&sregs); }
static long vc_get_vcpu_events(void) { return kvm_get_vcpu_events(&events); }
static long vc_set_vcpu_events(void) { return kvm_set_vcpu_events(&events); }
static long vc_get_lapic(void) { return kvm_get_lapic(&lapic); }
static long vc_set_lapic(void) { return kvm_set_lapic(&lapic); }
static long vc_get_mp_state(void) { return kvm_get_mp_state(&mp_state); }
static long vc_set_mp_state(void) { return kvm_set_mp_state(&mp_state); }
static long vc_nmi(void) { return kvm_nmi(); }
static long vc_detach(void) { return kvm_detach_vcpu(); }
static long vc_vcpu_ioctl(void) { return kvm_vcpu_ioctl(KVM_GET_REGS, &regs); }
static long vc_translate(void) { return kvm_translate(0x1000, &phys, &valid, &writeable, &usermode); }
static long vc_interrupt(void) { return kvm_interrupt(0x20); }
static long vc_debug_guest(void) { return kvm_debug_guest(&debug); }
static long vc_get_msrs(void) { return kvm_get_msrs(&msrs.h); }
static long vc_set_msrs(void) { return kvm_set_msrs(&msrs.h); }
static long vc_set_cpuid(void) { return kvm_set_cpuid(&cpuid.h); }
static long vc_get_fpu(void) { return kvm_get_fpu(&fpu); }
static long vc_set_fpu(void) { return kvm_set_fpu(&fpu); }
static long vc_set_signal_mask(void) { return kvm_set_signal_mask(&sigmask); }
static long vc_set_signal_mask_null(void) { return kvm_set_signal_mask(NULL); }
static long vc_enable_vcpu_cap(void) { return kvm_enable_vcpu_cap(&cap); }
static long vc_get_debugregs(void) { return kvm_get_debugregs(&debugregs); }
static long vc_set_debugregs(void) { return kvm_set_debugregs(&debugregs); }
static long vc_get_nested_state(void) { return kvm_get_nested_state(&nested.h); }
static long vc_set_nested_state(void) { return kvm_set_nested_state(&nested.h); }
static long vc_get_one_reg(void) { return kvm_get_one_reg(&one_reg); }
static long vc_set_one_reg(void) { return kvm_set_one_reg(&one_reg); }
static long vc_get_sregs2(void) { return kvm_get_sregs2(&sregs2); }
static long vc_set_sregs2(void) { return kvm_set_sregs2(&sregs2); }
static long vc_get_tsc_khz(void) { return kvm_get_tsc_khz(); }
static long vc_set_tsc_khz(void) { return kvm_set_tsc_khz(0); }
static long vc_get_xcrs(void) { return kvm_get_xcrs(&xcrs); }
static long vc_set_xcrs(void) { return kvm_set_xcrs(&xcrs); }
static long vc_get_xsave(void) { return kvm_get_xsave(xsave, sizeof(xsave_buf)); }
static long vc_set_xsave(void) { return kvm_set_xsave(xsave, sizeof(xsave_buf)); }
static long vc_get_xsave_size(void) { return kvm_get_xsave_size(); }
static long vc_kvmclock_ctrl(void) { return kvm_kvmclock_ctrl(); }
static long vc_save_vcpu(void) { size_t n = sizeof(blob); return kvm_save_vcpu(blob, &n); }
static long vc_restore_vcpu(void) { return kvm_restore_vcpu(blob, blob_len); }

static const struct { const char *name; long (*call)(void); } VCPU_CALLS[] = {
	{ "kvm_run", vc_run },
	{ "kvm_run_area", vc_run_area },
	{ "kvm_get_regs", vc_get_regs },
	{ "kvm_set_regs", vc_set_regs },
	{ "kvm_get_sregs", vc_get_sregs },
	{ "kvm_set_sregs", vc_set_sregs },
	{ "kvm_get_vcpu_events", vc_get_vcpu_events },
	{ "kvm_set_vcpu_events", vc_set_vcpu_events },
	{ "kvm_get_lapic", vc_get_lapic },
	{ "kvm_set_lapic", vc_set_lapic },
	{ "kvm_get_mp_state", vc_get_mp_state },
	{ "kvm_set_mp_state", vc_set_mp_state },
	{ "kvm_nmi", vc_nmi },
	{ "kvm_detach_vcpu", vc_detach },
	{ "kvm_vcpu_ioctl", vc_vcpu_ioctl },
	{ "kvm_translate", vc_translate },
	{ "kvm_interrupt", vc_interrupt },
	{ "kvm_debug_guest", vc_debug_guest },
	{ "kvm_get_msrs", vc_get_msrs },
	{ "kvm_set_msrs", vc_set_msrs },
	{ "kvm_set_cpuid", vc_set_cpuid },
	{ "kvm_get_fpu", vc_get_fpu },
	{ "kvm_set_fpu", vc_set_fpu },
	{ "kvm_set_signal_mask", vc_set_signal_mask },
	{ "kvm_set_signal_mask(NULL)", vc_set_signal_mask_null },
	{ "kvm_enable_vcpu_cap", vc_enable_vcpu_cap },
	{ "kvm_get_debugregs", vc_get_debugregs },
	{ "kvm_set_debugregs", vc_set_debugregs },
	{ "kvm_get_nested_state", vc_get_nested_state },
	{ "kvm_set_nested_state", vc_set_nested_state },
	{ "kvm_get_one_reg", vc_get_one_reg },
	{ "kvm_set_one_reg", vc_set_one_reg },
	{ "kvm_get_sregs2", vc_get_sregs2 },
	{ "kvm_set_sregs2", vc_set_sregs2 },
	{ "kvm_get_tsc_khz", vc_get_tsc_khz },
	{ "kvm_set_tsc_khz", vc_set_tsc_khz },
	{ "kvm_get_xcrs", vc_get_xcrs },
	{ "kvm_set_xcrs", vc_set_xcrs },
	{ "kvm_get_xsave", vc_get_xsave },
	{ "kvm_set_xsave", vc_set_xsave },
	{ "kvm_get_xsave_size", vc_get_xsave_size },
	{ "kvm_kvmclock_ctrl", vc_kvmclock_ctrl },
	{ "kvm_save_vcpu", vc_save_vcpu },
	{ "kvm_restore_vcpu", vc_restore_vcpu },
};

/* ---- NULL for each pointer argument (EFAULT) ------------------------------------- */

static long nl_get_regs(void) { return kvm_get_regs(NULL); }
static long nl_set_regs(void) { return kvm_set_regs(NULL); }
static long nl_get_sregs(void) { return kvm_get_sregs(NULL); }
static long nl_set_sregs(void) { return kvm_set_sregs(NULL); }
static long nl_get_vcpu_events(void) { return kvm_get_vcpu_events(NULL); }
static long nl_set_vcpu_events(void) { return kvm_set_vcpu_events(NULL); }
static long nl_get_lapic(void) { return kvm_get_lapic(NULL); }
static long nl_set_lapic(void) { return kvm_set_lapic(NULL); }
static long nl_get_mp_state(void) { return kvm_get_mp_state(NULL); }
static long nl_set_mp_state(void) { return kvm_set_mp_state(NULL); }
static long nl_signal_msi(void) { return kvm_signal_msi(vm, NULL); }
static long nl_ioeventfd(void) { return kvm_ioeventfd(vm, NULL); }
static long nl_user_memory(void) { return kvm_set_user_memory_region(vm, 5, 0, 0x100000, 4096, NULL); }
static long nl_get_dirty_log(void) { return kvm_get_dirty_log(vm, 0, NULL); }
static long nl_set_memory_alias(void) { return kvm_set_memory_alias(vm, NULL); }
static long nl_get_memory_alias(void) { return kvm_get_memory_alias(vm, NULL); }
static long nl_translate_phys(void) { return kvm_translate(0x1000, NULL, &valid, &writeable, &usermode); }
static long nl_translate_valid(void) { return kvm_translate(0x1000, &phys, NULL, &writeable, &usermode); }
static long nl_translate_writeable(void) { return kvm_translate(0x1000, &phys, &valid, NULL, &usermode); }
static long nl_translate_usermode(void) { return kvm_translate(0x1000, &phys, &valid, &writeable, NULL); }
static long nl_debug_guest(void) { return kvm_debug_guest(NULL); }
static long nl_get_msrs(void) { return kvm_get_msrs(NULL); }
static long nl_set_msrs(void) { return kvm_set_msrs(NULL); }
static long nl_set_cpuid(void) { return kvm_set_cpuid(NULL); }
static long nl_get_fpu(void) { return kvm_get_fpu(NULL); }
static long nl_set_fpu(void) { return kvm_set_fpu(NULL); }
static long nl_get_msr_index_list(void) { return kvm_get_msr_index_list(NULL); }
static long nl_get_supported_cpuid(void) { return kvm_get_supported_cpuid(NULL); }
static long nl_clear_dirty_log(void) { return kvm_clear_dirty_log(vm, NULL); }
static long nl_coalesced_mmio_next(void) { return kvm_coalesced_mmio_next(vm, NULL); }
static long nl_enable_cap(void) { return kvm_enable_cap(vm, NULL); }
static long nl_get_clock(void) { return kvm_get_clock(vm, NULL); }
static long nl_set_clock(void) { return kvm_set_clock(vm, NULL); }
static long nl_get_irqchip(void) { return kvm_get_irqchip(vm, NULL); }
static long nl_set_irqchip(void) { return kvm_set_irqchip(vm, NULL); }
static long nl_get_pit2(void) { return kvm_get_pit2(vm, NULL); }
static long nl_set_pit2(void) { return kvm_set_pit2(vm, NULL); }
static long nl_irq_line_status(void) { return kvm_irq_line_status(vm, NULL); }
static long nl_set_gsi_routing(void) { return kvm_set_gsi_routing(vm, NULL); }
static long nl_register_coalesced(void) { return kvm_register_coalesced_mmio(vm, NULL); }
static long nl_unregister_coalesced(void) { return kvm_unregister_coalesced_mmio(vm, NULL); }
static long nl_save_vm_len(void) { return kvm_save_vm(vm, blob, NULL); }
static long nl_save_vm_buf(void) { size_t n = sizeof(blob); return kvm_save_vm(vm, NULL, &n); }
static long nl_restore_vm(void) { return kvm_restore_vm(vm, NULL, 100); }
static long nl_enable_vcpu_cap(void) { return kvm_enable_vcpu_cap(NULL); }
static long nl_get_debugregs(void) { return kvm_get_debugregs(NULL); }
static long nl_set_debugregs(void) { return kvm_set_debugregs(NULL); }
static long nl_get_nested_state(void) { return kvm_get_nested_state(NULL); }
static long nl_set_nested_state(void) { return kvm_set_nested_state(NULL); }
static long nl_get_one_reg(void) { return kvm_get_one_reg(NULL); }
static long nl_set_one_reg(void) { return kvm_set_one_reg(NULL); }
static long nl_get_sregs2(void) { return kvm_get_sregs2(NULL); }
static long nl_set_sregs2(void) { return kvm_set_sregs2(NULL); }
static long nl_get_xcrs(void) { return kvm_get_xcrs(NULL); }
static long nl_set_xcrs(void) { return kvm_set_xcrs(NULL); }
static long nl_get_xsave(void) { return kvm_get_xsave(NULL, sizeof(xsave_buf)); }
static long nl_set_xsave(void) { return kvm_set_xsave(NULL, sizeof(xsave_buf)); }
static long nl_save_vcpu_len(void) { return kvm_save_vcpu(blob, NULL); }
static long nl_save_vcpu_buf(void) { size_t n = sizeof(blob); return kvm_save_vcpu(NULL, &n); }
static long nl_restore_vcpu(void) { return kvm_restore_vcpu(NULL, 100); }
static long nl_msr_feature_index_list(void) { return kvm_get_msr_feature_index_list(NULL); }
static long nl_msr_features(void) { return kvm_get_msr_features(NULL); }
static long nl_stats_lookup(void) { return kvm_stats_lookup(vcpu_fd, NULL); }
static long nl_stats_read(void) { return kvm_stats_read(vm, 0, NULL, 1); }
static long nl_stats_info_flags(void) { return kvm_stats_info(vm, 0, NULL, &stat_exponent, &stat_size); }
static long nl_stats_info_exponent(void) { return kvm_stats_info(vm, 0, &stat_flags, NULL, &stat_size); }
static long nl_stats_info_size(void) { return kvm_stats_info(vcpu_fd, 0, &stat_flags, &stat_exponent, NULL); }

/* Per-vcpu ones run with the vcpu attached, so only the pointer is wrong. */
static const struct { const char *name; long (*call)(void); } NULL_CALLS[] = {
	{ "kvm_get_regs", nl_get_regs },
	{ "kvm_set_regs", nl_set_regs },
	{ "kvm_get_sregs", nl_get_sregs },
	{ "kvm_set_sregs", nl_set_sregs },
	{ "kvm_get_vcpu_events", nl_get_vcpu_events },
	{ "kvm_set_vcpu_events", nl_set_vcpu_events },
	{ "kvm_get_lapic", nl_get_lapic },
	{ "kvm_set_lapic", nl_set_lapic },
	{ "kvm_get_mp_state", nl_get_mp_state },
	{ "kvm_set_mp_state", nl_set_mp_state },
	{ "kvm_signal_msi", nl_signal_msi },
	{ "kvm_ioeventfd", nl_ioeventfd },
	{ "kvm_set_user_memory_region", nl_user_memory },
	{ "kvm_get_dirty_log", nl_get_dirty_log },
	{ "kvm_set_memory_alias", nl_set_memory_alias },
	{ "kvm_get_memory_alias", nl_get_memory_alias },
	{ "kvm_translate (physical_address)", nl_translate_phys },
	{ "kvm_translate (valid)", nl_translate_valid },
	{ "kvm_translate (writeable)", nl_translate_writeable },
	{ "kvm_translate (usermode)", nl_translate_usermode },
	{ "kvm_debug_guest", nl_debug_guest },
	{ "kvm_get_msrs", nl_get_msrs },
	{ "kvm_set_msrs", nl_set_msrs },
	{ "kvm_set_cpuid", nl_set_cpuid },
	{ "kvm_get_fpu", nl_get_fpu },
	{ "kvm_set_fpu", nl_set_fpu },
	{ "kvm_get_msr_index_list", nl_get_msr_index_list },
	{ "kvm_get_supported_cpuid", nl_get_supported_cpuid },
	{ "kvm_clear_dirty_log", nl_clear_dirty_log },
	{ "kvm_coalesced_mmio_next", nl_coalesced_mmio_next },
	{ "kvm_enable_cap", nl_enable_cap },
	{ "kvm_get_clock", nl_get_clock },
	{ "kvm_set_clock", nl_set_clock },
	{ "kvm_get_irqchip", nl_get_irqchip },
	{ "kvm_set_irqchip", nl_set_irqchip },
	{ "kvm_get_pit2", nl_get_pit2 },
	{ "kvm_set_pit2", nl_set_pit2 },
	{ "kvm_irq_line_status", nl_irq_line_status },
	{ "kvm_set_gsi_routing", nl_set_gsi_routing },
	{ "kvm_register_coalesced_mmio", nl_register_coalesced },
	{ "kvm_unregister_coalesced_mmio", nl_unregister_coalesced },
	{ "kvm_save_vm (len)", nl_save_vm_len },
	{ "kvm_save_vm (buf, with room)", nl_save_vm_buf },
	{ "kvm_restore_vm", nl_restore_vm },
	{ "kvm_enable_vcpu_cap", nl_enable_vcpu_cap },
	{ "kvm_get_debugregs", nl_get_debugregs },
	{ "kvm_set_debugregs", nl_set_debugregs },
	{ "kvm_get_nested_state", nl_get_nested_state },
	{ "kvm_set_nested_state", nl_set_nested_state },
	{ "kvm_get_one_reg", nl_get_one_reg },
	{ "kvm_set_one_reg", nl_set_one_reg },
	{ "kvm_get_sregs2", nl_get_sregs2 },
	{ "kvm_set_sregs2", nl_set_sregs2 },
	{ "kvm_get_xcrs", nl_get_xcrs },
	{ "kvm_set_xcrs", nl_set_xcrs },
	{ "kvm_get_xsave", nl_get_xsave },
	{ "kvm_set_xsave", nl_set_xsave },
	{ "kvm_save_vcpu (len)", nl_save_vcpu_len },
	{ "kvm_save_vcpu (buf, with room)", nl_save_vcpu_buf },
	{ "kvm_restore_vcpu", nl_restore_vcpu },
	{ "kvm_get_msr_feature_index_list", nl_msr_feature_index_list },
	{ "kvm_get_msr_features", nl_msr_features },
	{ "kvm_stats_lookup", nl_stats_lookup },
	{ "kvm_stats_read (values, n 1)", nl_stats_read },
	{ "kvm_stats_info (flags)", nl_stats_info_flags },
	{ "kvm_stats_info (exponent)", nl_stats_info_exponent },
	{ "kvm_stats_info (size)", nl_stats_info_size },
};

/* ---- functions naming a vcpu by fd ----------------------------------------------- */

static long vf_attach(int fd) { return kvm_attach_vcpu(fd); }
static long vf_kick(int fd) { return kvm_kick_vcpu(fd); }
/* The statistics calls take a VM fd or a vcpu fd: none of the bad fds is either. */
static long vf_stats_lookup(int fd) { return kvm_stats_lookup(fd, "exits"); }
static long vf_stats_name(int fd) { return P(kvm_stats_name(fd, 0)); }
static long vf_stats_read(int fd) { return kvm_stats_read(fd, -1, NULL, 0); }
static long vf_stats_info(int fd) { return kvm_stats_info(fd, 0, &stat_flags, &stat_exponent, &stat_size); }

static const struct { const char *name; long (*call)(int); } VCPU_FD_CALLS[] = {
	{ "kvm_attach_vcpu", vf_attach },
	{ "kvm_kick_vcpu", vf_kick },
};

/* ---- functions naming a VM or a vcpu by fd: every fd that is neither ------------- */

static const struct { const char *name; long (*call)(int); } OBJECT_FD_CALLS[] = {
	{ "kvm_stats_lookup", vf_stats_lookup },
	{ "kvm_stats_name", vf_stats_name },
	{ "kvm_stats_read", vf_stats_read },
	{ "kvm_stats_info", vf_stats_info },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- bad fds --------------------------------------------------------------------- */

struct badfd { const char *class; int fd; };
static struct badfd bad_fds[16];
static int n_bad_fds;

static void add_bad_fd(const char *class, int fd)
{
	CHECK(n_bad_fds < (int)N(bad_fds));
	bad_fds[n_bad_fds++] = (struct badfd){ class, fd };
}

/* Fds that are no libkvm object of any kind; the caller adds its own extras. */
static int raw_kvm, raw_vm, raw_vcpu;

static void make_bad_fds(void)
{
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(devnull >= 0);
	/* Closed, and high enough that no open() of this test gets the number again. */
	int closed = fcntl(devnull, F_DUPFD_CLOEXEC, 900);
	CHECK(closed >= 900);
	close(closed);
	/* A VM and a vcpu made with raw ioctls, not by libkvm, and /dev/kvm itself. */
	raw_kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	CHECK(raw_kvm >= 0);
	raw_vm = ioctl(raw_kvm, KVM_CREATE_VM, 0);
	CHECK(raw_vm >= 0);
	raw_vcpu = ioctl(raw_vm, KVM_CREATE_VCPU, 0);
	CHECK(raw_vcpu >= 0);
	add_bad_fd("closed fd", closed);
	add_bad_fd("/dev/null fd", devnull);
	add_bad_fd("eventfd", eventfd_fd);
	add_bad_fd("stdin", 0);
	add_bad_fd("fd -1", -1);
	add_bad_fd("fd INT_MIN", INT_MIN);
	add_bad_fd("fd INT_MAX", INT_MAX);
	add_bad_fd("/dev/kvm fd", raw_kvm);
	add_bad_fd("VM not made by libkvm", raw_vm);
	add_bad_fd("vcpu not made by libkvm", raw_vcpu);
}

/* ---- the classes ----------------------------------------------------------------- */

static void vm_calls_with(const char *class, int fd)
{
	for (unsigned i = 0; i < N(VM_CALLS); i++) {
		if (fd == -1 && VM_CALLS[i].minus1_ok)
			continue;
		errno = 0;
		long r = VM_CALLS[i].call(fd);
		expect(VM_CALLS[i].name, class, r, errno, EBADF);
	}
}

static void vcpu_fd_calls_with(const char *class, int fd, int want)
{
	for (unsigned i = 0; i < N(VCPU_FD_CALLS); i++) {
		errno = 0;
		long r = VCPU_FD_CALLS[i].call(fd);
		expect(VCPU_FD_CALLS[i].name, class, r, errno, want);
	}
}

static void object_fd_calls_with(const char *class, int fd)
{
	for (unsigned i = 0; i < N(OBJECT_FD_CALLS); i++) {
		errno = 0;
		long r = OBJECT_FD_CALLS[i].call(fd);
		expect(OBJECT_FD_CALLS[i].name, class, r, errno, EBADF);
	}
}

static void vcpu_calls_without_vcpu(const char *class)
{
	for (unsigned i = 0; i < N(VCPU_CALLS); i++) {
		errno = 0;
		long r = VCPU_CALLS[i].call();
		expect(VCPU_CALLS[i].name, class, r, errno, ESRCH);
	}
}

static void *thread_never_had_vcpu(void *arg)
{
	(void)arg;
	vcpu_calls_without_vcpu("thread that never had a vcpu");
	/* The vcpu is the main thread's. */
	BAD("vcpu owned by another thread", kvm_attach_vcpu(vcpu_fd), EBUSY);
	return NULL;
}

static void *thread_detached(void *arg)
{
	(void)arg;
	/* Take the vcpu from the (detached) main thread, give it up, and try again. */
	OK(kvm_attach_vcpu(vcpu_fd));
	BAD("thread already has a vcpu", kvm_create_vcpu(vm, 3), EBUSY);
	BAD("thread already has a vcpu", kvm_attach_vcpu(vcpu_fd), EBUSY);
	OK(kvm_detach_vcpu());
	vcpu_calls_without_vcpu("thread after kvm_detach_vcpu");
	return NULL;
}

static void run_in_thread(void *(*fn)(void *))
{
	on_thread(fn, NULL);
}

/* ---- value classes, one function per area ---------------------------------------- */

static void memory_regions(void)
{
	int user_slots = kvm_check_extension(vm, KVM_CAP_NR_MEMSLOTS) - 32;
	CHECK(user_slots > 8);
	const char *c = "unaligned address";
	BAD(c, kvm_set_memory_region(vm, 1, 0, 0x100001, 4096), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 1, 0, 0x100800, 4096), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 1, 0, 0x100fff, 4096), EINVAL);
	c = "unaligned size";
	BAD(c, kvm_set_memory_region(vm, 1, 0, 0x100000, 1), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 1, 0, 0x100000, 4097), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 1, 0, 0x100000, 0x1800), EINVAL);
	c = "range wrapping past 2^64";
	BAD(c, kvm_set_memory_region(vm, 1, 0, -4096ULL, 8192), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 1, 0, -4096ULL, 4096), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 1, 0, 1ULL << 63, 1ULL << 63), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 1, 0, 0x100000, -4096ULL), EINVAL);
	c = "address beyond what the guest can address";
	BAD(c, kvm_set_memory_region(vm, 1, 0, 1ULL << 62, 4096), EINVAL);
	c = "size too large";
	BAD(c, kvm_set_memory_region(vm, 1, 0, 0x100000, 1ULL << 52), ENOMEM);
	c = "unknown flags";
	BAD(c, kvm_set_memory_region(vm, 1, 0x80, 0x100000, 4096), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 1, 1u << 31, 0x100000, 4096), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 1, 4 /* KVM_MEM_GUEST_MEMFD */, 0x100000, 4096), EINVAL);
	c = "slot out of range";
	BAD(c, kvm_set_memory_region(vm, user_slots, 0, 0x100000, 4096), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 0xffff, 0, 0x100000, 4096), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 1u << 16, 0, 0x100000, 4096), EINVAL); /* address space 1 */
	BAD(c, kvm_set_memory_region(vm, UINT_MAX, 0, 0x100000, 4096), EINVAL);
	BAD(c, kvm_set_memory_region(vm, user_slots, 0, 0, 0), EINVAL);
	c = "size 0 (delete) of a slot that does not exist";
	BAD(c, kvm_set_memory_region(vm, 1, 0, 0, 0), ENOENT);
	BAD(c, kvm_set_user_memory_region(vm, 1, 0, 0, 0, NULL), ENOENT);
	/* Slot 0 is [0, 0x10000); slot 1 will be [0x20000, 0x21000). */
	OK(kvm_set_memory_region(vm, 1, 0, 0x20000, 0x1000));
	c = "overlapping another slot";
	BAD(c, kvm_set_memory_region(vm, 2, 0, 0x8000, 0x10000), EEXIST);   /* its end */
	BAD(c, kvm_set_memory_region(vm, 2, 0, 0xf000, 0x1000), EEXIST);    /* its last page */
	BAD(c, kvm_set_memory_region(vm, 2, 0, 0, 0x1000), EEXIST);         /* its first page */
	BAD(c, kvm_set_memory_region(vm, 2, 0, 0, 0x10000), EEXIST);        /* identical */
	BAD(c, kvm_set_memory_region(vm, 2, 0, 0, 0x100000), EEXIST);       /* containing two */
	BAD(c, kvm_set_memory_region(vm, 2, 0, 0x1f000, 0x2000), EEXIST);   /* slot 1's start */
	BAD(c, kvm_set_memory_region(vm, 1, 0, 0xf000, 0x1000), EEXIST);    /* moving onto 0 */
	BAD(c, kvm_set_user_memory_region(vm, 2, 0, 0x20000, 0x1000, user_mem), EEXIST);
	OK(kvm_set_memory_region(vm, 2, 0, 0x10000, 0x10000));               /* adjacent: fine */
	OK(kvm_set_memory_region(vm, 2, 0, 0, 0));
	c = "existing slot with another size";
	BAD(c, kvm_set_memory_region(vm, 1, 0, 0x20000, 0x2000), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 0, 0, 0, 0x8000), EINVAL);
	c = "existing slot with other memory";
	BAD(c, kvm_set_user_memory_region(vm, 1, 0, 0x20000, 0x1000, user_mem), EINVAL);
	OK(kvm_set_user_memory_region(vm, 2, 0, 0x40000, 0x2000, user_mem));
	BAD(c, kvm_set_user_memory_region(vm, 2, 0, 0x40000, 0x2000, user_mem + 4096), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 2, 0, 0x40000, 0x2000), EINVAL);
	c = "unaligned host address";
	BAD(c, kvm_set_user_memory_region(vm, 3, 0, 0x80000, 0x1000, user_mem + 1), EINVAL);
	BAD(c, kvm_set_user_memory_region(vm, 3, 0, 0x80000, 0x1000, user_mem + 2048), EINVAL);
	c = "host range wrapping past 2^64";
	BAD(c, kvm_set_user_memory_region(vm, 3, 0, 0x80000, 0x2000, (void *)-4096L), EINVAL);
	c = "host range outside user space (the kernel checks)";
	BAD(c, kvm_set_user_memory_region(vm, 3, 0, 0x80000, 0x1000, (void *)0xffff888000000000UL), EINVAL);
	BAD(c, kvm_set_user_memory_region(vm, 3, 0, 0x80000, 0x2000, (void *)0x7ffffffff000UL), EINVAL);
	c = "unaligned size";
	BAD(c, kvm_set_user_memory_region(vm, 3, 0, 0x80000, 0x1001, user_mem), EINVAL);
	c = "changing KVM_MEM_READONLY of a slot (the kernel refuses)";
	if (kvm_check_extension(vm, KVM_CAP_READONLY_MEM) > 0) {
		OK(kvm_set_memory_region(vm, 3, KVM_MEM_READONLY, 0x80000, 0x1000));
		BAD(c, kvm_set_memory_region(vm, 3, 0, 0x80000, 0x1000), EINVAL);
		OK(kvm_set_memory_region(vm, 3, 0, 0, 0));
	}
	OK(kvm_set_memory_region(vm, 2, 0, 0, 0));
	BAD("size 0 (delete) twice", kvm_set_memory_region(vm, 2, 0, 0, 0), ENOENT);
}

/* kvm_set_memory_region_fd's own arguments (the slot's are memory_regions'), and
 * kvm_create_guest_memfd's. */
static void fd_memory_regions(void)
{
	const int S = MAP_SHARED, P = MAP_PRIVATE;
#define FD_SLOT(fd, offset, size, map_flags) \
	kvm_set_memory_region_fd(vm, 5, 0, 0x100000, size, fd, offset, map_flags)
	const char *c = "not an open fd";
	BAD(c, FD_SLOT(-1, 0, 4096, S), EBADF);
	BAD(c, FD_SLOT(INT_MIN, 0, 4096, S), EBADF);
	BAD(c, FD_SLOT(INT_MAX, 0, 4096, P), EBADF);
	BAD(c, FD_SLOT(bad_fds[0].fd /* closed */, 0, 4096, S), EBADF);
	c = "map_flags not MAP_SHARED or MAP_PRIVATE (| MAP_POPULATE)";
	BAD(c, FD_SLOT(mem_fd, 0, 4096, 0), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0, 4096, S | P), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0, 4096, MAP_POPULATE), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0, 4096, S | MAP_FIXED), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0, 4096, P | MAP_ANONYMOUS), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0, 4096, S | MAP_NORESERVE), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0, 4096, -1), EINVAL);
	c = "unaligned offset";
	BAD(c, FD_SLOT(mem_fd, 1, 4096, S), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0x800, 4096, P), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0xfff, 4096, S), EINVAL);
	c = "range past the file's end";
	BAD(c, FD_SLOT(mem_fd, 0x10000, 4096, S), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0xf000, 0x2000, P), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0, 0x11000, S), EINVAL);
	c = "offset + size wrapping";
	BAD(c, FD_SLOT(mem_fd, -4096ULL, 8192, S), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 1ULL << 63, 4096, P), EINVAL);
	c = "fd that cannot be mapped";
	BAD(c, FD_SLOT(eventfd_fd, 0, 4096, S), ENODEV);
	BAD(c, FD_SLOT(raw_kvm, 0, 4096, P), ENODEV);
	BAD(c, FD_SLOT(raw_vm, 0, 4096, S), ENODEV);
	c = "fd not open for the access";
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", mem_fd);
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(ro >= 0);
	BAD(c, FD_SLOT(ro, 0, 4096, S), EACCES);
	OK(FD_SLOT(ro, 0, 4096, P)); /* private: reading is enough */
	OK(kvm_set_memory_region(vm, 5, 0, 0, 0));
	close(ro);
	c = "other memory for an existing slot";
	BAD(c, kvm_set_memory_region_fd(vm, 0, 0, 0, 0x10000, mem_fd, 0, S), EINVAL);
	OK(FD_SLOT(mem_fd, 0, 0x2000, S));
	BAD(c, FD_SLOT(mem_fd, 0x1000, 0x2000, S), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0, 0x2000, P), EINVAL);
	BAD(c, FD_SLOT(mem_fd, 0, 0x1000, S), EINVAL);
	BAD(c, kvm_set_memory_region(vm, 5, 0, 0x100000, 0x2000), EINVAL);
	BAD("overlapping range", kvm_set_memory_region_fd(vm, 6, 0, 0x101000, 0x1000, mem_fd, 0, S),
	    EEXIST);
	OK(kvm_set_memory_region(vm, 5, 0, 0, 0));
	BAD("size 0 (delete) twice", FD_SLOT(-1, 0, 0, 0), ENOENT);
#undef FD_SLOT
	/* guest_memfd: what follows from what the VM reports. */
	if (kvm_check_extension(vm, LIBKVM_CAP_GUEST_MEMFD) == 0) {
		c = "guest_memfd without KVM_CAP_GUEST_MEMFD";
		BAD(c, kvm_create_guest_memfd(vm, 0x10000, 0), EOPNOTSUPP);
		BAD(c, kvm_create_guest_memfd(vm, 0, LIBKVM_GUEST_MEMFD_MMAP), EOPNOTSUPP);
	} else {
		uint64_t flags = (uint64_t)kvm_check_extension(vm, LIBKVM_CAP_GUEST_MEMFD_FLAGS);
		c = "guest_memfd flag the VM does not report";
		BAD(c, kvm_create_guest_memfd(vm, 0x10000, 1ULL << 63), EINVAL);
		BAD(c, kvm_create_guest_memfd(vm, 0x10000, ~flags), EINVAL);
		c = "guest_memfd size 0 or unaligned";
		BAD(c, kvm_create_guest_memfd(vm, 0, 0), EINVAL);
		BAD(c, kvm_create_guest_memfd(vm, 0x1001, 0), EINVAL);
	}
}

static void guest_memory(void)
{
	/* Slot 0 [0, 0x10000) and slot 1 [0x20000, 0x21000). */
	const char *c = "range outside every slot";
	BAD(c, P(kvm_guest_memory(vm, 0x10000, 1)), EFAULT);             /* slot 0's end */
	BAD(c, P(kvm_guest_memory(vm, 0x1ffff, 1)), EFAULT);
	BAD(c, P(kvm_guest_memory(vm, 0x21000, 1)), EFAULT);             /* slot 1's end */
	BAD(c, P(kvm_guest_memory(vm, -1ULL, 1)), EFAULT);               /* the last byte */
	BAD(c, P(kvm_guest_memory(vm, 1ULL << 63, 4096)), EFAULT);
	c = "range running one past a slot";
	BAD(c, P(kvm_guest_memory(vm, 0xffff, 2)), EFAULT);
	BAD(c, P(kvm_guest_memory(vm, 0, 0x10001)), EFAULT);
	BAD(c, P(kvm_guest_memory(vm, 0x20fff, 2)), EFAULT);
	c = "range spanning two slots";
	BAD(c, P(kvm_guest_memory(vm, 0xf000, 0x12000)), EFAULT);
	c = "length 0";
	BAD(c, P(kvm_guest_memory(vm, 0, 0)), EFAULT);
	BAD(c, P(kvm_guest_memory(vm, 0x20000, 0)), EFAULT);
	c = "range wrapping past 2^64";
	BAD(c, P(kvm_guest_memory(vm, 0x1000, -1ULL)), EFAULT);
	BAD(c, P(kvm_guest_memory(vm, 0x1000, -0x1000ULL)), EFAULT);
	BAD(c, P(kvm_guest_memory(vm, -1ULL, 2)), EFAULT);
	BAD(c, P(kvm_guest_memory(vm, -1ULL, -1ULL)), EFAULT);
	/* The edges that are inside. */
	CHECK(kvm_guest_memory(vm, 0xffff, 1) != NULL);
	CHECK(kvm_guest_memory(vm, 0, 0x10000) != NULL);
	CHECK(kvm_guest_memory(vm, 0x20fff, 1) != NULL);
}

static void vcpus(void)
{
	int max_id = kvm_check_extension(vm, KVM_CAP_MAX_VCPU_ID);
	if (max_id <= 0)
		max_id = kvm_check_extension(vm, KVM_CAP_MAX_VCPUS);
	CHECK(max_id > 0);
	const char *c = "vcpu id out of range";
	BAD(c, kvm_create_vcpu(vm, max_id), EINVAL);
	BAD(c, kvm_create_vcpu(vm, 1u << 31), EINVAL);
	BAD(c, kvm_create_vcpu(vm, UINT_MAX), EINVAL);
	c = "vcpu id in use";
	BAD(c, kvm_create_vcpu(vm, 0), EEXIST);
	c = "a VM fd where a vcpu fd is expected";
	vcpu_fd_calls_with(c, vm, EBADF);
	c = "destroying a VM whose vcpu is attached";
	OK(kvm_attach_vcpu(vcpu_fd));
	BAD(c, kvm_destroy_vm(vm), EBUSY);
	BAD("thread already has a vcpu", kvm_create_vcpu(vm, 3), EBUSY);
	BAD("thread already has a vcpu", kvm_attach_vcpu(vcpu_fd), EBUSY);
	OK(kvm_detach_vcpu());
	BAD("the dirty ring once the VM has a vcpu", kvm_enable_dirty_ring(vm, 65536), EBUSY);
	/* The ring's sizes, on a VM without vcpus. */
	int fresh = vm_with_memory(0x1000);
	if (kvm_check_extension(fresh, KVM_CAP_DIRTY_LOG_RING) > 0) {
		c = "dirty ring size not a power of two";
		BAD(c, kvm_enable_dirty_ring(fresh, 3 * 4096), EINVAL);
		BAD(c, kvm_enable_dirty_ring(fresh, UINT32_MAX), EINVAL);
		c = "dirty ring size 0 or below a page";
		BAD(c, kvm_enable_dirty_ring(fresh, 0), EINVAL);
		BAD(c, kvm_enable_dirty_ring(fresh, 1), EINVAL);
		BAD(c, kvm_enable_dirty_ring(fresh, 2048), EINVAL);
		c = "dirty ring size above the kernel's maximum";
		BAD(c, kvm_enable_dirty_ring(fresh, 1u << 31), EINVAL);
		OK(kvm_enable_dirty_ring(fresh, 65536));
		BAD("the dirty ring twice", kvm_enable_dirty_ring(fresh, 65536), EBUSY);
	} else {
		BAD("no dirty ring on this host", kvm_enable_dirty_ring(fresh, 65536), EOPNOTSUPP);
	}
	OK(kvm_destroy_vm(fresh));
}

static void vcpu_values(void)
{
	OK(kvm_attach_vcpu(vcpu_fd));
	for (unsigned i = 0; i < N(NULL_CALLS); i++) {
		errno = 0;
		long r = NULL_CALLS[i].call();
		expect(NULL_CALLS[i].name, "NULL pointer", r, errno, EFAULT);
	}
	const char *c = "values the kernel refuses";
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	s.efer = 0x500;   /* long mode active without paging or PAE */
	BAD(c, kvm_set_sregs(&s), EINVAL);
	OK(kvm_get_sregs(&s));
	s.cr0 = 0x80000000; /* paging without protection */
	BAD(c, kvm_set_sregs(&s), EINVAL);
	OK(kvm_get_sregs(&s));
	s.apic_base = 1;   /* reserved bits */
	BAD(c, kvm_set_sregs(&s), EINVAL);
	struct kvm_mp_state mp = { .mp_state = 99 };
	BAD(c, kvm_set_mp_state(&mp), EINVAL);
	struct kvm_vcpu_events ev;
	OK(kvm_get_vcpu_events(&ev));
	ev.flags = 0x80000000;
	BAD(c, kvm_set_vcpu_events(&ev), EINVAL);

	c = "KVM_RUN through the escape hatch";
	BAD(c, kvm_vcpu_ioctl(KVM_RUN, NULL), EINVAL);
	/* Wild pointers are fine where the kernel is the one to dereference them. */
	void *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(none != MAP_FAILED);
	c = "wild pointer the kernel dereferences";
	BAD(c, kvm_vcpu_ioctl(KVM_GET_REGS, none), EFAULT);
	BAD(c, kvm_vcpu_ioctl(KVM_SET_REGS, none), EFAULT);
	BAD(c, kvm_vcpu_ioctl(KVM_GET_SREGS, (void *)8), EFAULT);
	BAD(c, kvm_vcpu_ioctl(KVM_SET_SREGS, (void *)-4096L), EFAULT);
	BAD(c, kvm_vcpu_ioctl(KVM_GET_FPU, none), EFAULT);
	BAD(c, kvm_vm_ioctl(vm, KVM_GET_CLOCK, none), EFAULT);
	BAD(c, kvm_vm_ioctl(vm, KVM_SET_CLOCK, (void *)8), EFAULT);
	c = "unknown ioctl";
	BAD(c, kvm_vcpu_ioctl(_IO(KVMIO, 0xff), NULL), EINVAL);
	BAD(c, kvm_vm_ioctl(vm, _IO(KVMIO, 0xff), NULL), ENOTTY);
	BAD(c, kvm_vm_ioctl(vm, 0x1234, NULL), ENOTTY);
	c = "an ioctl libkvm must see, through the escape hatch";
	BAD(c, kvm_vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, none), EINVAL);
	BAD(c, kvm_vm_ioctl(vm, KVM_CREATE_VCPU, (void *)3), EINVAL);
	BAD(c, kvm_vm_ioctl(vm, KVM_CREATE_IRQCHIP, NULL), EINVAL);
	BAD(c, kvm_vm_ioctl(vm, _IOW(KVMIO, 0x49, char[32 + 8 + 8 + 14 * 8]) /* REGION2 */, none), EINVAL);
	struct kvm_enable_cap tracked = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { 24 } };
	BAD(c, kvm_vm_ioctl(vm, KVM_ENABLE_CAP, &tracked), EINVAL);
	tracked = (struct kvm_enable_cap){ .cap = KVM_CAP_X2APIC_API };
	BAD(c, kvm_vm_ioctl(vm, KVM_ENABLE_CAP, &tracked), EINVAL);
	tracked = (struct kvm_enable_cap){ .cap = KVM_CAP_DIRTY_LOG_RING, .args = { 65536 } };
	BAD(c, kvm_vm_ioctl(vm, KVM_ENABLE_CAP, &tracked), EINVAL);
	BAD(c, kvm_enable_cap(vm, &tracked), EINVAL);
	struct kvm_interrupt vector = { .irq = 0x20 };
	BAD(c, kvm_vcpu_ioctl(KVM_INTERRUPT, &vector), EINVAL);
	BAD("NULL where the escape hatch reads the argument", kvm_vm_ioctl(vm, KVM_ENABLE_CAP, NULL), EFAULT);

	munmap(none, 4096);
	OK(kvm_detach_vcpu());
}

static void system_values(void)
{
	const char *c = "buffer too small (the needed count is written back)";
	msr_list.h.nmsrs = 0;
	BAD(c, kvm_get_msr_index_list(&msr_list.h), E2BIG);
	uint32_t needed = msr_list.h.nmsrs;
	CHECK(needed > 1);
	msr_list.h.nmsrs = 1;
	BAD(c, kvm_get_msr_index_list(&msr_list.h), E2BIG);
	CHECK_EQ(msr_list.h.nmsrs, needed);
	msr_list.h.nmsrs = needed;
	OK(kvm_get_msr_index_list(&msr_list.h));
	cpuid.h.nent = 0;
	BAD(c, kvm_get_supported_cpuid(&cpuid.h), E2BIG);
	needed = cpuid.h.nent;
	CHECK(needed > 1);
	cpuid.h.nent = 1;
	BAD(c, kvm_get_supported_cpuid(&cpuid.h), E2BIG);
	CHECK_EQ(cpuid.h.nent, needed);
	cpuid.h.nent = 256;
	OK(kvm_get_supported_cpuid(&cpuid.h));

	c = "a signal that cannot be the kick signal";
	static const int bad_signals[] = { 0, -1, SIGKILL, SIGSTOP, SIGSEGV, SIGINT, SIGALRM,
					   32, 65, INT_MAX };
	for (unsigned i = 0; i < N(bad_signals); i++)
		BAD(c, kvm_set_kick_signal(bad_signals[i]), EINVAL);
}

/* After the first vcpu exists. */
static void kick_values(void)
{
	BAD("kick signal chosen after the first vcpu", kvm_set_kick_signal(SIGUSR2), EBUSY);
	BAD("kick signal chosen after the first vcpu", kvm_set_kick_signal(SIGRTMIN), EBUSY);
}

/* The statistics of the VM and of its vcpu: indexes, sizes and names. */
static void stats_values(void)
{
	if (kvm_check_extension(-1, KVM_CAP_BINARY_STATS_FD) <= 0) {
		BAD("no binary statistics", kvm_stats_lookup(vm, "remote_tlb_flush"), EOPNOTSUPP);
		return;
	}
	uint64_t v[8];
	int fds[] = { vm, vcpu_fd };
	for (unsigned k = 0; k < N(fds); k++) {
		int fd = fds[k], last = 0;
		while (kvm_stats_name(fd, last))
			last++;
		const char *c = "statistic index past the last";
		BAD(c, P(kvm_stats_name(fd, last)), ERANGE);
		BAD(c, kvm_stats_read(fd, last, v, 8), ERANGE);
		BAD(c, kvm_stats_info(fd, last, &stat_flags, &stat_exponent, &stat_size), ERANGE);
		BAD(c, kvm_stats_read(fd, INT_MAX, v, 8), ERANGE);
		c = "negative statistic index";
		BAD(c, P(kvm_stats_name(fd, -1)), ERANGE);
		BAD(c, kvm_stats_info(fd, -1, &stat_flags, &stat_exponent, &stat_size), ERANGE);
		BAD(c, kvm_stats_read(fd, -2, v, 8), ERANGE);
		BAD(c, kvm_stats_read(fd, INT_MIN, v, 8), ERANGE);
		c = "array smaller than the values";
		BAD(c, kvm_stats_read(fd, -1, v, 0), E2BIG);
		BAD(c, kvm_stats_read(fd, 0, v, 0), E2BIG);
		c = "NULL array, n > 0";
		BAD(c, kvm_stats_read(fd, -1, NULL, 1), EFAULT);
		c = "no statistic of that name";
		BAD(c, kvm_stats_lookup(fd, ""), ENOENT);
		BAD(c, kvm_stats_lookup(fd, "no_such_statistic"), ENOENT);
	}
	/* Each kind has its own names. */
	BAD("a vcpu statistic on a VM fd", kvm_stats_lookup(vm, "exits"), ENOENT);
	BAD("a VM statistic on a vcpu fd", kvm_stats_lookup(vcpu_fd, "remote_tlb_flush"), ENOENT);
}

/* Arnd's list on the calling thread's vcpu (attached), and the memory aliases. */
static void arnds_list_values(void)
{
	OK(kvm_attach_vcpu(vcpu_fd));
	const char *c = "interrupt vector out of range";
	BAD(c, kvm_interrupt(256), EINVAL);
	BAD(c, kvm_interrupt(UINT_MAX), EINVAL);
	c = "unknown guest-debug control bits";
	struct kvm_guest_debug dbg = { .control = KVM_GUESTDBG_ENABLE | (1u << 30) };
	BAD(c, kvm_debug_guest(&dbg), EINVAL);
	dbg.control = KVM_GUESTDBG_ENABLE | 4;
	BAD(c, kvm_debug_guest(&dbg), EINVAL);
	dbg.control = UINT_MAX;
	BAD(c, kvm_debug_guest(&dbg), EINVAL);
	c = "count above the kernel's limit";
	struct { struct kvm_msrs h; struct kvm_msr_entry e[1]; } few = { .h.nmsrs = 100000 };
	BAD(c, kvm_get_msrs(&few.h), E2BIG);
	BAD(c, kvm_set_msrs(&few.h), E2BIG);
	few.h.nmsrs = UINT_MAX;
	BAD(c, kvm_get_msrs(&few.h), E2BIG);
	struct { struct kvm_cpuid2 h; struct kvm_cpuid_entry2 e[1]; } big = { .h.nent = 257 };
	BAD(c, kvm_set_cpuid(&big.h), E2BIG);
	big.h.nent = UINT_MAX;
	BAD(c, kvm_set_cpuid(&big.h), E2BIG);
	c = "refused through the escape hatch: libkvm owns the signal mask";
	BAD(c, kvm_vcpu_ioctl(KVM_SET_SIGNAL_MASK, NULL), EINVAL);
	c = "MP state other than runnable without an in-kernel irqchip";
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_HALTED };
	BAD(c, kvm_set_mp_state(&mp), EINVAL);
	c = "local APIC without an in-kernel irqchip";
	BAD(c, kvm_get_lapic(&lapic), EINVAL);
	BAD(c, kvm_set_lapic(&lapic), EINVAL);
	BAD("irqchip after the first vcpu", kvm_create_irqchip(vm), EINVAL);
	OK(kvm_detach_vcpu());

	/* Dirty log: slot 0 does not log; slot 6 does. */
	c = "dirty log of a slot that does not exist";
	BAD(c, kvm_get_dirty_log(vm, 6, bitmap), ENOENT);
	BAD(c, kvm_get_dirty_log(vm, 0x7fffffff, bitmap), ENOENT);
	BAD(c, kvm_get_dirty_log(vm, UINT_MAX, bitmap), ENOENT);
	c = "dirty log of a slot that does not log";
	BAD(c, kvm_get_dirty_log(vm, 0, bitmap), EINVAL);
	OK(kvm_set_memory_region(vm, 6, KVM_MEM_LOG_DIRTY_PAGES, 0x300000, 0x40000));
	void *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(none != MAP_FAILED);
	BAD("wild pointer the kernel dereferences", kvm_get_dirty_log(vm, 6, none), EFAULT);
	munmap(none, 4096);
	OK(kvm_get_dirty_log(vm, 6, bitmap));

	/* Aliases onto slot 6 [0x300000, 0x340000). */
	struct kvm_memory_alias a = { .slot = 1, .guest_phys_addr = 0x400000,
		.memory_size = 0x2000, .target_phys_addr = 0x300000 };
	struct kvm_memory_alias b;
	c = "alias slot out of range";
	b = a; b.slot = 32;
	BAD(c, kvm_set_memory_alias(vm, &b), EINVAL);
	b.slot = UINT_MAX;
	BAD(c, kvm_set_memory_alias(vm, &b), EINVAL);
	BAD(c, kvm_get_memory_alias(vm, &b), EINVAL);
	c = "unknown alias flags";
	b = a; b.flags = 1;
	BAD(c, kvm_set_memory_alias(vm, &b), EINVAL);
	c = "unaligned alias";
	b = a; b.guest_phys_addr += 1;
	BAD(c, kvm_set_memory_alias(vm, &b), EINVAL);
	b = a; b.target_phys_addr += 0x800;
	BAD(c, kvm_set_memory_alias(vm, &b), EINVAL);
	b = a; b.memory_size = 0x1001;
	BAD(c, kvm_set_memory_alias(vm, &b), EINVAL);
	c = "alias range wrapping past 2^64";
	b = a; b.guest_phys_addr = -0x1000ULL;
	BAD(c, kvm_set_memory_alias(vm, &b), EINVAL);
	b = a; b.target_phys_addr = -0x1000ULL;
	BAD(c, kvm_set_memory_alias(vm, &b), EINVAL);
	c = "alias target not inside one memory slot";
	b = a; b.target_phys_addr = 0x33f000;           /* runs one page past slot 6 */
	BAD(c, kvm_set_memory_alias(vm, &b), EFAULT);
	b = a; b.target_phys_addr = 0x900000;           /* no slot */
	BAD(c, kvm_set_memory_alias(vm, &b), EFAULT);
	b = a; b.target_phys_addr = 0xf000;             /* spans slot 0 and nothing */
	BAD(c, kvm_set_memory_alias(vm, &b), EFAULT);
	c = "alias overlapping a memory slot";
	b = a; b.guest_phys_addr = 0x33f000;
	BAD(c, kvm_set_memory_alias(vm, &b), EEXIST);
	b = a; b.guest_phys_addr = 0;
	BAD(c, kvm_set_memory_alias(vm, &b), EEXIST);
	OK(kvm_set_memory_alias(vm, &a));
	c = "alias overlapping another alias";
	b = a; b.slot = 2; b.guest_phys_addr = 0x401000;
	BAD(c, kvm_set_memory_alias(vm, &b), EEXIST);
	c = "memory slot overlapping an alias";
	BAD(c, kvm_set_memory_region(vm, 7, 0, 0x401000, 0x1000), EEXIST);
	c = "deleting or moving a slot an alias points into";
	BAD(c, kvm_set_memory_region(vm, 6, 0, 0, 0), EBUSY);
	BAD(c, kvm_set_memory_region(vm, 6, KVM_MEM_LOG_DIRTY_PAGES, 0x500000, 0x40000), EBUSY);
	c = "alias that does not exist";
	b = a; b.slot = 3; b.memory_size = 0;
	BAD(c, kvm_set_memory_alias(vm, &b), ENOENT);
	b.slot = 3;
	BAD(c, kvm_get_memory_alias(vm, &b), ENOENT);
	a.memory_size = 0;
	OK(kvm_set_memory_alias(vm, &a));
	BAD(c, kvm_get_memory_alias(vm, &a), ENOENT);
	OK(kvm_set_memory_region(vm, 6, 0, 0, 0));
}

/* QEMU's calls (issue 9) and the snapshots, whose blobs are hostile input. */
static void qemu_calls_values(void)
{
	OK(kvm_attach_vcpu(vcpu_fd));
	const char *c = "buffer too small (the needed size is written back)";
	size_t need = 0;
	BAD(c, kvm_save_vcpu(NULL, &need), E2BIG);
	CHECK(need > 64);
	size_t n = 1;
	BAD(c, kvm_save_vcpu(blob, &n), E2BIG);
	CHECK_EQ(n, need);
	n = need - 1;
	BAD(c, kvm_save_vcpu(blob, &n), E2BIG);
	n = sizeof(blob);
	OK(kvm_save_vcpu(blob, &n));
	CHECK_EQ(n, need);
	blob_len = n;
	vm_blob_len = sizeof(vm_blob); /* the VM has more slots now: a new snapshot */
	OK(kvm_save_vm(vm, vm_blob, &vm_blob_len));
	n = 0;
	BAD(c, kvm_save_vm(vm, NULL, &n), E2BIG);
	CHECK_EQ(n, vm_blob_len);
	n = 1;
	BAD(c, kvm_save_vm(vm, vm_blob, &n), E2BIG);
	int xs = OK(kvm_get_xsave_size());
	BAD(c, kvm_get_xsave(xsave, 0), E2BIG);
	BAD(c, kvm_get_xsave(xsave, (size_t)xs - 1), E2BIG);
	BAD(c, kvm_set_xsave(xsave, 100), E2BIG);
	struct { struct kvm_msr_list h; uint32_t i[256]; } feat = { .h.nmsrs = 0 };
	errno = 0;
	if (kvm_get_msr_feature_index_list(&feat.h) == -1) {
		expect("kvm_get_msr_feature_index_list", c, -1, errno, E2BIG);
		CHECK(feat.h.nmsrs > 0 && feat.h.nmsrs <= 256);
	}
	if (kvm_check_extension(vm, KVM_CAP_NESTED_STATE) > 0) {
		struct kvm_nested_state small = { .size = sizeof(small) };
		BAD(c, kvm_get_nested_state(&small), E2BIG);
	} else {
		c = "nested state on a kernel without KVM_CAP_NESTED_STATE";
		BAD(c, kvm_get_nested_state(&nested.h), EOPNOTSUPP);
		BAD(c, kvm_set_nested_state(&nested.h), EOPNOTSUPP);
	}

	c = "truncated snapshot";
	BAD(c, kvm_restore_vcpu(blob, blob_len - 1), ENODATA);
	BAD(c, kvm_restore_vcpu(blob, 8), ENODATA);
	BAD(c, kvm_restore_vcpu(blob, 0), ENODATA);
	BAD(c, kvm_restore_vm(vm, vm_blob, vm_blob_len - 1), ENODATA);
	BAD(c, kvm_restore_vm(vm, vm_blob, 0), ENODATA);
	static char bad[1 << 16];
	c = "snapshot whose header claims a longer body (up to 2^64 - 1 bytes)";
	static const uint64_t claims[] = { UINT64_MAX, UINT64_MAX - 31, 1ULL << 63, 1ULL << 32 };
	for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
		memcpy(bad, blob, blob_len);
		memcpy(bad + 16, &claims[i], 8); /* header: body length at byte 16 */
		BAD(c, kvm_restore_vcpu(bad, blob_len), ENODATA);
		memcpy(bad, vm_blob, vm_blob_len);
		memcpy(bad + 16, &claims[i], 8);
		BAD(c, kvm_restore_vm(vm, bad, vm_blob_len), ENODATA);
	}
	c = "corrupt snapshot";
	for (size_t at = 0; at < blob_len; at += blob_len / 7 + 1) {
		memcpy(bad, blob, blob_len);
		bad[at] ^= 0x10;
		BAD(c, kvm_restore_vcpu(bad, blob_len), EBADMSG);
	}
	memset(bad, 0x41, 4096);
	BAD(c, kvm_restore_vcpu(bad, 4096), EBADMSG);
	BAD(c, kvm_restore_vm(vm, bad, 4096), EBADMSG);
	memcpy(bad, vm_blob, vm_blob_len);
	bad[vm_blob_len - 1] ^= 1;
	BAD(c, kvm_restore_vm(vm, bad, vm_blob_len), EBADMSG);
	c = "a VM snapshot where a vcpu's is expected, and the reverse";
	BAD(c, kvm_restore_vcpu(vm_blob, vm_blob_len), EINVAL);
	BAD(c, kvm_restore_vm(vm, blob, blob_len), EINVAL);
	OK(kvm_restore_vcpu(blob, blob_len)); /* the real one still fits */

	c = "values the kernel refuses";
	struct kvm_debugregs dr;
	OK(kvm_get_debugregs(&dr));
	dr.flags = 1;
	BAD(c, kvm_set_debugregs(&dr), EINVAL);
	dr.flags = 0;
	dr.dr7 = 1ULL << 40;
	BAD(c, kvm_set_debugregs(&dr), EINVAL);
	OK(kvm_get_debugregs(&dr));
	dr.dr6 = 1ULL << 40;
	BAD(c, kvm_set_debugregs(&dr), EINVAL);
	struct kvm_xcrs x;
	OK(kvm_get_xcrs(&x));
	x.xcrs[0].value = 0; /* x87 is always on */
	BAD(c, kvm_set_xcrs(&x), EINVAL);
	OK(kvm_get_xcrs(&x));
	x.xcrs[0].value = 1ULL << 63;
	BAD(c, kvm_set_xcrs(&x), EINVAL);
	struct kvm_sregs2 s2;
	OK(kvm_get_sregs2(&s2));
	s2.flags = 0x80;
	BAD(c, kvm_set_sregs2(&s2), EINVAL);
	int khz = OK(kvm_get_tsc_khz());
	BAD(c, kvm_set_tsc_khz(1), EINVAL);
	CHECK_EQ(kvm_get_tsc_khz(), khz); /* a refused frequency changes nothing */
	c = "TSC frequency kvm_get_tsc_khz could not return";
	BAD(c, kvm_set_tsc_khz(0x80000000u), EINVAL);
	BAD(c, kvm_set_tsc_khz(UINT_MAX), EINVAL);
	CHECK_EQ(kvm_get_tsc_khz(), khz);
	c = "values the kernel refuses";
	BAD("kvmclock not enabled by the guest", kvm_kvmclock_ctrl(), EINVAL);
	c = "unknown register id";
	uint64_t val;
	struct kvm_one_reg r = { .id = 0x1234, .addr = (uintptr_t)&val };
	BAD(c, kvm_get_one_reg(&r), EINVAL);
	BAD(c, kvm_set_one_reg(&r), EINVAL);
	r.id = ~0ULL;
	BAD(c, kvm_get_one_reg(&r), EINVAL);
	c = "unknown capability or flags";
	struct kvm_enable_cap ec = { .cap = 0x7fffffff };
	BAD(c, kvm_enable_vcpu_cap(&ec), EINVAL);
	BAD(c, kvm_enable_cap(vm, &ec), EINVAL);
	ec.cap = KVM_CAP_X86_DISABLE_EXITS;
	ec.flags = 1;
	BAD(c, kvm_enable_cap(vm, &ec), EINVAL);
	OK(kvm_detach_vcpu());

	struct kvm_clock_data cd;
	OK(kvm_get_clock(vm, &cd));
	cd.flags = 0x80;
	BAD("unknown flags", kvm_set_clock(vm, &cd), EINVAL);
	c = "no in-kernel irqchip";
	BAD(c, kvm_get_irqchip(vm, &irqchip), ENXIO);
	BAD(c, kvm_set_irqchip(vm, &irqchip), ENXIO);
	BAD(c, kvm_get_pit2(vm, &pit), ENXIO);
	BAD(c, kvm_set_pit2(vm, &pit), ENXIO);
	BAD(c, kvm_irq_line_status(vm, &irq_level), ENXIO);
	BAD(c, kvm_set_gsi_routing(vm, &routing), EINVAL);
	c = "unknown coalesced zone flags";
	struct kvm_coalesced_mmio_zone z = zone;
	z.pio = 5;
	BAD(c, kvm_register_coalesced_mmio(vm, &z), EINVAL);
	/* The kernel's MMIO bus holds 1000 devices: zones up to that, then one more. */
	struct kvm_coalesced_mmio_zone many = { .addr = 0x40000000, .size = 0x1000 };
	int zones = 0;
	while (zones < 2000 && kvm_register_coalesced_mmio(vm, &many) == 0) {
		zones++;
		many.addr += 0x1000;
	}
	CHECK(zones > 0 && zones < 2000);
	BAD("too many coalesced zones", kvm_register_coalesced_mmio(vm, &many), ENOSPC);
	/* Unregistering removes the zones that contain the range given: one by one. */
	struct kvm_coalesced_mmio_zone one = { .addr = 0x40000000, .size = 0x1000 };
	OK(kvm_unregister_coalesced_mmio(vm, &one));
	OK(kvm_register_coalesced_mmio(vm, &many)); /* room again */
	for (int i = 0; i <= zones; i++, one.addr += 0x1000)
		OK(kvm_unregister_coalesced_mmio(vm, &one));

	/* Manual dirty-log clearing: slot 6 logs, slot 0 does not. */
	OK(kvm_set_memory_region(vm, 6, KVM_MEM_LOG_DIRTY_PAGES, 0x300000, 0x100000));
	struct kvm_clear_dirty_log cl = { .slot = 6, .num_pages = 64, .dirty_bitmap = clear_bits };
	OK(kvm_clear_dirty_log(vm, &cl));
	c = "clearing the log of a slot that does not exist or does not log";
	cl.slot = 9;
	BAD(c, kvm_clear_dirty_log(vm, &cl), ENOENT);
	cl.slot = 0;
	BAD(c, kvm_clear_dirty_log(vm, &cl), ENOENT);
	cl.slot = UINT_MAX;
	BAD(c, kvm_clear_dirty_log(vm, &cl), ENOENT);
	cl.slot = 6;
	c = "page range not aligned or outside the slot";
	cl.first_page = 3;
	BAD(c, kvm_clear_dirty_log(vm, &cl), EINVAL);
	cl.first_page = 0;
	cl.num_pages = 1000;
	BAD(c, kvm_clear_dirty_log(vm, &cl), EINVAL);
	cl.first_page = 256;
	cl.num_pages = 64;
	BAD(c, kvm_clear_dirty_log(vm, &cl), EINVAL);
	cl.first_page = -64ULL;
	BAD(c, kvm_clear_dirty_log(vm, &cl), EINVAL);
	cl.first_page = 0;
	cl.dirty_bitmap = (void *)8;
	BAD("wild pointer the kernel dereferences", kvm_clear_dirty_log(vm, &cl), EFAULT);
	OK(kvm_set_memory_region(vm, 6, 0, 0, 0));

	c = "count above the kernel's limit";
	struct { struct kvm_msrs h; struct kvm_msr_entry e[1]; } fm = { .h.nmsrs = 100000 };
	BAD(c, kvm_get_msr_features(&fm.h), E2BIG);
	BAD("KVM_CREATE_VM through the escape hatch", kvm_system_ioctl(KVM_CREATE_VM, NULL), EINVAL);
	BAD("wild pointer the kernel dereferences", kvm_system_ioctl(KVM_GET_MSR_INDEX_LIST, (void *)8), EFAULT);
}

/* The in-kernel irqchip calls, on a VM of their own. */
static void irqchip_values(void)
{
	int v = OK(kvm_create_vm());
	const char *c = "no in-kernel irqchip";
	BAD(c, kvm_irq_line(v, 4, 1), ENXIO);
	BAD(c, kvm_signal_msi(v, &msi), EINVAL);
	BAD(c, kvm_irqfd(v, eventfd_fd, 5, 0), EINVAL);
	BAD(c, kvm_create_pit2(v, 0), ENOENT);
	OK(kvm_create_irqchip(v));
	c = "created twice";
	BAD(c, kvm_create_irqchip(v), EEXIST);
	c = "unknown flags";
	BAD(c, kvm_create_pit2(v, 0x1000), EINVAL);
	BAD(c, kvm_create_pit2(v, UINT_MAX), EINVAL);
	OK(kvm_create_pit2(v, 0));
	BAD("created twice", kvm_create_pit2(v, 0), EEXIST);
	c = "interrupt line out of range";
	BAD(c, kvm_irq_line(v, 4096, 1), EINVAL);
	BAD(c, kvm_irq_line(v, UINT_MAX, 1), EINVAL);
	c = "unknown MSI flags";
	struct kvm_msi m = msi;
	m.flags = 0x80;
	BAD(c, kvm_signal_msi(v, &m), EINVAL);
	m.flags = UINT_MAX;
	BAD(c, kvm_signal_msi(v, &m), EINVAL);
	/* irqfd */
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int closed = fcntl(devnull, F_DUPFD_CLOEXEC, 900);
	close(closed);
	c = "eventfd argument that is no open fd";
	BAD(c, kvm_irqfd(v, closed, 5, 0), EBADF);
	BAD(c, kvm_irqfd(v, -1, 5, 0), EBADF);
	BAD(c, kvm_irqfd(v, INT_MAX, 5, 0), EBADF);
	c = "eventfd argument that is no eventfd";
	BAD(c, kvm_irqfd(v, devnull, 5, 0), EINVAL);
	BAD(c, kvm_irqfd(v, v, 5, 0), EINVAL);
	c = "GSI out of range";
	BAD(c, kvm_irqfd(v, eventfd_fd, 4096, 0), EINVAL);
	BAD(c, kvm_irqfd(v, eventfd_fd, UINT_MAX, 0), EINVAL);
	c = "unknown flags";
	BAD(c, kvm_irqfd(v, eventfd_fd, 5, 0x80), EINVAL);
	OK(kvm_irqfd(v, eventfd_fd, 5, 0));
	BAD("eventfd connected twice", kvm_irqfd(v, eventfd_fd, 6, 0), EBUSY);
	OK(kvm_irqfd(v, eventfd_fd, 5, KVM_IRQFD_FLAG_DEASSIGN));
	/* ioeventfd */
	struct kvm_ioeventfd io = ioev;
	io.fd = closed;
	BAD("eventfd argument that is no open fd", kvm_ioeventfd(v, &io), EBADF);
	io.fd = devnull;
	BAD("eventfd argument that is no eventfd", kvm_ioeventfd(v, &io), EINVAL);
	io = ioev;
	io.fd = eventfd_fd;
	c = "ioeventfd length not 0, 1, 2, 4 or 8";
	io.len = 3;
	BAD(c, kvm_ioeventfd(v, &io), EINVAL);
	io.len = 16;
	BAD(c, kvm_ioeventfd(v, &io), EINVAL);
	io.len = 1;
	io.flags |= 1u << 20;
	BAD("unknown flags", kvm_ioeventfd(v, &io), EINVAL);
	io.flags = KVM_IOEVENTFD_FLAG_PIO | KVM_IOEVENTFD_FLAG_DEASSIGN;
	BAD("removing an ioeventfd that is not registered", kvm_ioeventfd(v, &io), ENOENT);
	io.flags = KVM_IOEVENTFD_FLAG_PIO;
	OK(kvm_ioeventfd(v, &io));
	BAD("ioeventfd registered twice", kvm_ioeventfd(v, &io), EEXIST);
	io.flags = 0;
	io.addr = -4ULL;
	io.len = 8;
	BAD("ioeventfd range wrapping past 2^64", kvm_ioeventfd(v, &io), EINVAL);
	close(devnull);
	c = "unknown interrupt controller";
	struct kvm_irqchip chip = { .chip_id = 99 };
	BAD(c, kvm_get_irqchip(v, &chip), EINVAL);
	BAD(c, kvm_set_irqchip(v, &chip), EINVAL);
	c = "interrupt line out of range";
	struct kvm_irq_level lvl = { .irq = 4096, .level = 1 };
	BAD(c, kvm_irq_line_status(v, &lvl), EINVAL);
	lvl.irq = UINT_MAX;
	BAD(c, kvm_irq_line_status(v, &lvl), EINVAL);
	c = "routing table the kernel refuses";
	struct { struct kvm_irq_routing h; struct kvm_irq_routing_entry e[1]; } rt = { .h.flags = 1 };
	BAD(c, kvm_set_gsi_routing(v, &rt.h), EINVAL);
	rt.h.flags = 0;
	rt.h.nr = 100000;
	BAD(c, kvm_set_gsi_routing(v, &rt.h), EINVAL);
	rt.h.nr = 1;
	rt.e[0].gsi = 5000;
	rt.e[0].type = KVM_IRQ_ROUTING_IRQCHIP;
	BAD(c, kvm_set_gsi_routing(v, &rt.h), EINVAL);
	rt.e[0].gsi = 3;
	rt.e[0].type = 77;
	BAD(c, kvm_set_gsi_routing(v, &rt.h), EINVAL);
	c = "address the kernel refuses";
	BAD(c, kvm_set_tss_addr(v, 0xfffff000), EINVAL);
	BAD(c, kvm_set_tss_addr(v, 1ULL << 40), EINVAL);
	BAD(c, kvm_set_tss_addr(v, -1ULL), EINVAL);
	/* A snapshot of this VM does not fit a VM of another shape. */
	static char other_blob[1 << 12];
	size_t other_len = sizeof(other_blob);
	OK(kvm_save_vm(v, other_blob, &other_len));
	BAD("snapshot of a VM of another shape", kvm_restore_vm(vm, other_blob, other_len), EINVAL);
	OK(kvm_create_vcpu(v, 0));
	BAD("created twice", kvm_create_irqchip(v), EEXIST);
	BAD("identity map after the first vcpu", kvm_set_identity_map_addr(v, 0xfeffc000), EINVAL);
	end_vm(v);
}

int main(void)
{
	require_kvm();
	list_pairs = getenv("MATRIX_ERRNOS") != NULL;
	eventfd_fd = eventfd(0, EFD_CLOEXEC);
	CHECK(eventfd_fd >= 0);
	make_bad_fds();
	mem_fd = memfd_create("matrix", MFD_CLOEXEC);
	CHECK(mem_fd >= 0 && ftruncate(mem_fd, 0x10000) == 0);

	system_values();
	vm = vm_with_memory(0x10000);
	vcpu_fd = OK(kvm_create_vcpu(vm, 0));
	kick_values();
	OK(kvm_get_fpu(&fpu));
	vm_blob_len = sizeof(vm_blob);
	OK(kvm_save_vm(vm, vm_blob, &vm_blob_len));
	OK(kvm_save_vcpu(blob, &blob_len));
	OK(kvm_get_clock(vm, &clock_data));
	OK(kvm_get_debugregs(&debugregs));
	OK(kvm_get_sregs2(&sregs2));
	OK(kvm_get_xcrs(&xcrs));
	OK(kvm_get_xsave(xsave, sizeof(xsave_buf)));
	one_reg.addr = (uintptr_t)&one_reg_value;
	CHECK(pthread_sigmask(SIG_BLOCK, NULL, &sigmask) == 0);
	OK(kvm_get_regs(&regs));
	OK(kvm_get_sregs(&sregs));
	OK(kvm_get_vcpu_events(&events));
	OK(kvm_get_mp_state(&mp_state));

	/* Not a VM: every kind of fd that is not one, and a vcpu. */
	for (int i = 0; i < n_bad_fds; i++)
		vm_calls_with(bad_fds[i].class, bad_fds[i].fd);
	vm_calls_with("a vcpu fd where a VM fd is expected", vcpu_fd);
	/* Not a vcpu. */
	for (int i = 0; i < n_bad_fds; i++)
		vcpu_fd_calls_with(bad_fds[i].class, bad_fds[i].fd, EBADF);
	/* Neither a VM nor a vcpu. */
	for (int i = 0; i < n_bad_fds; i++)
		object_fd_calls_with(bad_fds[i].class, bad_fds[i].fd);

	run_in_thread(thread_never_had_vcpu);
	OK(kvm_detach_vcpu());
	vcpu_calls_without_vcpu("thread after kvm_detach_vcpu");
	run_in_thread(thread_detached);

	memory_regions();
	fd_memory_regions();
	guest_memory();
	vcpus();
	vcpu_values();
	stats_values();
	arnds_list_values();
	qemu_calls_values();
	irqchip_values();

	/* After kvm_destroy_vm every call on it or its vcpu is EBADF, and the thread that
	 * had its vcpu has none. */
	OK(kvm_attach_vcpu(vcpu_fd));
	end_vm(vm);
	vm_calls_with("VM after kvm_destroy_vm", vm);
	vcpu_fd_calls_with("vcpu after kvm_destroy_vm", vcpu_fd, EBADF);
	object_fd_calls_with("VM after kvm_destroy_vm", vm);
	object_fd_calls_with("vcpu after kvm_destroy_vm", vcpu_fd);
	vcpu_calls_without_vcpu("after kvm_destroy_vm");
	/* The numbers come back for other files: still not libkvm's. */
	CHECK(dup3(bad_fds[1].fd, vm, O_CLOEXEC) == vm);
	CHECK(dup3(bad_fds[1].fd, vcpu_fd, O_CLOEXEC) == vcpu_fd);
	vm_calls_with("fd number of a destroyed VM, reused", vm);
	vcpu_fd_calls_with("fd number of a destroyed vcpu, reused", vcpu_fd, EBADF);
	object_fd_calls_with("fd number of a destroyed VM, reused", vm);
	object_fd_calls_with("fd number of a destroyed vcpu, reused", vcpu_fd);
	close(vm);
	close(vcpu_fd);

	close(raw_vcpu);
	close(raw_vm);
	close(raw_kvm);
	fflush(stderr);
	for (int i = 0; i < (int)N(tally) && tally[i].class; i++)
		printf("%4d  %s\n", tally[i].n, tally[i].class);
	printf("%d bad-input cases checked, %d failed\n", cases, failures);
	return failures ? 1 : 0;
}
