/* kvm_kick_vcpu ends an endless guest loop with EINTR, before or during kvm_run, on any owner; a storm of 100 000 kicks is answered kick by kick. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define KICK_SIGNAL (SIGRTMAX - 3) /* the documented default */
/* Under valgrind (make check-valgrind) every signal costs milliseconds: a smaller storm. */
static unsigned long STORM = 100000;

static int vm, vcpu_fd;
static volatile uint64_t *spin;    /* um_spin's counter, guest 0x3000 */
static volatile uint32_t *rm_count; /* rm_spin's counter, guest 0x3008 */

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int kick_blocked(void)
{
	sigset_t cur;
	CHECK(pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0);
	return sigismember(&cur, KICK_SIGNAL);
}

static void load_spinners(void)
{
	load_blob(vm, 0x4000, BLOB(um_spin));
	load_blob(vm, 0x1000, BLOB(rm_spin));
	spin = kvm_guest_memory(vm, 0x3000, 8);
	rm_count = kvm_guest_memory(vm, 0x3008, 4);
	CHECK(spin && rm_count);
}

/* The calling thread's vcpu spins in ring 3 (natively) at um_spin. */
static void start_user_spin(void)
{
	setup_user_long_mode(vm, 0x10000, 0x4000);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rdi = 0x3000;
	OK(kvm_set_regs(&r));
}

static void expect_eintr(void)
{
	errno = 0;
	int r = kvm_run();
	if (r != -1 || errno != EINTR)
		FAIL("kvm_run returned %d (%s), expected -1/EINTR", r, r == -1 ? strerror(errno) : exit_name(r));
}

static uint64_t rip(void)
{
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	return r.rip;
}

/* A thread that kicks vcpu_fd once *counter has passed `after` (the guest is running). */
struct kicker { volatile void *counter; int wide; uint64_t after; };

static void *kick_later(void *arg)
{
	struct kicker *k = arg;
	double deadline = now() + 10;
	for (;;) {
		uint64_t c = k->wide ? *(volatile uint64_t *)k->counter : *(volatile uint32_t *)k->counter;
		if (c > k->after)
			break;
		if (now() > deadline)
			FAIL("the guest did not run");
		usleep(100);
	}
	OK(kvm_kick_vcpu(vcpu_fd));
	return NULL;
}

static void run_until_kicked(struct kicker *k)
{
	pthread_t t;
	CHECK(pthread_create(&t, NULL, kick_later, k) == 0);
	expect_eintr();
	CHECK(pthread_join(t, NULL) == 0);
}

/* Takes the detached vcpu, checks a pending kick makes its first kvm_run return at once,
 * and that the kick signal is blocked while it owns the vcpu and restored after. */
static void *new_owner(void *arg)
{
	int pre_block = (int)(intptr_t)arg;
	if (pre_block) {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, KICK_SIGNAL);
		CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0);
	}
	CHECK_EQ(kick_blocked(), pre_block);
	OK(kvm_attach_vcpu(vcpu_fd));
	CHECK_EQ(kick_blocked(), 1);
	uint64_t before = *spin, ip = rip();
	expect_eintr();
	CHECK_EQ(*spin, before); /* the guest did not run */
	CHECK_EQ(rip(), ip);
	OK(kvm_detach_vcpu());
	CHECK_EQ(kick_blocked(), pre_block);
	return NULL;
}

/* ---- the storm ------------------------------------------------------------------- */

static atomic_ulong answered;
static atomic_int stop;
static unsigned long not_advanced, advanced;

static void *storm_owner(void *arg)
{
	(void)arg;
	OK(kvm_attach_vcpu(vcpu_fd));
	uint64_t last = *spin;
	while (!atomic_load(&stop)) {
		expect_eintr();
		uint64_t c = *spin;
		if (c == last)
			not_advanced++; /* kicked before the guest counted again */
		else
			advanced++;
		last = c;
		atomic_fetch_add_explicit(&answered, 1, memory_order_release);
	}
	OK(kvm_detach_vcpu());
	return NULL;
}

