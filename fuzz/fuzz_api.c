/* libFuzzer target: random sequences of libkvm calls with random arguments on the real
 * /dev/kvm, and small real-mode guests executing random bytes.
 *
 * Each input is a little program: one byte picks a call, the following bytes its
 * arguments. Per input: at most 2 VMs, 64 calls, 24 kvm_run() calls, each kvm_run
 * bounded by a periodic watchdog signal (so a guest that never exits cannot hang the
 * fuzzer). At the end of each input everything is destroyed.
 *
 * Oracles, beyond crashes and AddressSanitizer/LeakSanitizer reports:
 * - a failing call sets errno, and never to ENOTRECOVERABLE (an internal panic);
 * - kvm_guest_memory() returns a pointer exactly when the range lies inside one slot of
 *   a shadow model of the slots that calls succeeded in making, and then the pointer
 *   the model predicts; a success of kvm_set_memory_region() that overlaps another
 *   slot of the model is a bug;
 * - every exit's I/O data lies inside the run area, MMIO data inside its 8 bytes;
 * - after each input no KVM fd or mapping remains.
 * A violated oracle calls abort(), which libFuzzer reports as a crash with the input.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <libkvm.h>

#define MAX_VMS 2
#define MAX_SLOTS 8
#define MAX_CALLS 64
#define MAX_RUNS 24
#define WATCHDOG_SIGNAL (SIGRTMIN + 7)

/* ---- reading the input ------------------------------------------------------------ */

static const uint8_t *in;
static size_t in_len, in_pos;

static uint8_t u8(void) { return in_pos < in_len ? in[in_pos++] : 0; }
static uint16_t u16(void) { return (uint16_t)(u8() | u8() << 8); }
static uint32_t u32(void) { return u16() | (uint32_t)u16() << 16; }
static uint64_t u64(void) { return u32() | (uint64_t)u32() << 32; }
static int more(void) { return in_pos < in_len; }

/* Interesting values first, then anything. */
static uint64_t pick64(void)
{
	static const uint64_t edges[] = {
		0, 1, 0xfff, 0x1000, 0x1001, 0xffff, 0x10000, 0x20000, 0x100000, 0xfffff000,
		0x100000000ULL, 1ULL << 46, 1ULL << 52, 1ULL << 63, -0x1000ULL, -1ULL, -2ULL,
	};
	uint8_t k = u8();
	if (k < 0x80)
		return edges[k % (sizeof(edges) / sizeof(edges[0]))];
	if (k < 0xc0)
		return (uint64_t)u16() << 12; /* page aligned, below 256 MiB */
	return u64();
}

/* An fd: mostly the ones in play, sometimes not a libkvm one at all. */
static int vms[MAX_VMS], n_vms;
static int vcpu_fds[2 * MAX_VMS], n_vcpus;
static int efd;

static int pick_fd(int vm_side)
{
	uint8_t k = u8();
	switch (k % 8) {
	case 0: return -1;
	case 1: return efd;
	case 2: return (int)u32();
	case 3: return n_vcpus ? vcpu_fds[k / 8 % n_vcpus] : 0;
	default:
		if (vm_side)
			return n_vms ? vms[k / 8 % n_vms] : 0;
		return n_vcpus ? vcpu_fds[k / 8 % n_vcpus] : 0;
	}
}

/* ---- oracles ---------------------------------------------------------------------- */

static void bug(const char *what)
{
	fprintf(stderr, "fuzz_api: %s\n", what);
	abort();
}

/* A libkvm call that returned -1 (or NULL) must say why, and never with an internal
 * panic. */
static long checked(long r, int is_ptr)
{
	int failed = is_ptr ? r == 0 : r == -1;
	if (failed && errno <= 0)
		bug("call failed without errno");
	if (failed && errno == ENOTRECOVERABLE)
		bug("internal panic (ENOTRECOVERABLE)");
	if (!is_ptr && r < -1)
		bug("call returned below -1");
	return r;
}
#define C(call) (errno = 0, checked((long)(call), 0))
#define CP(call) ((void *)(errno = 0, checked((long)(intptr_t)(call), 1)))

/* ---- shadow model of the slots of each VM ------------------------------------------ */

/* Memory slots 0-7, then memory aliases 0-3 (their own namespace). */
#define MAX_ALIASES 4
#define N_MODEL (MAX_SLOTS + MAX_ALIASES)
/* `target`: for an alias, the memory slot it points into (slots may share host memory:
 * the user variant can give two slots the same pages). */
struct slot { int used; uint64_t gpa, size; uint8_t *host; uint32_t flags; int target; };
static struct slot model[MAX_VMS][N_MODEL];

static int vm_index(int fd)
{
	for (int i = 0; i < n_vms; i++)
		if (vms[i] == fd)
			return i;
	return -1;
}

static void model_check_lookup(int v, uint64_t gpa, uint64_t len, uint8_t *got)
{
	uint8_t *want = NULL;
	if (len && gpa + len >= gpa)
		for (int s = 0; s < N_MODEL; s++) {
			struct slot *m = &model[v][s];
			if (m->used && m->gpa <= gpa && gpa + len <= m->gpa + m->size)
				want = m->host + (gpa - m->gpa);
		}
	if (got != want)
		bug("kvm_guest_memory disagrees with the model of the slots");
}

static void model_no_overlap(int v, int except, uint64_t gpa, uint64_t size)
{
	for (int s = 0; s < N_MODEL; s++) {
		struct slot *m = &model[v][s];
		if (s != except && m->used && m->gpa < gpa + size && gpa < m->gpa + m->size)
			bug("an overlapping slot or alias was accepted");
	}
}

