/* The smallest libkvm program: one VM, 64 KiB of guest memory, one vcpu on this thread
 * running a real-mode guest that greets through the serial port. Build it against an
 * installed libkvm with:
 *   cc hello.c hello-guest.S $(pkg-config --cflags --libs libkvm) */
#include <libkvm.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

extern const unsigned char hello_guest_start[], hello_guest_end[];

static int fail(const char *what)
{
	fprintf(stderr, "hello: %s: %s\n", what, strerror(errno));
	return 1;
}

int main(void)
{
	int vm = kvm_create_vm();
	if (vm < 0)
		return fail("kvm_create_vm");
	if (kvm_set_memory_region(vm, 0, 0, 0, 0x10000) < 0)
		return fail("kvm_set_memory_region");
	size_t len = (size_t)(hello_guest_end - hello_guest_start);
	void *code = kvm_guest_memory(vm, 0x1000, len);
	if (!code)
		return fail("kvm_guest_memory");
	memcpy(code, hello_guest_start, len);

	if (kvm_create_vcpu(vm, 0) < 0)
		return fail("kvm_create_vcpu");
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
	if (kvm_get_sregs(&sregs) < 0)
		return fail("kvm_get_sregs");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (kvm_set_sregs(&sregs) < 0 || kvm_set_regs(&regs) < 0)
		return fail("setting registers");

	struct kvm_run *run = kvm_run_area();
	unsigned long exits = 0;
	for (;;) {
		int reason = kvm_run();
		if (reason < 0)
			return fail("kvm_run");
		exits++;
		if (reason == KVM_EXIT_HLT)
			break;
		if (reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x3f8) {
			fwrite((char *)run + run->io.data_offset, run->io.size, run->io.count, stdout);
			continue;
		}
		fprintf(stderr, "hello: unexpected exit %d\n", reason);
		return 1;
	}
	if (kvm_get_regs(&regs) < 0)
		return fail("kvm_get_regs");
	printf("guest halted at rip 0x%llx after %lu exits\n", (unsigned long long)regs.rip, exits);
	kvm_detach_vcpu();
	return kvm_destroy_vm(vm) < 0 ? fail("kvm_destroy_vm") : 0;
}