static void wait_answered(unsigned long n, unsigned long kick)
{
	double deadline = 0;
	for (unsigned long spins = 0;; spins++) {
		unsigned long a = atomic_load_explicit(&answered, memory_order_acquire);
		if (a == n)
			return;
		if (a > n)
			FAIL("kick %lu: %lu EINTRs for %lu kicks", kick, a, n);
		if ((spins & 1023) == 1023) {
			if (deadline == 0)
				deadline = now() + 10;
			else if (now() > deadline)
				FAIL("kick %lu lost: no EINTR after 10 s", kick);
			sched_yield();
		}
	}
}

static void storm(void)
{
	const char *inst = getenv("LIBKVM_TEST_INSTRUMENTED");
	if (inst && strcmp(inst, "valgrind") == 0)
		STORM = 2000;
	pthread_t t;
	CHECK(pthread_create(&t, NULL, storm_owner, NULL) == 0);
	unsigned seed = 12345;
	double t0 = now();
	for (unsigned long i = 0; i < STORM; i++) {
		/* A random moment: right away (often before the owner is back in the guest)
		 * or up to 30 us later (mostly in the guest). */
		if (rand_r(&seed) % 4) {
			double until = now() + (rand_r(&seed) % 30000) * 1e-9;
			while (now() < until)
				;
		}
		OK(kvm_kick_vcpu(vcpu_fd));
		wait_answered(i + 1, i);
		if (i % 1000 == 0)
			watchdog_phase("the storm", 30);
	}
	double t1 = now();
	watchdog_phase("the storm's last kick, to stop", 30);
	atomic_store(&stop, 1);
	OK(kvm_kick_vcpu(vcpu_fd));
	CHECK(pthread_join(t, NULL) == 0);
	CHECK_EQ(atomic_load(&answered), STORM + 1);
	printf("storm: %lu kicks answered by %lu EINTRs (the last to stop); the guest had counted "
	       "on before %lu of them, not before %lu; %.2f s, %.1f us per kick, delay and answer\n",
	       STORM + 1, atomic_load(&answered), advanced, not_advanced, t1 - t0, (t1 - t0) / STORM * 1e6);
	/* Kicks landed at both kinds of moment (under valgrind every kick lands late). */
	if (!inst)
		CHECK(not_advanced > 0 && advanced > 0);
}