/* After a successful kvm_set_memory_region/user variant of `slot` (index 0-7). */
static void model_update(int v, unsigned slot, uint32_t flags, uint64_t gpa, uint64_t size)
{
	if (slot >= MAX_SLOTS)
		bug("a slot number the fuzzer never uses was accepted");
	if (size == 0) {
		for (int a = MAX_SLOTS; a < N_MODEL; a++)
			if (model[v][a].used && model[v][a].target == (int)slot)
				bug("a slot an alias points into was deleted");
		model[v][slot].used = 0;
		return;
	}
	model_no_overlap(v, (int)slot, gpa, size);
	struct slot *old = &model[v][slot];
	for (int a = MAX_SLOTS; a < N_MODEL && old->used && old->gpa != gpa; a++)
		if (model[v][a].used && model[v][a].target == (int)slot)
			bug("a slot an alias points into was moved");
	uint8_t *host = CP(kvm_guest_memory(vms[v], gpa, size));
	if (!host)
		bug("a slot just made has no host memory");
	model[v][slot] = (struct slot){ 1, gpa, size, host, flags, -1 };
}

/* After a successful kvm_set_memory_alias. */
static void model_alias(int v, const struct kvm_memory_alias *a)
{
	if (a->slot >= MAX_ALIASES)
		bug("an alias slot the fuzzer never uses was accepted");
	struct slot *al = &model[v][MAX_SLOTS + a->slot];
	if (a->memory_size == 0) {
		al->used = 0;
		return;
	}
	model_no_overlap(v, MAX_SLOTS + (int)a->slot, a->guest_phys_addr, a->memory_size);
	/* The target lies inside one memory slot: the alias shows its host memory. */
	for (int s = 0; s < MAX_SLOTS; s++) {
		struct slot *m = &model[v][s];
		if (m->used && m->gpa <= a->target_phys_addr &&
		    a->target_phys_addr + a->memory_size <= m->gpa + m->size) {
			*al = (struct slot){ 1, a->guest_phys_addr, a->memory_size,
					     m->host + (a->target_phys_addr - m->gpa), m->flags, s };
			return;
		}
	}
	bug("an alias whose target is not inside one memory slot was accepted");
}

/* ---- watchdog: a periodic signal while the guest runs ------------------------------ */

static timer_t watchdog;

static void on_watchdog(int sig) { (void)sig; }

static void watchdog_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_watchdog;
	sigaction(WATCHDOG_SIGNAL, &sa, NULL);
	struct sigevent ev;
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = WATCHDOG_SIGNAL;
	ev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &ev, &watchdog) != 0)
		bug("timer_create");
}

static void watchdog_arm(long ns)
{
	struct itimerspec it = { { 0, ns }, { 0, ns } };
	timer_settime(watchdog, 0, &it, NULL);
}

/* ---- the calls -------------------------------------------------------------------- */

static uint8_t user_mem[0x40000] __attribute__((aligned(4096)));
static uint8_t buf[0x10000] __attribute__((aligned(4096)));
static int runs;
static long mmap_size;

static void op_create_vm(void)
{
	if (n_vms == MAX_VMS)
		return;
	int fd = C(kvm_create_vm());
	if (fd >= 0) {
		memset(model[n_vms], 0, sizeof(model[n_vms]));
		vms[n_vms++] = fd;
	}
}

static void forget_vm(int v)
{
	/* Its vcpus' fds are gone too: forget every vcpu fd no longer open. */
	for (int i = 0; i < n_vcpus;)
		if (fcntl(vcpu_fds[i], F_GETFD) == -1)
			vcpu_fds[i] = vcpu_fds[--n_vcpus];
		else
			i++;
	vms[v] = vms[n_vms - 1];
	memcpy(model[v], model[n_vms - 1], sizeof(model[v]));
	n_vms--;
}

static void op_destroy_vm(void)
{
	int fd = pick_fd(1);
	int v = vm_index(fd);
	if (C(kvm_destroy_vm(fd)) == 0) {
		if (v < 0)
			bug("kvm_destroy_vm of an unknown fd succeeded");
		forget_vm(v);
	}
}

/* A memfd of 256 KiB that fd-backed slots map (kind 2 of op_set_memory_region). */
static int mem_fd;
#define MEM_FD_SIZE 0x40000

/* The fd, offset and map_flags of an fd-backed slot of `size` bytes: mostly the memfd,
 * inside it, shared or private (and populated); sometimes anything. */
static void pick_file(uint64_t *size, int *fd, uint64_t *offset, int *map_flags)
{
	static const int flags[] = { MAP_SHARED, MAP_PRIVATE, MAP_SHARED | MAP_POPULATE,
				     MAP_PRIVATE | MAP_POPULATE };
	*fd = u8() < 224 ? mem_fd : pick_fd(0);
	uint8_t k = u8();
	*map_flags = k < 240 ? flags[k % 4] : (int)u32();
	if (u8() < 200) {
		*offset = (uint64_t)(u8() % (MEM_FD_SIZE / 4096)) * 4096;
		if (*size % 4096 == 0 && *size > MEM_FD_SIZE - *offset && u8() < 224)
			*size = MEM_FD_SIZE - *offset;
	} else {
		*offset = pick64();
	}
}

