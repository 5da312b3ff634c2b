/* A guest computing with TSC-deadline timer interrupts is stopped mid-way, saved with kvm_save_vcpu/kvm_save_vm and its memory to a file, and finished by a fresh process (exec of this test) after kvm_restore_vm/kvm_restore_vcpu: result and interrupt count equal an uninterrupted run's. Bad blobs and VMs of another shape are refused with their errno and change nothing. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#define STEPS 40                /* SNAP_STEPS in guests/snapshot.S */
#define MEM (1 << 20)
#define LOAD 0x1000
#define VECTOR 0x40
#define P_STEP 0x31
#define P_VALUE 0x32
#define P_RESULT 0x3e
#define P_MIX 0x3d
#define P_TICKS 0x3f

struct outcome {
	uint32_t result, mix, ticks;
	int first_step, last_step, steps;    /* the step numbers the guest reported */
};

/* ---- the guest's machine ---------------------------------------------------------- */

static struct kvm_cpuid2 *guest_cpuid(void)
{
	int n = 256;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
	CHECK(c != NULL);
	c->nent = n;
	OK(kvm_get_supported_cpuid(c));
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == 1)
			c->entries[i].ecx |= 1u << 24 | 1u << 21;   /* TSC deadline, x2APIC */
	return c;
}

/* A VM of `mem` bytes with an in-kernel irqchip; with `with_vcpu`, the calling thread's
 * vcpu set up to start the guest (a restore overwrites all of that). */
static int machine(uint64_t mem, int with_vcpu)
{
	int vm = vm_with_memory(mem);
	OK(kvm_create_irqchip(vm));
	if (!with_vcpu)
		return vm;
	struct blob b = BLOB(rm_snapshot);
	load_blob(vm, LOAD, b);
	extern const uint8_t snap_handler[];
	uint16_t *ivt = kvm_guest_memory(vm, VECTOR * 4, 4);
	CHECK(ivt != NULL);
	ivt[0] = (uint16_t)(snap_handler - b.start + LOAD);
	ivt[1] = 0;
	OK(kvm_create_vcpu(vm, 0));
	struct kvm_cpuid2 *c = guest_cpuid();
	OK(kvm_set_cpuid(c));
	free(c);
	setup_real_mode(LOAD);
	return vm;
}

/* Runs until the guest reads port 0x32 in step `stop_at` (the exit is left pending,
 * with its data filled in, so that saving must complete it), or to the end with
 * `stop_at` = -1. Every step must report its number, then read its value, once. */
static void run_guest(struct outcome *o, int stop_at)
{
	int answered = 1;
	for (;;) {
		run_expect(KVM_EXIT_IO);
		struct kvm_run *run = kvm_run_area();
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		uint32_t v;
		memcpy(&v, data, 4);
		if (run->io.port == P_VALUE) {
			CHECK_EQ(run->io.direction, KVM_EXIT_IO_IN);
			CHECK(o->steps > 0 && !answered);      /* one read per reported step */
			v = (uint32_t)o->last_step * 0x9e3779b9u;
			memcpy(data, &v, 4);
			answered = 1;
			if (o->last_step == stop_at)
				return;
			continue;
		}
		CHECK_EQ(run->io.direction, KVM_EXIT_IO_OUT);
		switch (run->io.port) {
		case P_STEP:
			CHECK(answered);
			if (o->steps == 0)
				o->first_step = (int)v;
			else
				CHECK_EQ(v, (uint32_t)o->last_step + 1);   /* no step replayed or lost */
			o->last_step = (int)v;
			o->steps++;
			answered = 0;
			break;
		case P_RESULT: o->result = v; break;
		case P_MIX: o->mix = v; break;
		case P_TICKS: o->ticks = v; return;
		default: FAIL("unexpected port 0x%x", run->io.port);
		}
	}
}

/* ---- blobs ------------------------------------------------------------------------ */

static uint32_t crc32(const uint8_t *p, size_t n, uint32_t c)
{
	c = ~c;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320 ^ (c >> 1) : c >> 1;
	}
	return ~c;
}

/* Re-seals a blob after an edit: CRC-32 of bytes 0..24 and 28..end. */
static void reseal(uint8_t *b, size_t len)
{
	uint32_t c = crc32(b, 24, 0);
	c = crc32(b + 28, len - 28, c);
	memcpy(b + 24, &c, 4);
}

