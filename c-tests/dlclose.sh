# A program that dlopens libkvm, runs a guest on a vcpu thread, dlcloses libkvm and then takes libkvm's kick signal survives (libkvm stays loaded, -z nodelete), and a second dlopen runs a guest again.
# The program is not linked with libkvm (a linked library is never unloaded): it reaches
# every function through dlsym. Before -z nodelete, dlclose unmapped the library while
# the kick-signal handler it had installed stayed in force, and the signal killed the
# process (SIGSEGV). The vcpu runs on a thread that exits before dlclose: while a thread
# that used libkvm lives, its thread-local destructors keep the library loaded anyway.
set -eu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "no usable /dev/kvm"; exit 77; }
cat > "$tmp/dl.c" <<'C'
#define _GNU_SOURCE
#include <linux/kvm.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

extern const unsigned char hello_guest_start[], hello_guest_end[];

#define FN(ret, name, args) ret(*name) args = (ret(*) args)dlsym(h, #name); \
	if (!name) { fprintf(stderr, "dlsym %s: %s\n", #name, dlerror()); return -1; }

static char out[256];

/* Runs the hello guest (examples/hello-guest.S) to its hlt on this thread, collecting
 * what it writes to the UART in out[]. 0 on success, -1 on failure. */
static int run_guest(void *h)
{
	FN(int, kvm_create_vm, (void));
	FN(int, kvm_set_memory_region, (int, unsigned, unsigned, unsigned long long, unsigned long long));
	FN(void *, kvm_guest_memory, (int, unsigned long long, size_t));
	FN(int, kvm_create_vcpu, (int, unsigned));
	FN(int, kvm_get_sregs, (struct kvm_sregs *));
	FN(int, kvm_set_sregs, (const struct kvm_sregs *));
	FN(int, kvm_set_regs, (const struct kvm_regs *));
	FN(int, kvm_run, (void));
	FN(struct kvm_run *, kvm_run_area, (void));
	FN(int, kvm_detach_vcpu, (void));
	FN(int, kvm_destroy_vm, (int));
	int vm = kvm_create_vm();
	size_t len = (size_t)(hello_guest_end - hello_guest_start);
	if (vm < 0 || kvm_set_memory_region(vm, 0, 0, 0, 0x10000) != 0) return -1;
	memcpy(kvm_guest_memory(vm, 0x1000, len), hello_guest_start, len);
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
	if (kvm_create_vcpu(vm, 0) < 0 || kvm_get_sregs(&sregs) != 0) return -1;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (kvm_set_sregs(&sregs) != 0 || kvm_set_regs(&regs) != 0) return -1;
	struct kvm_run *run = kvm_run_area();
	size_t n = 0;
	int reason;
	memset(out, 0, sizeof(out));
	while ((reason = kvm_run()) == KVM_EXIT_IO && run->io.port == 0x3f8 && n < sizeof(out) - 1)
		out[n++] = *((char *)run + run->io.data_offset);
	if (reason != KVM_EXIT_HLT) { fprintf(stderr, "exit %d\n", reason); return -1; }
	if (kvm_detach_vcpu() != 0 || kvm_destroy_vm(vm) != 0) return -1;
	return strncmp(out, "Hello from a libkvm guest", 25) == 0 ? 0 : -1;
}

static void *vcpu_thread(void *h)
{
	return (void *)(intptr_t)run_guest(h);
}

/* Loads libkvm, runs the guest on a thread of its own (as a VMM runs its vcpus; the
 * thread's exit releases what libkvm kept for it), and unloads libkvm. */
static int load_run_unload(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL), *r;
	pthread_t t;
	if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return -1; }
	if (pthread_create(&t, NULL, vcpu_thread, h) != 0 || pthread_join(t, &r) != 0 || r) return -1;
	if (dlclose(h) != 0) { fprintf(stderr, "dlclose: %s\n", dlerror()); return -1; }
	return 0;
}

int main(int argc, char **argv)
{
	(void)argc;
	if (load_run_unload(argv[1]) != 0) { fprintf(stderr, "first guest: got \"%s\"\n", out); return 1; }
	/* libkvm's default kick signal, SIGRTMAX - 3 (libkvm(7)): its handler stays in force. */
	raise(SIGRTMAX - 3);
	printf("survived signal %d after dlclose\n", SIGRTMAX - 3);
	if (load_run_unload(argv[1]) != 0) { fprintf(stderr, "second guest: got \"%s\"\n", out); return 1; }
	printf("the guest greeted again after a second dlopen: %s", out);
	return 0;
}
C
${CC:-cc} -Wall -Wextra -Werror -Iinclude -o "$tmp/dl" "$tmp/dl.c" examples/hello-guest.S -ldl -pthread
"$tmp/dl" "$PWD/build/libkvm.so.1"
