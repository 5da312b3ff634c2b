/* kvm_run fails with EINTR (a kick of the caller's own vcpu), EFAULT (a slot's host memory unmapped) and EINVAL (a CR8 above 15 in the run area), and kvm_kick_vcpu with EAGAIN when its signal cannot be queued, the kick still not lost. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static uint64_t rip(void)
{
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	return r.rip;
}

/* A kick of the caller's own vcpu before kvm_run: the run returns EINTR before the
 * guest does anything, and the next one runs it. */
static void eintr(void)
{
	int vm = vm_with_memory(0x10000);
	int fd = OK(kvm_create_vcpu(vm, 0));
	load_blob(vm, 0x1000, BLOB(rm_report42));
	setup_real_mode(0x1000);
	OK(kvm_kick_vcpu(fd));
	CHECK_ERR(kvm_run(), EINTR);
	CHECK_EQ(rip(), 0x1000);
	CHECK_EQ(run_until_out(0x10), 42);
	end_vm(vm);
}

/* Without an in-kernel local APIC the kernel takes CR8 from the run area on every
 * entry, and refuses a value above 15 (reserved bits) without running the guest. */
static void einval(void)
{
	int vm = vm_with_memory(0x10000);
	OK(kvm_create_vcpu(vm, 0));
	load_blob(vm, 0x1000, BLOB(rm_report42));
	setup_real_mode(0x1000);
	kvm_run_area()->cr8 = 16;
	CHECK_ERR(kvm_run(), EINVAL);
	CHECK_EQ(rip(), 0x1000);
	kvm_run_area()->cr8 = 0;
	CHECK_EQ(run_until_out(0x10), 42);
	end_vm(vm);
}

/* A slot of the caller's memory (guest 0x200000) that the guest reads once while it is
 * mapped, and again after the caller unmapped it: the kernel finds no page behind the
 * slot and KVM_RUN fails with EFAULT. The guest runs in ring 3, natively (paged), so
 * the access goes through KVM's page-fault path rather than the instruction emulator
 * (which would turn a failed read into an MMIO exit). */
static void efault(void)
{
	int vm = vm_with_memory(0x100000);
	OK(kvm_create_vcpu(vm, 0));
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *host = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(host != MAP_FAILED);
	host[0] = 0x5a;
	OK(kvm_set_user_memory_region(vm, 1, 0, 0x200000, page, host));
	load_blob(vm, 0x4000, BLOB(um_load_report));
	struct kvm_regs r;
	for (int pass = 0; pass < 2; pass++) {
		setup_user_long_mode(vm, 0x10000, 0x4000);
		OK(kvm_get_regs(&r));
		r.rdi = 0x200000;
		OK(kvm_set_regs(&r));
		if (pass == 0) {
			CHECK_EQ(run_until_out(0x10), 0x5a);
		} else {
			CHECK(munmap(host, page) == 0);
			CHECK_ERR(kvm_run(), EFAULT);
			/* The read did not complete: the guest is still at its first
			 * instruction. */
			CHECK_EQ(rip(), 0x4000);
		}
	}
	OK(kvm_set_user_memory_region(vm, 1, 0, 0x200000, 0, host));
	end_vm(vm);
}

/* kvm_kick_vcpu of a vcpu whose owner is outside kvm_run while no signal can be queued
 * (RLIMIT_SIGPENDING 0: the kernel refuses to queue a real-time signal sent by tgkill
 * with EAGAIN): EAGAIN, but the kick is recorded, so the owner's next kvm_run returns
 * EINTR at once. */
static int owner_vm, owner_fd;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int stage;

static void wait_stage(int s)
{
	pthread_mutex_lock(&lock);
	while (stage < s)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
}
static void set_stage(int s)
{
	pthread_mutex_lock(&lock);
	stage = s;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static void *owner(void *arg)
{
	(void)arg;
	owner_fd = OK(kvm_create_vcpu(owner_vm, 0));
	setup_real_mode(0x1000);
	set_stage(1);
	wait_stage(2);
	CHECK_ERR(kvm_run(), EINTR);
	CHECK_EQ(rip(), 0x1000);
	CHECK_EQ(run_until_out(0x10), 42);
	OK(kvm_detach_vcpu());
	return NULL;
}

static void kick_eagain(void)
{
	owner_vm = vm_with_memory(0x10000);
	load_blob(owner_vm, 0x1000, BLOB(rm_report42));
	pthread_t t;
	CHECK(pthread_create(&t, NULL, owner, NULL) == 0);
	wait_stage(1);
	struct rlimit old, none = { 0, 0 };
	CHECK(getrlimit(RLIMIT_SIGPENDING, &old) == 0);
	none.rlim_max = old.rlim_max;
	CHECK(setrlimit(RLIMIT_SIGPENDING, &none) == 0);
	CHECK_ERR(kvm_kick_vcpu(owner_fd), EAGAIN);
	CHECK(setrlimit(RLIMIT_SIGPENDING, &old) == 0);
	set_stage(2);
	CHECK(pthread_join(t, NULL) == 0);
	OK(kvm_destroy_vm(owner_vm));
}

int main(void)
{
	require_kvm();
	eintr();
	einval();
	efault();
	kick_eagain();
	printf("kvm_run: EINTR, EINVAL, EFAULT; kvm_kick_vcpu: EAGAIN, kick kept\n");
	return 0;
}