/* The payload of section `tag`, or NULL. */
static uint8_t *section(uint8_t *b, size_t len, uint32_t tag, uint32_t *slen)
{
	size_t at = 32;
	while (at + 8 <= len) {
		uint32_t t, l;
		memcpy(&t, b + at, 4);
		memcpy(&l, b + at + 4, 4);
		if (t == tag) {
			*slen = l;
			return b + at + 8;
		}
		at += 8 + ((l + 7) & ~7u);
	}
	return NULL;
}

static uint8_t *save(int vm, size_t *len)
{
	size_t n = 0;
	if (vm >= 0)
		CHECK_ERR(kvm_save_vm(vm, NULL, &n), E2BIG);
	else
		CHECK_ERR(kvm_save_vcpu(NULL, &n), E2BIG);
	CHECK(n > 32);
	uint8_t *b = malloc(n);
	CHECK(b != NULL);
	size_t small = n - 1;
	if (vm >= 0) {
		CHECK_ERR(kvm_save_vm(vm, b, &small), E2BIG);
		CHECK_EQ(small, n);
		OK(kvm_save_vm(vm, b, &n));
	} else {
		CHECK_ERR(kvm_save_vcpu(b, &small), E2BIG);
		CHECK_EQ(small, n);
		OK(kvm_save_vcpu(b, &n));
	}
	*len = n;
	return b;
}

static void write_all(FILE *f, const void *p, uint64_t n)
{
	CHECK(fwrite(&n, 8, 1, f) == 1);
	CHECK(fwrite(p, 1, n, f) == n);
}

static uint8_t *read_all(FILE *f, size_t *n)
{
	uint64_t len;
	CHECK(fread(&len, 8, 1, f) == 1);
	uint8_t *p = malloc(len);
	CHECK(p != NULL);
	CHECK(fread(p, 1, len, f) == len);
	*n = len;
	return p;
}

/* ---- "changes nothing" --------------------------------------------------------------- */

struct observed {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_irqchip pic, ioapic;
};

static void observe(int vm, struct observed *s)
{
	memset(s, 0, sizeof(*s));
	OK(kvm_get_regs(&s->regs));
	OK(kvm_get_sregs(&s->sregs));
	OK(kvm_get_xcrs(&s->xcrs));
	OK(kvm_get_lapic(&s->lapic));
	s->pic.chip_id = KVM_IRQCHIP_PIC_MASTER;
	OK(kvm_get_irqchip(vm, &s->pic));
	s->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	OK(kvm_get_irqchip(vm, &s->ioapic));
}

static void check_unchanged(int vm, const struct observed *before)
{
	struct observed now;
	observe(vm, &now);
	CHECK(memcmp(&now.regs, &before->regs, sizeof(now.regs)) == 0);
	CHECK(memcmp(&now.sregs, &before->sregs, sizeof(now.sregs)) == 0);
	CHECK(memcmp(&now.xcrs, &before->xcrs, sizeof(now.xcrs)) == 0);
	CHECK(memcmp(&now.lapic, &before->lapic, sizeof(now.lapic)) == 0);
	CHECK(memcmp(&now.pic, &before->pic, sizeof(now.pic)) == 0);
	CHECK(memcmp(&now.ioapic, &before->ioapic, sizeof(now.ioapic)) == 0);
}