/* kind 0: kvm_set_memory_region, 1: kvm_set_user_memory_region, 2: kvm_set_memory_region_fd. */
static void op_set_memory_region(int kind)
{
	int fd = pick_fd(1), v = vm_index(fd);
	/* Slots 0-7 (the model's); now and then any number, usually out of range. */
	unsigned slot = u8() < 240 ? u8() % MAX_SLOTS : u32();
	uint32_t flags = u8() < 200 ? (u8() & 3) : u32();
	uint64_t gpa, size;
	if (u8() < 160) {
		/* Well formed, so that slots exist and meet each other: 64 KiB steps below
		 * 4 MiB, 1 to 32 pages. */
		gpa = (uint64_t)(u8() % 64) * 0x10000 + (uint64_t)(u8() % 4) * 0x1000;
		size = (uint64_t)(1 + u8() % 32) * 0x1000;
		if (u8() < 16)
			size = 0;
	} else {
		gpa = pick64();
		size = pick64();
	}
	/* Guest RAM the fuzzer may allocate stays small; larger sizes only when they are
	 * refused anyway (unaligned), so no input asks the kernel for terabytes. */
	if (size > (1 << 24) && size % 4096 == 0)
		size &= (1 << 24) - 1;
	int r;
	if (kind == 2) {
		int file;
		uint64_t offset;
		int map_flags;
		pick_file(&size, &file, &offset, &map_flags);
		r = C(kvm_set_memory_region_fd(fd, slot, flags, gpa, size, file, offset, map_flags));
	} else if (kind == 1) {
		/* The caller's memory: NULL, unaligned, or pages of user_mem, never past it
		 * (the guest may write all of it). */
		uint8_t k = u8();
		uint8_t *host = k < 8 ? NULL : k < 16 ? user_mem + 1 : user_mem + (u8() % 32) * 4096;
		if (k >= 16 && size > sizeof(user_mem) - (size_t)(host - user_mem))
			size = sizeof(user_mem) - (size_t)(host - user_mem);
		r = C(kvm_set_user_memory_region(fd, slot, flags, gpa, size, host));
	} else {
		r = C(kvm_set_memory_region(fd, slot, flags, gpa, size));
	}
	if (r != 0)
		return;
	if (v < 0)
		bug("kvm_set_memory_region on an fd that is no VM succeeded");
	if (slot >= MAX_SLOTS) {
		/* A valid slot the model does not track: delete it again at once. */
		if (size && C(kvm_set_memory_region(fd, slot, 0, 0, 0)) != 0)
			bug("deleting a slot just made failed");
		return;
	}
	model_update(v, slot, flags, gpa, size);
}

static void op_guest_memory(void)
{
	int fd = pick_fd(1), v = vm_index(fd);
	uint64_t gpa = pick64(), len = pick64();
	if (u8() & 1)
		len &= 0xffff;
	struct slot *m = v >= 0 ? &model[v][u8() % N_MODEL] : NULL;
	if (m && m->used && u8() < 192) {
		/* The edges of a slot: its first and last byte, one before, one past, and
		 * lengths that reach exactly to its end, one beyond, or wrap. */
		static const int64_t offs[] = { 0, 1, -1, 0x7ff, 0x1000 };
		static const int64_t lens[] = { 1, 2, 0, 0x1000, -1 };
		uint8_t k = u8();
		int64_t off = k % 3 == 0 ? (int64_t)m->size - 1 : k % 3 == 1 ? (int64_t)m->size
			      : offs[k / 3 % 5];
		gpa = m->gpa + (uint64_t)off;
		k = u8();
		uint64_t to_end = m->gpa + m->size - gpa;
		len = k % 4 == 0 ? to_end : k % 4 == 1 ? to_end + 1 : (uint64_t)lens[k / 4 % 5];
	}
	uint8_t *p = CP(kvm_guest_memory(fd, gpa, len));
	if (v >= 0)
		model_check_lookup(v, gpa, len, p);
	else if (p)
		bug("kvm_guest_memory of an unknown fd succeeded");
	if (p) {
		/* Touch the whole range: it must be ours to write. */
		size_t n = len > 0x10000 ? 0x10000 : len;
		for (size_t i = 0; i < n; i++)
			p[i] = u8();
		p[len - 1] ^= 0xff;
	}
}

static void op_create_vcpu(void)
{
	int fd = pick_fd(1);
	unsigned id = u8() < 240 ? u8() % 4 : u32();
	int r = C(kvm_create_vcpu(fd, id));
	if (r >= 0 && n_vcpus < (int)(sizeof(vcpu_fds) / sizeof(vcpu_fds[0])))
		vcpu_fds[n_vcpus++] = r;
}

/* Fills `n` bytes of guest memory at the start of a slot with input bytes and runs the
 * vcpu there in real mode, answering its I/O and MMIO, a few exits at most. */
static void op_run(void)
{
	if (runs >= MAX_RUNS)
		return;
	struct kvm_run *run = CP(kvm_run_area());
	if (!run) {
		C(kvm_run());
		return;
	}
	uint64_t start = 0;
	/* Guest code: input bytes at the start of the first slot below 1 MiB of a VM
	 * (whichever VM this thread's vcpu belongs to: it runs what its VM has there). */
	for (int i = 0; i < n_vms; i++)
		for (int s = 0; s < MAX_SLOTS; s++) {
			struct slot *m = &model[i][s];
			if (!m->used || m->gpa >= 0x100000)
				continue;
			for (uint64_t k = 0; k < m->size && k < 256 && more(); k++)
				m->host[k] = u8();
			start = m->gpa;
			goto loaded;
		}
loaded:
	/* Real mode at the code (or at 0, whatever is there), unless the input says to
	 * keep the vcpu's state as it is. */
	if (u8() < 224) {
		struct kvm_sregs sr;
		if (C(kvm_get_sregs(&sr)) == 0) {
			sr.cr0 &= ~1ULL;
			sr.cs.selector = (uint16_t)(start >> 4);
			sr.cs.base = start;
			C(kvm_set_sregs(&sr));
		}
		struct kvm_regs rg;
		if (C(kvm_get_regs(&rg)) == 0) {
			rg.rip = 0;
			rg.rflags = 2;
			C(kvm_set_regs(&rg));
		}
	}
	watchdog_arm(2000000);
	for (int n = 0; n < 6 && runs < MAX_RUNS; n++) {
		runs++;
		int r = C(kvm_run());
		if (r < 0)
			break;
		if (r == KVM_EXIT_IO) {
			uint64_t off = run->io.data_offset, len = (uint64_t)run->io.size * run->io.count;
			if (off < sizeof(*run) || off > (uint64_t)mmap_size || len > (uint64_t)mmap_size - off)
				bug("I/O data outside the run area");
			if (run->io.direction == KVM_EXIT_IO_IN)
				for (uint64_t k = 0; k < len; k++)
					((uint8_t *)run)[off + k] = u8();
		} else if (r == KVM_EXIT_MMIO) {
			if (run->mmio.len > sizeof(run->mmio.data))
				bug("MMIO data longer than 8 bytes");
			if (!run->mmio.is_write)
				for (uint32_t k = 0; k < run->mmio.len; k++)
					run->mmio.data[k] = u8();
		} else if (r != KVM_EXIT_HLT && r != KVM_EXIT_IRQ_WINDOW_OPEN && r != KVM_EXIT_DEBUG) {
			break; /* shutdown, internal error, ...: the vcpu needs new state */
		}
		if (u8() < 16)
			run->request_interrupt_window = u8() & 1;
	}
	watchdog_arm(0);
}

