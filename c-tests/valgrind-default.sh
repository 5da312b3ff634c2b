# Under valgrind's default settings (--leak-check=full --error-exitcode=1, no suppressions), programs that create and destroy a VM (also with memory, vcpus on two threads and a guest run) exit 0: nothing is "definitely" or "possibly" lost.
set -eu
cc=${CC:-cc}
if ! command -v valgrind > /dev/null; then
  echo "SKIP: valgrind is not installed (make deps-valgrind)"; exit 77
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then echo "SKIP: /dev/kvm is not usable here"; exit 77; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# What a user writes: the smallest program, one VM created and destroyed.
cat > "$tmp/one_vm.c" <<'EOF'
#include <libkvm.h>
int main(void)
{
	int vm = kvm_create_vm();
	if (vm < 0)
		return 2;
	return kvm_destroy_vm(vm) == 0 ? 0 : 3;
}
EOF

# More of the library: memory, a guest run, a vcpu moved to a thread that exits owning
# it, a kick, and a second VM.
cat > "$tmp/more.c" <<'EOF'
#include <libkvm.h>
#include <pthread.h>
#include <string.h>

static int vcpu_fd;

static void *owner(void *arg)
{
	(void)arg;
	if (kvm_attach_vcpu(vcpu_fd) != 0 || kvm_kick_vcpu(vcpu_fd) != 0 || kvm_run() != -1)
		return (void *)1;
	return NULL; /* exits owning the vcpu */
}

int main(void)
{
	static const unsigned char code[] = { 0xb0, 'x', 0xe6, 0x10, 0xf4 }; /* out; hlt */
	for (int round = 0; round < 2; round++) {
		int vm = kvm_create_vm();
		if (vm < 0 || kvm_set_memory_region(vm, 0, 0, 0, 0x10000) != 0)
			return 2;
		memcpy(kvm_guest_memory(vm, 0x1000, sizeof(code)), code, sizeof(code));
		vcpu_fd = kvm_create_vcpu(vm, 0);
		if (vcpu_fd < 0)
			return 3;
		struct kvm_sregs s;
		struct kvm_regs r = { .rip = 0x1000, .rflags = 2 };
		if (kvm_get_sregs(&s) != 0)
			return 4;
		s.cs.base = 0;
		s.cs.selector = 0;
		if (kvm_set_sregs(&s) != 0 || kvm_set_regs(&r) != 0)
			return 5;
		if (kvm_run() != KVM_EXIT_IO || kvm_run() != KVM_EXIT_HLT)
			return 6;
		if (kvm_detach_vcpu() != 0)
			return 7;
		pthread_t t;
		void *res;
		if (pthread_create(&t, NULL, owner, NULL) != 0 || pthread_join(t, &res) != 0 || res)
			return 8;
		if (kvm_destroy_vm(vm) != 0)
			return 9;
	}
	return 0;
}
EOF

for p in one_vm more; do
  $cc -O2 -g -Iinclude -pthread -o "$tmp/$p" "$tmp/$p.c" -L${LIBKVM_DIR:-build} -lkvm -Wl,-rpath,"${LIBKVM_DIR:-$PWD/build}"
  if ! valgrind --leak-check=full --error-exitcode=1 "$tmp/$p" > "$tmp/$p.log" 2>&1; then
    echo "$p fails under valgrind's default settings:"; cat "$tmp/$p.log"; exit 1
  fi
  grep -E 'definitely lost|possibly lost|ERROR SUMMARY' "$tmp/$p.log" | sed "s/^/$p: /"
done
echo "no errors and nothing lost under valgrind's default settings"