/* Every way a blob can be bad, against the calling thread's vcpu and VM `vm`. */
static void bad_blobs(int vm, const uint8_t *vcpu_blob, size_t vcpu_len,
		      const uint8_t *vm_blob, size_t vm_len)
{
	struct observed before;
	observe(vm, &before);
	uint8_t *b = malloc(vcpu_len > vm_len ? vcpu_len : vm_len);
	CHECK(b != NULL);

	/* Truncated. */
	size_t cuts[] = { 0, 10, 31, 32, vcpu_len / 2, vcpu_len - 1 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		CHECK_ERR(kvm_restore_vcpu(vcpu_blob, cuts[i]), ENODATA);
	CHECK_ERR(kvm_restore_vm(vm, vm_blob, vm_len - 1), ENODATA);
	/* One bit flipped: in the header, in a section, in the last byte. */
	size_t bits[] = { 3, 8 * 20 + 1, 8 * 40, 8 * (vcpu_len / 2) + 5, 8 * vcpu_len - 1 };
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		memcpy(b, vcpu_blob, vcpu_len);
		b[bits[i] / 8] ^= (uint8_t)(1 << (bits[i] % 8));
		errno = 0;
		CHECK(kvm_restore_vcpu(b, vcpu_len) == -1);
		CHECK(errno == EBADMSG || errno == ENODATA);
	}
	memcpy(b, vm_blob, vm_len);
	b[vm_len - 3] ^= 0x10;
	CHECK_ERR(kvm_restore_vm(vm, b, vm_len), EBADMSG);
	/* Not a snapshot at all. */
	memset(b, 0x5a, vcpu_len);
	CHECK_ERR(kvm_restore_vcpu(b, vcpu_len), EBADMSG);
	/* From another architecture (EM_AARCH64), with a valid checksum. */
	memcpy(b, vcpu_blob, vcpu_len);
	b[12] = 183;
	b[13] = 0;
	reseal(b, vcpu_len);
	CHECK_ERR(kvm_restore_vcpu(b, vcpu_len), ENOEXEC);
	memcpy(b, vm_blob, vm_len);
	b[12] = 183;
	reseal(b, vm_len);
	CHECK_ERR(kvm_restore_vm(vm, b, vm_len), ENOEXEC);
	/* A newer format version. */
	memcpy(b, vcpu_blob, vcpu_len);
	b[8] = 2;
	reseal(b, vcpu_len);
	CHECK_ERR(kvm_restore_vcpu(b, vcpu_len), ENOTSUP);
	/* The other kind. */
	CHECK_ERR(kvm_restore_vcpu(vm_blob, vm_len), EINVAL);
	CHECK_ERR(kvm_restore_vm(vm, vcpu_blob, vcpu_len), EINVAL);
	/* Well-formed, but the kernel refuses part of it (XCR0 = SSE without x87) after
	 * earlier sections were loaded: the vcpu's previous state is put back. */
	memcpy(b, vcpu_blob, vcpu_len);
	uint32_t slen;
	struct kvm_xcrs *x = (struct kvm_xcrs *)section(b, vcpu_len, 0x0006, &slen);
	CHECK(x != NULL && slen == sizeof(*x));
	x->xcrs[0].value = 2;
	reseal(b, vcpu_len);
	CHECK_ERR(kvm_restore_vcpu(b, vcpu_len), EINVAL);
	/* NULLs. */
	CHECK_ERR(kvm_restore_vcpu(NULL, vcpu_len), EFAULT);
	CHECK_ERR(kvm_restore_vm(vm, NULL, vm_len), EFAULT);
	CHECK_ERR(kvm_restore_vm(-1, vm_blob, vm_len), EBADF);
	size_t n = 16;
	CHECK_ERR(kvm_save_vcpu(NULL, NULL), EFAULT);
	CHECK_ERR(kvm_save_vcpu(NULL, &n), E2BIG);
	n = 1 << 20;
	CHECK_ERR(kvm_save_vm(vm, NULL, &n), EFAULT);
	CHECK_ERR(kvm_save_vm(-1, NULL, &n), EBADF);

	check_unchanged(vm, &before);
	free(b);
}

static void *make_two_vcpus(void *arg)
{
	int vm = *(int *)arg;
	OK(kvm_create_vcpu(vm, 0));
	OK(kvm_detach_vcpu());
	OK(kvm_create_vcpu(vm, 1));
	OK(kvm_detach_vcpu());
	return NULL;
}