static void op_regs(void)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_vcpu_events e;
	struct kvm_mp_state mp;
	struct kvm_lapic_state l;
	switch (u8() % 12) {
	case 0: C(kvm_get_regs(u8() < 8 ? NULL : &r)); break;
	case 1:
		memset(&r, 0, sizeof(r));
		for (size_t k = 0; k < sizeof(r); k++)
			((uint8_t *)&r)[k] = u8();
		C(kvm_set_regs(&r));
		break;
	case 2: C(kvm_get_sregs(u8() < 8 ? NULL : &s)); break;
	case 3:
		if (C(kvm_get_sregs(&s)) == 0) {
			/* A few fields changed at random. */
			for (int k = u8() % 4; k > 0; k--)
				((uint8_t *)&s)[u16() % sizeof(s)] = u8();
			C(kvm_set_sregs(&s));
		}
		break;
	case 4: C(kvm_get_vcpu_events(&e)); break;
	case 5:
		if (C(kvm_get_vcpu_events(&e)) == 0) {
			((uint8_t *)&e)[u8() % sizeof(e)] = u8();
			C(kvm_set_vcpu_events(&e));
		}
		break;
	case 6: C(kvm_get_mp_state(&mp)); break;
	case 7: mp.mp_state = u8() % 12; C(kvm_set_mp_state(&mp)); break;
	case 8: C(kvm_get_lapic(&l)); break;
	case 9:
		if (C(kvm_get_lapic(&l)) == 0) {
			l.regs[u16() % sizeof(l.regs)] = (char)u8();
			C(kvm_set_lapic(&l));
		}
		break;
	case 10: C(kvm_nmi()); break;
	case 11: C(kvm_detach_vcpu()); break;
	}
}

static void op_irq(void)
{
	int fd = pick_fd(1);
	struct kvm_msi msi;
	struct kvm_ioeventfd io;
	switch (u8() % 7) {
	case 0: C(kvm_create_irqchip(fd)); break;
	case 1: C(kvm_create_pit2(fd, u8() < 200 ? 0 : u32())); break;
	case 2: C(kvm_irq_line(fd, u8() < 200 ? u8() % 24 : u32(), u8() & 1)); break;
	case 3:
		memset(&msi, 0, sizeof(msi));
		msi.address_lo = 0xfee00000 | (u8() << 12);
		msi.data = u16();
		if (u8() < 16)
			msi.flags = u32();
		C(kvm_signal_msi(fd, u8() < 8 ? NULL : &msi));
		break;
	case 4: C(kvm_irqfd(fd, u8() < 200 ? efd : pick_fd(0), u8() % 32, u8() < 200 ? 0 : u32())); break;
	case 5:
		memset(&io, 0, sizeof(io));
		io.addr = u8() < 128 ? 0x600 + u8() : pick64();
		io.len = u8() % 9;
		io.fd = u8() < 200 ? efd : pick_fd(0);
		io.flags = u8() & 7;
		io.datamatch = u8();
		C(kvm_ioeventfd(fd, u8() < 8 ? NULL : &io));
		break;
	case 6:
		if (u8() & 1)
			C(kvm_set_tss_addr(fd, u8() < 128 ? 0xfffbd000 : pick64()));
		else
			C(kvm_set_identity_map_addr(fd, u8() < 128 ? 0xfeffc000 : pick64()));
		break;
	}
}

/* The escape hatches with requests that are safe for the fuzzer's own process: none
 * creates an fd or changes the signal mask (which could block the watchdog). */
static void op_ioctl(void)
{
	static const unsigned long vcpu_reqs[] = {
		KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS, KVM_GET_FPU, KVM_SET_FPU,
		KVM_GET_MP_STATE, KVM_GET_VCPU_EVENTS, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS,
		KVM_GET_XCRS, KVM_SET_XCRS, KVM_GET_XSAVE, KVM_GET_MSRS, KVM_SET_MSRS,
		KVM_GET_CPUID2, KVM_SET_CPUID2, KVM_SET_GUEST_DEBUG, KVM_INTERRUPT,
		KVM_GET_TSC_KHZ, KVM_RUN, _IO(KVMIO, 0xf3), 0x1234,
	};
	static const unsigned long vm_reqs[] = {
		KVM_GET_CLOCK, KVM_SET_CLOCK, KVM_CHECK_EXTENSION, KVM_GET_IRQCHIP, KVM_SET_IRQCHIP,
		KVM_GET_PIT2, KVM_SET_PIT2, KVM_SET_USER_MEMORY_REGION, KVM_CREATE_VCPU,
		KVM_CREATE_IRQCHIP, _IO(KVMIO, 0xf3), 0x1234,
	};
	for (size_t k = 0; k < 64; k++)
		buf[k] = u8();
	/* Flexible arrays: keep the count the kernel reads within the buffer. */
	buf[0] &= 0x3f;
	buf[1] = buf[2] = buf[3] = 0;
	if (u8() & 1) {
		unsigned long req = vcpu_reqs[u8() % (sizeof(vcpu_reqs) / sizeof(vcpu_reqs[0]))];
		C(kvm_vcpu_ioctl(req, buf));
	} else {
		unsigned long req = vm_reqs[u8() % (sizeof(vm_reqs) / sizeof(vm_reqs[0]))];
		void *arg = req == KVM_CHECK_EXTENSION ? (void *)(uintptr_t)u8() : buf;
		C(kvm_vm_ioctl(pick_fd(1), req, arg));
	}
}

