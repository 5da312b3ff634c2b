/* Every bad input of the foundation's functions gets the errno its man page names. */
#include "harness.h"
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

static int cases;
#define BAD(call, err) do { CHECK_ERR(call, err); cases++; } while (0)

static int vm, vcpu_fd;

static void *no_vcpu_thread(void *arg)
{
	(void)arg;
	struct kvm_regs r;
	struct kvm_sregs s;
	BAD(kvm_run(), ESRCH);
	BAD(kvm_run_area(), ESRCH);
	BAD(kvm_get_regs(&r), ESRCH);
	BAD(kvm_set_regs(&r), ESRCH);
	BAD(kvm_get_sregs(&s), ESRCH);
	BAD(kvm_set_sregs(&s), ESRCH);
	BAD(kvm_detach_vcpu(), ESRCH);
	/* Owned by the main thread. */
	BAD(kvm_attach_vcpu(vcpu_fd), EBUSY);
	return NULL;
}

int main(void)
{
	require_kvm();
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(devnull >= 0);
	int closed = dup(devnull);
	close(closed);

	/* Not a VM: closed fd, non-KVM fd, -1, a huge number. */
	int not_vms[] = { closed, devnull, -1, 1 << 30 };
	for (unsigned i = 0; i < sizeof(not_vms) / sizeof(not_vms[0]); i++) {
		int fd = not_vms[i];
		if (fd != -1)
			BAD(kvm_check_extension(fd, KVM_CAP_USER_MEMORY), EBADF);
		BAD(kvm_destroy_vm(fd), EBADF);
		BAD(kvm_set_memory_region(fd, 0, 0, 0, 4096), EBADF);
		BAD(kvm_set_user_memory_region(fd, 0, 0, 0, 4096, &cases), EBADF);
		BAD(kvm_guest_memory(fd, 0, 1), EBADF);
		BAD(kvm_create_vcpu(fd, 0), EBADF);
		BAD(kvm_attach_vcpu(fd), EBADF);
	}

	vm = OK(kvm_create_vm());
	CHECK(fcntl(vm, F_GETFD) & FD_CLOEXEC);
	CHECK(kvm_check_extension(-1, KVM_CAP_USER_MEMORY) > 0);
	CHECK(kvm_check_extension(vm, KVM_CAP_USER_MEMORY) > 0);
	CHECK_EQ(kvm_check_extension(vm, 0x7fffffff), 0);

	/* Memory regions. */
	BAD(kvm_set_memory_region(vm, 0, 0, 0x1001, 4096), EINVAL);      /* misaligned address */
	BAD(kvm_set_memory_region(vm, 0, 0, 0, 4097), EINVAL);           /* misaligned size */
	BAD(kvm_set_memory_region(vm, 0, 0, -4096ULL, 8192), EINVAL);    /* wraps past 2^64 */
	BAD(kvm_set_memory_region(vm, 0, 0x80, 0, 4096), EINVAL);        /* unknown flag */
	BAD(kvm_set_memory_region(vm, 1u << 20, 0, 0, 4096), EINVAL);    /* slot out of range */
	BAD(kvm_set_memory_region(vm, 0x7fffffff, 0, 0, 4096), EINVAL);
	BAD(kvm_set_memory_region(vm, 3, 0, 0, 0), ENOENT);              /* delete unknown slot */
	OK(kvm_set_memory_region(vm, 0, 0, 0x10000, 0x10000));
	BAD(kvm_set_memory_region(vm, 1, 0, 0x18000, 0x10000), EEXIST);  /* overlaps slot 0 */
	BAD(kvm_set_memory_region(vm, 1, 0, 0x8000, 0x10000), EEXIST);
	BAD(kvm_set_memory_region(vm, 1, 0, 0, 0x100000), EEXIST);       /* contains slot 0 */
	BAD(kvm_set_memory_region(vm, 0, 0, 0x10000, 0x20000), EINVAL);  /* resize */
	OK(kvm_set_memory_region(vm, 1, 0, 0x20000, 0x1000));           /* adjacent is fine */

	void *mem = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED);
	BAD(kvm_set_user_memory_region(vm, 2, 0, 0x40000, 0x1000, NULL), EFAULT);
	BAD(kvm_set_user_memory_region(vm, 2, 0, 0x40000, 0x1000, (char *)mem + 1), EINVAL);
	BAD(kvm_set_user_memory_region(vm, 2, 0, 0x40000, 0x1001, mem), EINVAL);
	BAD(kvm_set_user_memory_region(vm, 2, 0, 0x10000, 0x1000, mem), EEXIST);
	BAD(kvm_set_user_memory_region(vm, 2, 0, 0x40000, 0x1000, (void *)-4096L), EINVAL);
	OK(kvm_set_user_memory_region(vm, 2, 0, 0x40000, 0x2000, mem));
	BAD(kvm_set_user_memory_region(vm, 2, 0, 0x40000, 0x2000, (char *)mem + 4096), EINVAL);
	BAD(kvm_set_memory_region(vm, 2, 0, 0x40000, 0x2000), EINVAL);   /* now libkvm's? no */

	/* Guest memory lookups stay inside one slot. */
	BAD(kvm_guest_memory(vm, 0, 1), EFAULT);
	BAD(kvm_guest_memory(vm, 0xffff, 2), EFAULT);
	BAD(kvm_guest_memory(vm, 0x1ffff, 2), EFAULT);                  /* slot 0's last byte + 1 */
	BAD(kvm_guest_memory(vm, 0x10000, 0x10001), EFAULT);
	BAD(kvm_guest_memory(vm, 0x10000, 0), EFAULT);
	BAD(kvm_guest_memory(vm, -1ULL, 1), EFAULT);
	BAD(kvm_guest_memory(vm, 0x10000, -1ULL), EFAULT);
	BAD(kvm_guest_memory(vm, 0x1f000, 0x2000), EFAULT);             /* spans slots 0 and 1 */
	CHECK(kvm_guest_memory(vm, 0x1ffff, 1) != NULL);
	CHECK(kvm_guest_memory(vm, 0x40000, 0x2000) == mem);

	/* vcpus. */
	BAD(kvm_create_vcpu(vm, 100000), EINVAL);
	vcpu_fd = OK(kvm_create_vcpu(vm, 0));
	CHECK(fcntl(vcpu_fd, F_GETFD) & FD_CLOEXEC);
	BAD(kvm_create_vcpu(vm, 1), EBUSY);                              /* second on a thread */
	BAD(kvm_attach_vcpu(vcpu_fd), EBUSY);
	BAD(kvm_attach_vcpu(vm), EBADF);                                 /* a VM, not a vcpu */
	BAD(kvm_destroy_vm(vcpu_fd), EBADF);                             /* a vcpu, not a VM */
	BAD(kvm_set_memory_region(vcpu_fd, 5, 0, 0x100000, 4096), EBADF);
	BAD(kvm_get_regs(NULL), EFAULT);
	BAD(kvm_set_regs(NULL), EFAULT);
	BAD(kvm_get_sregs(NULL), EFAULT);
	BAD(kvm_set_sregs(NULL), EFAULT);
	struct kvm_sregs s;
	OK(kvm_get_sregs(&s));
	s.efer = 0x500;  /* long mode active without paging or PAE: the kernel refuses it */
	BAD(kvm_set_sregs(&s), EINVAL);
	BAD(kvm_destroy_vm(vm), EBUSY);                                  /* attached */

	pthread_t t;
	CHECK(pthread_create(&t, NULL, no_vcpu_thread, NULL) == 0);
	CHECK(pthread_join(t, NULL) == 0);

	OK(kvm_detach_vcpu());
	OK(kvm_attach_vcpu(vcpu_fd));
	OK(kvm_detach_vcpu());
	BAD(kvm_create_vcpu(vm, 0), EEXIST);                             /* id in use */
	OK(kvm_set_memory_region(vm, 1, 0, 0, 0));                       /* delete */
	BAD(kvm_set_memory_region(vm, 1, 0, 0, 0), ENOENT);
	OK(kvm_destroy_vm(vm));

	/* After destroy the fds are no longer libkvm's. */
	BAD(kvm_destroy_vm(vm), EBADF);
	BAD(kvm_set_memory_region(vm, 0, 0, 0, 4096), EBADF);
	BAD(kvm_guest_memory(vm, 0x10000, 1), EBADF);
	BAD(kvm_create_vcpu(vm, 1), EBADF);
	BAD(kvm_attach_vcpu(vcpu_fd), EBADF);
	BAD(kvm_check_extension(vm, KVM_CAP_USER_MEMORY), EBADF);

	munmap(mem, 0x2000);
	printf("%d bad-input cases checked\n", cases);
	return 0;
}