/* VMs of another shape refuse the VM blob, and are left as they were. */
static void other_shapes(const uint8_t *vm_blob, size_t vm_len)
{
	int vm = machine(2 * MEM, 0);                  /* more memory, no vcpu yet */
	CHECK_ERR(kvm_restore_vm(vm, vm_blob, vm_len), EINVAL);
	OK(kvm_destroy_vm(vm));
	vm = machine(MEM, 0);                          /* same memory, no vcpu */
	CHECK_ERR(kvm_restore_vm(vm, vm_blob, vm_len), EINVAL);
	pthread_t t;                                   /* same memory, two vcpus */
	CHECK(pthread_create(&t, NULL, make_two_vcpus, &vm) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	struct kvm_irqchip pic = { .chip_id = KVM_IRQCHIP_PIC_MASTER }, after = pic;
	OK(kvm_get_irqchip(vm, &pic));
	CHECK_ERR(kvm_restore_vm(vm, vm_blob, vm_len), EINVAL);
	OK(kvm_get_irqchip(vm, &after));
	CHECK(memcmp(&pic, &after, sizeof(pic)) == 0);
	OK(kvm_destroy_vm(vm));
	vm = vm_with_memory(MEM);                      /* no irqchip, no vcpu */
	CHECK_ERR(kvm_restore_vm(vm, vm_blob, vm_len), EINVAL);
	OK(kvm_destroy_vm(vm));
}

/* ---- the two processes -------------------------------------------------------------- */

/* The fresh process: rebuilds the machine from the file and lets the guest finish. */
static int restore_and_finish(const char *path)
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	size_t vm_len, vcpu_len, mem_len;
	uint8_t *vm_blob = read_all(f, &vm_len);
	uint8_t *vcpu_blob = read_all(f, &vcpu_len);
	uint8_t *mem = read_all(f, &mem_len);
	fclose(f);
	CHECK_EQ(mem_len, MEM);

	int vm = vm_with_memory(MEM);
	OK(kvm_create_irqchip(vm));
	OK(kvm_create_vcpu(vm, 0));
	bad_blobs(vm, vcpu_blob, vcpu_len, vm_blob, vm_len);
	other_shapes(vm_blob, vm_len);

	memcpy(kvm_guest_memory(vm, 0, MEM), mem, MEM);
	OK(kvm_restore_vm(vm, vm_blob, vm_len));
	OK(kvm_restore_vcpu(vcpu_blob, vcpu_len));
	struct outcome o = { 0 };
	run_guest(&o, -1);

	char out[4096];
	snprintf(out, sizeof(out), "%s.out", path);
	f = fopen(out, "wb");
	CHECK(f != NULL);
	CHECK(fwrite(&o, sizeof(o), 1, f) == 1);
	fclose(f);
	OK(kvm_detach_vcpu());
	OK(kvm_destroy_vm(vm));
	free(vm_blob);
	free(vcpu_blob);
	free(mem);
	return 0;
}

static void finish_elsewhere(const char *path, const struct outcome *ref, int stopped_at)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "snapshot", "--restore", path, (char *)NULL);
		_exit(127);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	char out[4096];
	snprintf(out, sizeof(out), "%s.out", path);
	FILE *f = fopen(out, "rb");
	CHECK(f != NULL);
	struct outcome o;
	CHECK(fread(&o, sizeof(o), 1, f) == 1);
	fclose(f);
	unlink(out);
	CHECK_EQ(o.first_step, stopped_at + 1);       /* continues right after the stop */
	CHECK_EQ(o.last_step, STEPS - 1);
	CHECK_EQ(o.result, ref->result);
	CHECK_EQ(o.mix, ref->mix);
	CHECK_EQ(o.ticks, ref->ticks);
	printf("stopped after step %d; restored in pid %d: result %08x mix %08x ticks %u, "
	       "as uninterrupted\n", stopped_at, (int)pid, o.result, o.mix, o.ticks);
}

int main(int argc, char **argv)
{
	require_kvm();
	alarm(60);      /* a lost interrupt hangs the guest: fail instead */
	if (argc == 3 && strcmp(argv[1], "--restore") == 0)
		return restore_and_finish(argv[2]);

	/* The uninterrupted run. */
	int vm = machine(MEM, 1);
	struct outcome ref = { 0 };
	run_guest(&ref, -1);
	CHECK_EQ(ref.steps, STEPS);
	CHECK_EQ(ref.ticks, STEPS);
	OK(kvm_detach_vcpu());
	OK(kvm_destroy_vm(vm));

	/* Stopped at the port read of step STEPS/2, its data supplied but the IN still
	 * pending in the kernel: saving must complete it (else the fresh process would see
	 * the read again, without its value). */
	vm = machine(MEM, 1);
	struct outcome part = { 0 };
	run_guest(&part, STEPS / 2);
	size_t vcpu_len, vm_len;
	uint8_t *vcpu_blob = save(-1, &vcpu_len);
	uint8_t *vm_blob = save(vm, &vm_len);
	char path[] = "/tmp/libkvm-snapshot-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	FILE *f = fdopen(fd, "wb");
	CHECK(f != NULL);
	write_all(f, vm_blob, vm_len);
	write_all(f, vcpu_blob, vcpu_len);
	write_all(f, kvm_guest_memory(vm, 0, MEM), MEM);
	CHECK(fclose(f) == 0);
	OK(kvm_detach_vcpu());
	OK(kvm_destroy_vm(vm));
	printf("vcpu blob %zu bytes, VM blob %zu bytes\n", vcpu_len, vm_len);
	finish_elsewhere(path, &ref, STEPS / 2);
	unlink(path);
	free(vcpu_blob);
	free(vm_blob);
	return 0;
}