static void op_alias(void)
{
	int fd = pick_fd(1), v = vm_index(fd);
	struct kvm_memory_alias a;
	memset(&a, 0, sizeof(a));
	a.slot = u8() < 240 ? u8() % MAX_ALIASES : u32();
	if (u8() < 16)
		a.flags = u32();
	struct slot *m = v >= 0 ? &model[v][u8() % MAX_SLOTS] : NULL;
	if (m && m->used && u8() < 192) {
		/* Well formed: a window of a memory slot (or one page past it), shown at a
		 * 64 KiB step above 8 MiB. */
		uint64_t pages = m->size / 4096;
		uint64_t first = u8() % pages;
		a.target_phys_addr = m->gpa + first * 4096;
		a.memory_size = (1 + u8() % (pages - first + 1)) * 4096;
		a.guest_phys_addr = 0x800000 + (uint64_t)(u8() % 64) * 0x10000;
		if (u8() < 24)
			a.memory_size = 0;
	} else {
		a.guest_phys_addr = pick64();
		a.target_phys_addr = pick64();
		a.memory_size = pick64() & 0xffffff;
	}
	if (u8() & 1) {
		if (C(kvm_set_memory_alias(fd, u8() < 8 ? NULL : &a)) == 0) {
			if (v < 0)
				bug("kvm_set_memory_alias on an fd that is no VM succeeded");
			model_alias(v, &a);
		}
	} else {
		struct kvm_memory_alias got = { .slot = a.slot };
		if (C(kvm_get_memory_alias(fd, u8() < 8 ? NULL : &got)) == 0 && v >= 0) {
			struct slot *al = a.slot < MAX_ALIASES ? &model[v][MAX_SLOTS + a.slot] : NULL;
			if (!al || !al->used || al->gpa != got.guest_phys_addr || al->size != got.memory_size)
				bug("kvm_get_memory_alias disagrees with the model");
		}
	}
}

static void op_dirty_log(void)
{
	int fd = pick_fd(1), v = vm_index(fd);
	unsigned slot = u8() < 240 ? u8() % MAX_SLOTS : u32();
	/* The bitmap the slot needs, then canary words that must stay as they are. */
	size_t words = 0;
	if (v >= 0 && slot < MAX_SLOTS && model[v][slot].used)
		words = (model[v][slot].size / 4096 + 63) / 64;
	uint64_t *bm = (uint64_t *)buf;
	for (size_t k = 0; k < words + 8; k++)
		bm[k] = 0x5a5a5a5a5a5a5a5aULL;
	if (C(kvm_get_dirty_log(fd, slot, u8() < 8 ? NULL : bm)) == 0) {
		if (!words || !(model[v][slot].flags & KVM_MEM_LOG_DIRTY_PAGES))
			bug("kvm_get_dirty_log succeeded for a slot that does not log");
		uint64_t pages = model[v][slot].size / 4096;
		if (pages % 64 && bm[words - 1] >> (pages % 64))
			bug("dirty log bits beyond the slot's pages");
	}
	for (size_t k = words; k < words + 8; k++)
		if (bm[k] != 0x5a5a5a5a5a5a5a5aULL)
			bug("kvm_get_dirty_log wrote past the slot's bitmap");
}

