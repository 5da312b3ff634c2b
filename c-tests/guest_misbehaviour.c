/* Guests that triple-fault, execute garbage, touch unmapped or read-only memory or loop forever get a defined exit; the host is unharmed. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static int vm;
static struct kvm_sregs initial_sregs;

/* The vcpu as it was created (a misbehaving guest may have changed anything), ready to
 * start at `ip` in real mode. */
static void reset_vcpu(uint16_t ip)
{
	OK(kvm_set_sregs(&initial_sregs));
	struct kvm_vcpu_events ev;
	OK(kvm_get_vcpu_events(&ev));
	memset(&ev.exception, 0, sizeof(ev.exception));
	memset(&ev.interrupt, 0, sizeof(ev.interrupt));
	memset(&ev.nmi, 0, sizeof(ev.nmi));
	ev.flags = 0;
	OK(kvm_set_vcpu_events(&ev));
	setup_real_mode(ip);
}

/* Loads `b` at 0x1000 in real mode; the vcpu is the calling thread's. */
static void real_mode_guest(struct blob b)
{
	load_blob(vm, 0x1000, b);
	reset_vcpu(0x1000);
}

/* Protected mode with an IDT of limit 0: no exception can be delivered. */
static void protected_mode_guest_without_idt(struct blob b)
{
	load_blob(vm, 0x1000, b);
	reset_vcpu(0x1000);
	setup_protected_mode(0x1000);
	EDIT_SREGS(s, s.idt.base = 0; s.idt.limit = 0);
}

/* After any misbehaviour the same vcpu runs a well-behaved guest again. */
static void still_works(void)
{
	real_mode_guest(BLOB(mb_ok));
	CHECK_EQ(run_until_out(0x12), 0x42);
	run_expect(KVM_EXIT_HLT);
}

static void triple_fault(void)
{
	protected_mode_guest_without_idt(BLOB(mb_ud2));
	run_expect(KVM_EXIT_SHUTDOWN);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rip, 0x1000); /* at the ud2 */
	still_works();
}

static void garbage(void)
{
	/* An instruction the guest may not or KVM cannot execute. Where the guest runs
	 * through KVM's instruction emulator (this host), that is an internal error exit
	 * naming the instruction; on hardware it is #UD, which without an IDT ends in a
	 * triple fault. */
	protected_mode_guest_without_idt(BLOB(mb_xgetbv));
	int r = kvm_run();
	struct kvm_run *run = kvm_run_area();
	if (r == KVM_EXIT_INTERNAL_ERROR) {
		CHECK_EQ(run->emulation_failure.suberror, KVM_INTERNAL_ERROR_EMULATION);
		struct kvm_regs regs;
		OK(kvm_get_regs(&regs));
		CHECK_EQ(regs.rip, 0x1002); /* after the xor, at the xgetbv */
		/* Where KVM reports the bytes it could not execute: 0f 01 d0, xgetbv. */
		if (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) {
			CHECK(run->emulation_failure.insn_size >= 3);
			CHECK(memcmp(run->emulation_failure.insn_bytes, "\x0f\x01\xd0", 3) == 0);
		}
		printf("garbage: KVM_EXIT_INTERNAL_ERROR, emulation failure at xgetbv\n");
	} else {
		CHECK_EQ(r, KVM_EXIT_SHUTDOWN);
		printf("garbage: KVM_EXIT_SHUTDOWN (#UD without an IDT)\n");
	}
	still_works();

	/* Random bytes, several seeds: whatever the guest does ends in a defined exit or
	 * in the watchdog's EINTR; the host process carries on. */
	int seen[64] = { 0 }, intr = 0;
	for (unsigned seed = 1; seed <= 64; seed++) {
		uint8_t *mem = kvm_guest_memory(vm, 0, 0x10000);
		CHECK(mem != NULL);
		srandom(seed);
		for (int i = 0; i < 0x10000; i++)
			mem[i] = (uint8_t)random();
		reset_vcpu(0x1000);
		watchdog_start(20);
		for (int n = 0; n < 20; n++) {
			r = kvm_run();
			if (r == -1) {
				CHECK_EQ(errno, EINTR);
				intr++;
				break;
			}
			CHECK(r >= 0 && r < 64);
			seen[r]++;
			if (r == KVM_EXIT_SHUTDOWN || r == KVM_EXIT_INTERNAL_ERROR ||
			    r == KVM_EXIT_FAIL_ENTRY)
				break; /* the vcpu needs new state */
			CHECK(r == KVM_EXIT_IO || r == KVM_EXIT_MMIO || r == KVM_EXIT_HLT);
			if (r == KVM_EXIT_IO) {
				uint64_t size = (uint64_t)kvm_get_vcpu_mmap_size();
				CHECK(run->io.data_offset <= size);
				CHECK((uint64_t)run->io.size * run->io.count <= size - run->io.data_offset);
			}
			if (r == KVM_EXIT_MMIO)
				CHECK(run->mmio.len <= 8);
		}
		watchdog_stop();
	}
	printf("random guests: %d interrupted by the watchdog; exits:", intr);
	for (int i = 0; i < 64; i++)
		if (seen[i])
			printf(" %s %d", exit_name(i), seen[i]);
	printf("\n");
	memset(kvm_guest_memory(vm, 0, 0x10000), 0, 0x10000);
	still_works();
}