int main(void)
{
	require_kvm();
	watchdog_phase("setup", 30);
	vm = vm_with_memory(4 << 20);
	load_spinners();
	CHECK_EQ(kick_blocked(), 0);
	vcpu_fd = OK(kvm_create_vcpu(vm, 0));

	/* The kick signal has libkvm's handler and is blocked on the owning thread. */
	struct sigaction sa;
	CHECK(sigaction(KICK_SIGNAL, NULL, &sa) == 0);
	CHECK(sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
	CHECK(sa.sa_flags & SA_RESTART);
	CHECK_EQ(kick_blocked(), 1);
	CHECK_ERR(kvm_set_kick_signal(SIGUSR1), EBUSY); /* a vcpu exists */
	CHECK_ERR(kvm_set_kick_signal(SIGKILL), EINVAL);

	/* An endless loop in real mode (the instruction emulator), kicked from another
	 * thread. */
	watchdog_phase("a kick of a real-mode loop", 30);
	setup_real_mode(0x1000);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rdi = 0x3008;
	OK(kvm_set_regs(&r));
	struct kicker rk = { rm_count, 0, 10 };
	run_until_kicked(&rk);
	CHECK(*rm_count > 10);
	CHECK(rip() >= 0x1000 && rip() < 0x1000 + (uint64_t)(BLOB(rm_spin).end - BLOB(rm_spin).start));

	/* A kick before kvm_run: the next kvm_run returns at once, the guest does not run. */
	watchdog_phase("kicks before kvm_run", 30);
	start_user_spin();
	OK(kvm_kick_vcpu(vcpu_fd));
	OK(kvm_kick_vcpu(vcpu_fd)); /* kicks before one kvm_run are answered together */
	expect_eintr();
	CHECK_EQ(*spin, 0);
	CHECK_EQ(rip(), 0x4000);

	/* An endless loop in ring 3 (native, on kvm_pvm), kicked likewise. */
	watchdog_phase("kicks of a ring-3 loop", 30);
	struct kicker k = { spin, 1, 1000 };
	run_until_kicked(&k);
	uint64_t ip = rip();
	CHECK(*spin > 1000);
	CHECK(ip >= 0x4000 && ip < 0x4000 + (uint64_t)(BLOB(um_spin).end - BLOB(um_spin).start));
	/* The kick was answered: the guest runs again until the next kick. */
	k.after = *spin + 1000;
	run_until_kicked(&k);

	/* A kick of a detached vcpu waits for its next owner's first kvm_run, on a thread
	 * that had the kick signal unblocked and on one that had it blocked already. */
	watchdog_phase("kicks of a detached vcpu, answered by its next owners", 30);
	start_user_spin();
	OK(kvm_detach_vcpu());
	CHECK_EQ(kick_blocked(), 0); /* restored */
	for (intptr_t pre_block = 0; pre_block < 2; pre_block++) {
		OK(kvm_kick_vcpu(vcpu_fd));
		pthread_t t;
		CHECK(pthread_create(&t, NULL, new_owner, (void *)pre_block) == 0);
		CHECK(pthread_join(t, NULL) == 0);
	}

	/* A kick lands on the vcpu it names: another vcpu of the VM is not disturbed. */
	watchdog_phase("a kick of another vcpu, and one between an I/O exit and kvm_run", 30);
	int fd1 = OK(kvm_create_vcpu(vm, 1));
	setup_real_mode(0x1000);
	load_blob(vm, 0x2000, BLOB(rm_store_halt));
	OK(kvm_get_regs(&r));
	r.rip = 0x2000;
	r.rdi = 0x3010;
	r.rax = 0xfeed;
	OK(kvm_set_regs(&r));
	OK(kvm_kick_vcpu(vcpu_fd));
	run_expect(KVM_EXIT_HLT);
	CHECK_EQ(*(volatile uint32_t *)kvm_guest_memory(vm, 0x3010, 4), 0xfeed);
	/* A kick between an I/O read exit and the next kvm_run: the EINTR completes the
	 * read with the data supplied, without running on; the next kvm_run goes on. */
	load_blob(vm, 0x2100, BLOB(rm_in_echo));
	OK(kvm_get_regs(&r));
	r.rip = 0x2100;
	OK(kvm_set_regs(&r));
	run_expect(KVM_EXIT_IO);
	struct kvm_run *run = kvm_run_area();
	CHECK_EQ(run->io.direction, KVM_EXIT_IO_IN);
	*((uint8_t *)run + run->io.data_offset) = 0x5a;
	OK(kvm_kick_vcpu(fd1));
	expect_eintr();
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rip, 0x2102); /* past the `in`, not past the `out` */
	CHECK_EQ(r.rax & 0xff, 0x5a);
	CHECK_EQ(run_until_out(0x13), 0x5a);
	OK(kvm_detach_vcpu());
	OK(kvm_attach_vcpu(vcpu_fd));
	expect_eintr(); /* ... and vcpu 0 still has its kick */
	OK(kvm_detach_vcpu());

	storm();

	/* Kicking what is not a libkvm vcpu. */
	watchdog_phase("kicking what is not a vcpu", 30);
	int efd = eventfd(0, EFD_CLOEXEC);
	CHECK(efd >= 0);
	CHECK_ERR(kvm_kick_vcpu(-1), EBADF);
	CHECK_ERR(kvm_kick_vcpu(vm), EBADF);
	CHECK_ERR(kvm_kick_vcpu(efd), EBADF);
	CHECK_ERR(kvm_kick_vcpu(1000), EBADF);
	close(efd);
	OK(kvm_destroy_vm(vm));
	CHECK_ERR(kvm_kick_vcpu(vcpu_fd), EBADF);
	return 0;
}