/* Arnd's list on the calling thread's vcpu, and the calls on /dev/kvm. */
static void op_cpu(void)
{
	struct kvm_fpu fpu;
	struct kvm_guest_debug dbg;
	uint64_t phys;
	uint8_t valid, wr, user;
	struct kvm_msrs *msrs = (struct kvm_msrs *)buf;
	struct kvm_cpuid2 *cpuid = (struct kvm_cpuid2 *)buf;
	struct kvm_msr_list *list = (struct kvm_msr_list *)buf;
	sigset_t mask;
	switch (u8() % 12) {
	case 0: C(kvm_interrupt(u8() < 224 ? u8() : u32())); break;
	case 1:
		memset(&dbg, 0, sizeof(dbg));
		dbg.control = u8() < 200 ? (u32() & 0x1f0003) : u32();
		for (int k = 0; k < 8; k++)
			dbg.arch.debugreg[k] = u8() < 128 ? 0 : u64();
		C(kvm_debug_guest(u8() < 8 ? NULL : &dbg));
		break;
	case 2: case 3:
		memset(buf, 0, 8 + 16 * 8);
		msrs->nmsrs = u8() < 240 ? u8() % 8 : u32();
		for (int k = 0; k < 8; k++) {
			static const uint32_t known[] = { 0x10, 0x174, 0x175, 0x176, 0x1a0, 0x277,
							  0xc0000080, 0xc0000081, 0xc0000100, 0x40000000 };
			msrs->entries[k].index = u8() < 200 ? known[u8() % 10] : u32();
			msrs->entries[k].data = u64();
		}
		if (u8() & 1) {
			int r = C(kvm_get_msrs(msrs));
			if (r >= 0 && (uint32_t)r > msrs->nmsrs)
				bug("kvm_get_msrs read more MSRs than asked");
		} else {
			int r = C(kvm_set_msrs(msrs));
			if (r >= 0 && (uint32_t)r > msrs->nmsrs)
				bug("kvm_set_msrs wrote more MSRs than given");
		}
		break;
	case 4:
		cpuid->nent = 256;
		if (C(kvm_get_supported_cpuid(cpuid)) == 0) {
			cpuid->nent = u8() < 200 ? cpuid->nent : u8() < 128 ? u8() : u32();
			if (cpuid->nent <= 256 && u8() < 64)
				cpuid->entries[u8() % (cpuid->nent ? cpuid->nent : 1)].eax = u32();
			C(kvm_set_cpuid(u8() < 8 ? NULL : cpuid));
		}
		break;
	case 5:
		cpuid->nent = u8() < 128 ? u8() : 256;
		{
			uint32_t room = cpuid->nent;
			if (C(kvm_get_supported_cpuid(cpuid)) == 0 ? cpuid->nent > room
			    : errno == E2BIG && (cpuid->nent <= room || cpuid->nent > 256))
				bug("kvm_get_supported_cpuid: count out of bounds");
		}
		break;
	case 6:
		list->nmsrs = u8() < 128 ? u8() : 1024;
		{
			uint32_t room = list->nmsrs;
			if (C(kvm_get_msr_index_list(list)) == 0 ? list->nmsrs > room
			    : errno == E2BIG && list->nmsrs <= room)
				bug("kvm_get_msr_index_list: count out of bounds");
		}
		break;
	case 7:
		if (C(kvm_get_fpu(&fpu)) == 0) {
			((uint8_t *)&fpu)[u16() % sizeof(fpu)] = u8();
			C(kvm_set_fpu(&fpu));
		}
		break;
	case 8:
		C(kvm_translate(pick64(), u8() < 8 ? NULL : &phys, &valid, &wr, &user));
		break;
	case 9:
		/* Any mask, but the watchdog must still stop the guest. */
		sigemptyset(&mask);
		for (int k = 1; k < 64; k++)
			if (u8() & 1)
				sigaddset(&mask, k);
		sigdelset(&mask, WATCHDOG_SIGNAL);
		C(kvm_set_signal_mask(u8() & 1 ? &mask : NULL));
		break;
	case 10: C(kvm_kick_vcpu(pick_fd(0))); break;
	case 11:
		/* Never the watchdog's signal: libkvm would take it for its kick. */
		{
			int sig = u8() < 128 ? (int)u8() - 64 : SIGRTMIN + 2;
			if (sig != WATCHDOG_SIGNAL)
				C(kvm_set_kick_signal(sig));
		}
		break;
	}
}

/* ---- snapshots: hostile blobs, with the checksum recomputed so that mutations reach
 * the section parser ------------------------------------------------------------------ */

static uint8_t snap[1 << 17];

static uint32_t crc32_ieee(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
	}
	return ~crc;
}

/* The blob's CRC-32 covers bytes 0..24 and 28..end (src/snapshot.rs). */
static void fix_crc(uint8_t *b, size_t len)
{
	if (len < 32)
		return;
	uint32_t c = crc32_ieee(crc32_ieee(0, b, 24), b + 28, len - 28);
	memcpy(b + 24, &c, 4);
}

static size_t mutate(uint8_t *b, size_t len)
{
	for (int k = u8() % 6; k > 0 && len; k--) {
		uint8_t how = u8();
		size_t at = u16() % len;
		if (how < 128)
			b[at] = u8();
		else if (how < 192 && at + 4 <= len) {
			uint32_t v = u8() < 128 ? u32() : (uint32_t)-(int)(u8() % 16);
			memcpy(b + at, &v, 4);   /* a length or count field, maybe */
		} else if (how < 224)
			len = at;                /* truncated */
		else if (len + 64 < sizeof(snap))
			len += u8() % 64;        /* trailing bytes */
	}
	if (u8() < 192)
		fix_crc(b, len);
	return len;
}

static void op_snapshot(void)
{
	size_t len = sizeof(snap);
	struct kvm_regs r0, r1;
	struct kvm_sregs s0, s1;
	if (u8() & 1) {
		if (C(kvm_save_vcpu(u8() < 8 ? NULL : snap, &len)) != 0)
			return;
		if (len > sizeof(snap))
			bug("kvm_save_vcpu says it wrote more than the room");
		len = mutate(snap, len);
		int have = kvm_get_regs(&r0) == 0 && kvm_get_sregs(&s0) == 0;
		if (C(kvm_restore_vcpu(snap, len)) != 0 && have &&
		    (kvm_get_regs(&r1) != 0 || kvm_get_sregs(&s1) != 0 ||
		     memcmp(&r0, &r1, sizeof(r0)) || memcmp(&s0, &s1, sizeof(s0))))
			bug("a refused vcpu snapshot changed the vcpu");
	} else {
		int fd = pick_fd(1);
		if (C(kvm_save_vm(fd, u8() < 8 ? NULL : snap, &len)) != 0)
			return;
		if (len > sizeof(snap))
			bug("kvm_save_vm says it wrote more than the room");
		len = mutate(snap, len);
		C(kvm_restore_vm(u8() < 224 ? fd : pick_fd(1), snap, len));
	}
}