static void unmapped_memory(void)
{
	/* No slot at 0x20000: every access is an MMIO exit with its address, size,
	 * direction and (for writes) data; reads take the data the host puts there. */
	real_mode_guest(BLOB(mb_touch));
	struct kvm_run *run = kvm_run_area();
	static const struct { uint64_t addr; uint32_t len; uint32_t data; } writes[] = {
		{ 0x20010, 1, 0x5a }, { 0x20020, 2, 0x1234 }, { 0x20040, 4, 0xdeadbeef },
	};
	for (unsigned i = 0; i < 3; i++) {
		run_expect(KVM_EXIT_MMIO);
		check_mmio(writes[i].addr, writes[i].len, 1);
		uint32_t v = 0;
		memcpy(&v, run->mmio.data, writes[i].len);
		CHECK_EQ(v, writes[i].data);
	}
	run_expect(KVM_EXIT_MMIO);
	check_mmio(0x20080, 4, 0);
	memcpy(run->mmio.data, "\x78\x56\x34\x12", 4);
	CHECK_EQ(run_until_out(0x10), 0x12345678);
	run_expect(KVM_EXIT_MMIO);
	check_mmio(0x20010, 1, 0);
	run->mmio.data[0] = 0x99;
	CHECK_EQ(run_until_out(0x11), 0x99);
	run_expect(KVM_EXIT_HLT);
}

static void read_only_slot(void)
{
	if (kvm_check_extension(vm, KVM_CAP_READONLY_MEM) <= 0) {
		skip_section("read-only slot", "KVM_CAP_READONLY_MEM is 0");
		return;
	}
	OK(kvm_set_memory_region(vm, 1, KVM_MEM_READONLY, 0x20000, 0x1000));
	uint8_t *ro = kvm_guest_memory(vm, 0x20000, 0x1000);
	CHECK(ro != NULL);
	memset(ro, 0x11, 0x1000);
	real_mode_guest(BLOB(mb_touch));
	/* Writes exit as MMIO writes and change nothing... */
	static const struct { uint64_t addr; uint32_t len; } writes[] = {
		{ 0x20010, 1 }, { 0x20020, 2 }, { 0x20040, 4 },
	};
	for (unsigned i = 0; i < 3; i++) {
		run_expect(KVM_EXIT_MMIO);
		check_mmio(writes[i].addr, writes[i].len, 1);
	}
	/* ...and reads come from the memory, with no exit. */
	CHECK_EQ(run_until_out(0x10), 0x11111111);
	CHECK_EQ(run_until_out(0x11), 0x11);
	run_expect(KVM_EXIT_HLT);
	for (int i = 0; i < 0x1000; i++)
		if (ro[i] != 0x11)
			FAIL("read-only guest memory changed at 0x%x", 0x20000 + i);
	OK(kvm_set_memory_region(vm, 1, 0, 0, 0));
}

/* ---- loops forever, stopped by a signal of the application and by the kick ------ */

static volatile int looping_returned;
static int loop_errno;
static pthread_t looper;

static void on_usr1(int sig)
{
	(void)sig;
}

static void *loop_forever(void *arg)
{
	int vcpu_fd = (int)(intptr_t)arg;
	OK(kvm_attach_vcpu(vcpu_fd));
	real_mode_guest(BLOB(mb_loop));
	int r = kvm_run();
	loop_errno = errno;
	__atomic_store_n(&looping_returned, r == -1 ? 1 : 2, __ATOMIC_SEQ_CST);
	/* The guest is still in its loop; the vcpu is fine. */
	struct kvm_regs regs;
	OK(kvm_get_regs(&regs));
	CHECK_EQ(regs.rip, 0x1000);
	still_works();
	OK(kvm_detach_vcpu());
	return NULL;
}

/* The same loop, stopped with libkvm's kick from this thread. */
static void kicked_loop(int vcpu_fd)
{
	__atomic_store_n(&looping_returned, 0, __ATOMIC_SEQ_CST);
	OK(kvm_detach_vcpu());
	CHECK(pthread_create(&looper, NULL, loop_forever, (void *)(intptr_t)vcpu_fd) == 0);
	usleep(50000);
	CHECK_EQ(__atomic_load_n(&looping_returned, __ATOMIC_SEQ_CST), 0);
	OK(kvm_kick_vcpu(vcpu_fd));
	CHECK(pthread_join(looper, NULL) == 0);
	CHECK_EQ(looping_returned, 1);
	CHECK_EQ(loop_errno, EINTR);
	printf("endless loop: kvm_kick_vcpu made kvm_run return -1/EINTR\n");
	OK(kvm_attach_vcpu(vcpu_fd));
}

static void endless_loop(int vcpu_fd)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1; /* no SA_RESTART: KVM_RUN is never restarted anyway */
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	OK(kvm_detach_vcpu());
	CHECK(pthread_create(&looper, NULL, loop_forever, (void *)(intptr_t)vcpu_fd) == 0);
	/* Let it spin a while, then kick until kvm_run returns. */
	usleep(50000);
	CHECK_EQ(__atomic_load_n(&looping_returned, __ATOMIC_SEQ_CST), 0);
	int kicks = 0;
	while (!__atomic_load_n(&looping_returned, __ATOMIC_SEQ_CST)) {
		CHECK(pthread_kill(looper, SIGUSR1) == 0);
		kicks++;
		usleep(1000);
	}
	CHECK(pthread_join(looper, NULL) == 0);
	CHECK_EQ(looping_returned, 1);
	CHECK_EQ(loop_errno, EINTR);
	printf("endless loop: kvm_run returned -1/EINTR after %d kick(s)\n", kicks);
	OK(kvm_attach_vcpu(vcpu_fd));
}

int main(void)
{
	require_kvm();
	vm = vm_with_memory(0x10000);
	int vcpu_fd = OK(kvm_create_vcpu(vm, 0));
	OK(kvm_get_sregs(&initial_sregs));
	triple_fault();
	garbage();
	unmapped_memory();
	read_only_slot();
	endless_loop(vcpu_fd);
	kicked_loop(vcpu_fd);
	still_works();
	end_vm(vm);
	return 0;
}