/* Issue 9's state calls with random contents. */
static void op_state(void)
{
	int fd = pick_fd(1);
	struct kvm_debugregs dr;
	struct kvm_xcrs xcrs;
	struct kvm_sregs2 s2;
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	struct kvm_irq_level lvl;
	struct kvm_coalesced_mmio entry;
	struct kvm_coalesced_mmio_zone zone;
	struct kvm_enable_cap cap;
	struct kvm_clear_dirty_log cl;
	uint64_t val;
	struct kvm_one_reg one;
	switch (u8() % 16) {
	case 0:
		if (C(kvm_get_debugregs(&dr)) == 0) {
			((uint8_t *)&dr)[u8() % sizeof(dr)] = u8();
			C(kvm_set_debugregs(&dr));
		}
		break;
	case 1:
		if (C(kvm_get_xcrs(&xcrs)) == 0) {
			xcrs.xcrs[0].value = u8() < 128 ? (u8() & 7) : u64();
			if (u8() < 16)
				xcrs.nr_xcrs = u32();
			C(kvm_set_xcrs(&xcrs));
		}
		break;
	case 2:
		if (C(kvm_get_sregs2(&s2)) == 0) {
			((uint8_t *)&s2)[u16() % sizeof(s2)] = u8();
			C(kvm_set_sregs2(&s2));
		}
		break;
	case 3: {
		int size = C(kvm_get_xsave_size());
		size_t room = u8() < 32 ? u16() : size > 0 ? (size_t)size : 4096;
		if (room > sizeof(buf))
			room = sizeof(buf);
		if (C(kvm_get_xsave((struct kvm_xsave *)buf, room)) > 0) {
			buf[u16() % room] = u8();
			C(kvm_set_xsave((struct kvm_xsave *)buf, room));
		}
		break;
	}
	case 4:
		one.id = u8() < 128 ? 0x2030000200000000ULL | (u8() < 128 ? 0x10 : u32()) : u64();
		one.addr = (uintptr_t)&val;
		val = u64();
		C(u8() & 1 ? kvm_get_one_reg(&one) : kvm_set_one_reg(&one));
		break;
	case 5: C(u8() & 1 ? kvm_get_tsc_khz() : kvm_set_tsc_khz(u8() < 128 ? 0 : u32())); break;
	case 6:
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = u8() % 4;
		if (C(kvm_get_irqchip(fd, &chip)) == 0) {
			((uint8_t *)&chip.chip)[u16() % sizeof(chip.chip)] = u8();
			C(kvm_set_irqchip(fd, &chip));
		}
		break;
	case 7:
		if (C(kvm_get_pit2(fd, &pit)) == 0) {
			((uint8_t *)&pit)[u8() % sizeof(pit)] = u8();
			C(kvm_set_pit2(fd, &pit));
		}
		break;
	case 8:
		if (C(kvm_get_clock(fd, &clock)) == 0) {
			clock.clock = u64();
			clock.flags = u8() < 200 ? 0 : u32();
			C(kvm_set_clock(fd, &clock));
		}
		break;
	case 9:
		lvl.irq = u8() < 200 ? u8() % 24 : u32();
		lvl.level = u8() & 1;
		C(kvm_irq_line_status(fd, &lvl));
		break;
	case 10: {
		/* A routing table of a few entries (room for 64 in buf). */
		struct kvm_irq_routing *rt = (struct kvm_irq_routing *)buf;
		memset(buf, 0, 8 + 64 * sizeof(struct kvm_irq_routing_entry));
		rt->nr = u8() < 240 ? u8() % 8 : u32() % 64;
		rt->flags = u8() < 240 ? 0 : u32();
		for (uint32_t k = 0; k < rt->nr && k < 64; k++) {
			rt->entries[k].gsi = u8() < 200 ? u8() % 24 : u32();
			rt->entries[k].type = u8() % 4;
			rt->entries[k].u.irqchip.irqchip = u8() % 4;
			rt->entries[k].u.irqchip.pin = u8() % 32;
		}
		C(kvm_set_gsi_routing(fd, rt));
		break;
	}
	case 11:
		memset(&zone, 0, sizeof(zone));
		zone.addr = u8() < 128 ? 0x20000 + (uint64_t)(u8() % 16) * 0x1000 : pick64();
		zone.size = u8() < 128 ? 0x1000 : u32();
		zone.pio = u8() < 224 ? 0 : u8() & 1 ? 1 : u32();
		C(u8() & 1 ? kvm_register_coalesced_mmio(fd, &zone) : kvm_unregister_coalesced_mmio(fd, &zone));
		break;
	case 12:
		/* Drain the ring; entries the guest wrote are at most 8 bytes. */
		for (int k = 0; k < 64 && C(kvm_coalesced_mmio_next(fd, &entry)) == 1; k++)
			if (entry.len > sizeof(entry.data))
				bug("a coalesced MMIO entry longer than its data");
		break;
	case 13:
		memset(&cap, 0, sizeof(cap));
		cap.cap = u8();
		cap.args[0] = u8() < 128 ? u8() : u64();
		if (u8() < 16)
			cap.flags = u32();
		C(u8() & 1 ? kvm_enable_cap(fd, &cap) : kvm_enable_vcpu_cap(&cap));
		break;
	case 14:
		memset(&cl, 0, sizeof(cl));
		cl.slot = u8() < 240 ? u8() % MAX_SLOTS : u32();
		cl.first_page = u8() < 200 ? (uint64_t)(u8() % 4) * 64 : pick64();
		cl.num_pages = u8() < 200 ? 64 : u32();
		memset(buf, 0xff, 512);
		cl.dirty_bitmap = buf;
		C(kvm_clear_dirty_log(fd, &cl));
		break;
	case 15: C(kvm_kvmclock_ctrl()); break;
	}
}

static void *other_thread(void *arg)
{
	(void)arg;
	struct kvm_regs r;
	if (kvm_get_regs(&r) != -1 || errno != ESRCH)
		bug("a thread without a vcpu got past ESRCH");
	int fd = pick_fd(0);
	if (C(kvm_attach_vcpu(fd)) == 0) {
		C(kvm_get_regs(&r));
		if (C(kvm_detach_vcpu()) != 0)
			bug("detach after attach failed");
	}
	return NULL;
}

/* The statistics of a VM or vcpu fd (or of a bad fd): random indexes, names, sizes and
 * NULLs. Oracles: a read never reports more values than there was room for, a size query
 * agrees with the read, a name looks up to its own index. */
static void op_stats(void)
{
	static const char *const names[] = { "exits", "halt_exits", "remote_tlb_flush", "", "exit",
					     "halt_wait_hist" };
	int fd = pick_fd(u8() & 1);
	int index = u8() < 200 ? (int)(u8() % 64) - 1 : (int)u32();
	uint64_t buf[512];
	size_t n = u8() < 200 ? u8() % 160 : u32();
	if (n > 512 && u8() < 250)
		n = 512;
	switch (u8() % 4) {
	case 0: {
		const char *name = CP(kvm_stats_name(fd, index));
		if (name && kvm_stats_lookup(fd, name) != index)
			bug("kvm_stats_lookup of a statistic's name is not its index");
		break;
	}
	case 1: C(kvm_stats_lookup(fd, u8() < 240 ? names[u8() % 6] : NULL)); break;
	case 2: {
		uint32_t flags, size;
		int16_t exp;
		int null = u8() % 8;
		C(kvm_stats_info(fd, index, null == 1 ? NULL : &flags, null == 2 ? NULL : &exp,
				 null == 3 ? NULL : &size));
		break;
	}
	case 3: {
		int all = u8() < 64;
		long count = C(kvm_stats_read(fd, all ? -1 : index, NULL, 0));
		long r = C(kvm_stats_read(fd, all ? -1 : index, n <= 512 && u8() < 240 ? buf : NULL, n));
		if (r >= 0 && (r > (long)n || (count >= 0 && r != count)))
			bug("kvm_stats_read reported more values than fit, or not its size");
		break;
	}
	}
	if (!kvm_exit_reason_name((int)u32()))
		bug("kvm_exit_reason_name returned NULL");
}

static void op_misc(void)
{
	pthread_t t;
	switch (u8() % 7) {
	case 0: C(kvm_check_extension(u8() & 1 ? -1 : pick_fd(1), u8() < 200 ? u8() : (long)u64())); break;
	case 1: C(kvm_attach_vcpu(pick_fd(0))); break;
	case 2: C(kvm_detach_vcpu()); break;
	case 3:
		if (pthread_create(&t, NULL, other_thread, NULL) == 0)
			pthread_join(t, NULL);
		break;
	case 4: C(kvm_get_api_version()); break;
	case 5:
		if (u8() < 128) {
			C(kvm_get_vcpu_mmap_size());
		} else {
			/* No guest_memfd on most hosts: EOPNOTSUPP; else a file to close. */
			int gm = C(kvm_create_guest_memfd(pick_fd(1), u8() < 200 ? 0x10000 : pick64(),
							  u8() < 200 ? u8() & 3 : u64()));
			if (gm >= 0)
				close(gm);
		}
		break;
	case 6: op_stats(); break;
	}
}

/* ---- leak check ------------------------------------------------------------------- */

static int kvm_fds_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[300], target[256];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t len = readlink(path, target, sizeof(target) - 1);
		if (len > 0) {
			target[len] = 0;
			n += strncmp(target, "anon_inode:kvm-", 15) == 0;
			/* libkvm's duplicates of the memfd, beside the fuzzer's own. */
			n += strncmp(target, "/memfd:fuzz", 11) == 0 && atoi(e->d_name) != mem_fd;
		}
	}
	if (d)
		closedir(d);
	return n;
}

static int kvm_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, "kvm-vcpu") != NULL;
	if (f)
		fclose(f);
	return n;
}

/* ---- libFuzzer entry points ------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	efd = eventfd(0, EFD_CLOEXEC);
	mem_fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (mem_fd < 0 || ftruncate(mem_fd, MEM_FD_SIZE) != 0)
		bug("memfd");
	watchdog_init();
	mmap_size = kvm_get_vcpu_mmap_size();
	if (mmap_size <= 0)
		bug("no /dev/kvm");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	in = data;
	in_len = size;
	in_pos = 0;
	runs = 0;
	n_vms = n_vcpus = 0;

	/* Most inputs want a VM, and many a slot at 0 and a vcpu on this thread: the
	 * first byte says which. */
	uint8_t setup = u8();
	op_create_vm();
	if ((setup & 1) && n_vms && C(kvm_set_memory_region(vms[0], 0, 0, 0, 0x10000)) == 0)
		model_update(0, 0, 0, 0, 0x10000);
	if ((setup & 2) && n_vms) {
		int fd = C(kvm_create_vcpu(vms[0], 0));
		if (fd >= 0)
			vcpu_fds[n_vcpus++] = fd;
	}
	for (int calls = 0; calls < MAX_CALLS && more(); calls++) {
		switch (u8() % 23) {
		case 0: op_create_vm(); break;
		case 1: op_destroy_vm(); break;
		case 2: op_set_memory_region(0); break;
		case 3: op_set_memory_region(2); break;
		case 4: op_set_memory_region(1); break;
		case 5: case 6: op_guest_memory(); break;
		case 7: case 8: op_create_vcpu(); break;
		case 9: case 10: op_run(); break;
		case 11: op_regs(); break;
		case 12: op_irq(); break;
		case 13: op_ioctl(); break;
		case 14: case 15: op_alias(); break;
		case 16: op_dirty_log(); break;
		case 17: case 18: op_cpu(); break;
		case 19: case 20: op_snapshot(); break;
		case 21: op_state(); break;
		default: op_misc(); break;
		}
	}

	/* Tear down: this thread's vcpu, then every VM. */
	kvm_detach_vcpu();
	while (n_vms) {
		if (kvm_destroy_vm(vms[0]) != 0)
			bug("kvm_destroy_vm failed at the end of an input");
		forget_vm(0);
	}
	if (kvm_fds_open() || kvm_mappings())
		bug("a KVM fd or mapping remains after the input");
	return 0;
}
