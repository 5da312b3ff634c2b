/* A guest with timer interrupts, saved mid-way (pending port read, or a kick) and finished by a fresh process, ends as an uninterrupted run. */
/* Its vcpu and VM are saved with kvm_save_vcpu/kvm_save_vm and its memory to a file; the
 * exec'd test restores them with kvm_restore_vm/kvm_restore_vcpu: result, interrupt count
 * and step sequence equal an uninterrupted run's. Truncated, bit-flipped, foreign, newer
 * and wrong-kind blobs and VMs of another shape are refused with their errno and change
 * nothing; a blob the kernel refuses part-way is rolled back. */
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
	int last_step;          /* the last step number the guest reported */
	int answered;           /* whether its read of port 0x32 was answered */
	int first_out;          /* the first step number reported in this process */
	int steps;              /* steps reported in this process */
	/* The machine at the guest's last report, where nothing depends on timing: its
	 * data words (ticks, step, result, mix at 0x500) and the registers it does not
	 * load from the TSC. */
	uint32_t data[4];
	uint64_t rip, rsp, rcx, rbx, rsi, rdi, rbp;
};

#define STOP_AT_EXIT 0      /* at the port read of step STEPS / 2, left pending */
#define STOP_BY_KICK 1      /* wherever a kick from another thread lands */

/* ---- the guest's machine ---------------------------------------------------------- */

static int vcpu_fd = -1;        /* the calling thread's vcpu, made by machine() */
static int guest_vm = -1;       /* the VM run_guest's guest lives in */

static struct kvm_cpuid2 *guest_cpuid(void)
{
	struct kvm_cpuid2 *c = supported_cpuid();
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
	guest_vm = vm;
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
	vcpu_fd = OK(kvm_create_vcpu(vm, 0));
	struct kvm_cpuid2 *c = guest_cpuid();
	OK(kvm_set_cpuid(c));
	free(c);
	setup_real_mode(LOAD);
	return vm;
}

/* The kicker thread of STOP_BY_KICK. */
static volatile int kick_go, kick_done;
static int kick_delay_us;

static void *kicker(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&kick_go, __ATOMIC_ACQUIRE))
		sched_yield();
	usleep(kick_delay_us);
	OK(kvm_kick_vcpu(vcpu_fd));
	__atomic_store_n(&kick_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Runs the guest: to the end (`stop` = -1), to the port read of step STEPS / 2 with its
 * data filled in but the instruction still pending in the kernel (STOP_AT_EXIT: saving
 * must complete it), or until a kick from another thread makes kvm_run return -1/EINTR
 * (STOP_BY_KICK: the kick is sent after step 2; from step 6 on the thread waits for it
 * at each port read, so it always lands). Every step must report its number, then read its
 * value, once, across processes. Returns 1 if stopped, 0 at the end. */
static int run_guest(struct outcome *o, int stop)
{
	for (;;) {
		int r = kvm_run();
		if (r == -1 && errno == EINTR && stop == STOP_BY_KICK)
			return 1;
		if (r != KVM_EXIT_IO)
			FAIL("kvm_run: %d (%s), errno %d", r, exit_name(r), errno);
		struct kvm_run *run = kvm_run_area();
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		uint32_t v;
		memcpy(&v, data, 4);
		if (run->io.port == P_VALUE) {
			CHECK_EQ(run->io.direction, KVM_EXIT_IO_IN);
			CHECK(o->last_step >= 0 && !o->answered);  /* one read per reported step */
			v = (uint32_t)o->last_step * 0x9e3779b9u;
			memcpy(data, &v, 4);
			o->answered = 1;
			if (stop == STOP_AT_EXIT && o->last_step == STEPS / 2)
				return 1;
			if (stop == STOP_BY_KICK && o->last_step >= 2)
				__atomic_store_n(&kick_go, 1, __ATOMIC_RELEASE);
			if (stop == STOP_BY_KICK && o->last_step >= 6)
				while (!__atomic_load_n(&kick_done, __ATOMIC_ACQUIRE))
					sched_yield();
			continue;
		}
		CHECK_EQ(run->io.direction, KVM_EXIT_IO_OUT);
		switch (run->io.port) {
		case P_STEP:
			CHECK(o->answered);
			CHECK_EQ(v, (uint32_t)(o->last_step + 1));  /* no step replayed or lost */
			if (o->steps++ == 0)
				o->first_out = (int)v;
			o->last_step = (int)v;
			o->answered = 0;
			break;
		case P_RESULT: o->result = v; break;
		case P_MIX: o->mix = v; break;
		case P_TICKS: {
			o->ticks = v;
			struct kvm_regs r;
			OK(kvm_get_regs(&r));
			o->rip = r.rip, o->rsp = r.rsp, o->rcx = r.rcx, o->rbx = r.rbx;
			o->rsi = r.rsi, o->rdi = r.rdi, o->rbp = r.rbp;
			const uint32_t *d = kvm_guest_memory(guest_vm, 0x500, sizeof(o->data));
			CHECK(d != NULL);
			memcpy(o->data, d, sizeof(o->data));
			return 0;
		}
		default: FAIL("unexpected port 0x%x", run->io.port);
		}
	}
}

static const struct outcome fresh = { .last_step = -1, .answered = 1, .first_out = -1 };

/* ---- blobs ------------------------------------------------------------------------ */

/* Re-seals a blob after an edit: CRC-32 of bytes 0..24 and 28..end. */
static void reseal(uint8_t *b, size_t len)
{
	uint32_t c = blob_crc32(b, 24, 0);
	c = blob_crc32(b + 28, len - 28, c);
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
	/* One bit flipped, each with the answer the format (src/snapshot.rs) gives it: in
	 * the magic (EBADMSG); in bit 33 of the body length at byte 16, which then claims
	 * 8 GiB more than there is (ENODATA, checked before the checksum); in a section,
	 * and in the last byte (the checksum no longer matches: EBADMSG). */
	struct { size_t bit; int err; } flips[] = {
		{ 3, EBADMSG }, { 8 * 20 + 1, ENODATA }, { 8 * 40, EBADMSG },
		{ 8 * (vcpu_len / 2) + 5, EBADMSG }, { 8 * vcpu_len - 1, EBADMSG },
	};
	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		memcpy(b, vcpu_blob, vcpu_len);
		b[flips[i].bit / 8] ^= (uint8_t)(1 << (flips[i].bit % 8));
		CHECK_ERR(kvm_restore_vcpu(b, vcpu_len), flips[i].err);
	}
	memcpy(b, vm_blob, vm_len);
	b[vm_len - 3] ^= 0x10;
	CHECK_ERR(kvm_restore_vm(vm, b, vm_len), EBADMSG);
	/* Not a snapshot at all. */
	memset(b, 0x5a, vcpu_len);
	CHECK_ERR(kvm_restore_vcpu(b, vcpu_len), EBADMSG);
	/* With a valid checksum: from another architecture (the low byte of the ELF machine
	 * number at byte 12 made EM_AARCH64's; x86-64's high byte is 0 too), and a newer
	 * format version (byte 8). */
	struct { size_t at; uint8_t value; int err; } edits[] = { { 12, 183, ENOEXEC }, { 8, 2, ENOTSUP } };
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		memcpy(b, vcpu_blob, vcpu_len);
		b[edits[i].at] = edits[i].value;
		reseal(b, vcpu_len);
		CHECK_ERR(kvm_restore_vcpu(b, vcpu_len), edits[i].err);
		memcpy(b, vm_blob, vm_len);
		b[edits[i].at] = edits[i].value;
		reseal(b, vm_len);
		CHECK_ERR(kvm_restore_vm(vm, b, vm_len), edits[i].err);
	}
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

/* A vector kvm_interrupt holds because the guest cannot take it yet (no in-kernel
 * irqchip, interrupts off) is part of the vcpu's state: restored into another VM, the
 * guest's handler runs as soon as it enables interrupts. */
static void held_interrupt(void)
{
	struct blob b = BLOB(rm_held_irq);
	extern const uint8_t held_handler[];
	int vm = vm_with_memory(0x10000);
	load_blob(vm, LOAD, b);
	uint16_t *ivt = kvm_guest_memory(vm, 0x50 * 4, 4);
	CHECK(ivt != NULL);
	ivt[0] = (uint16_t)(held_handler - b.start + LOAD);
	ivt[1] = 0;
	OK(kvm_create_vcpu(vm, 0));
	setup_real_mode(LOAD);
	run_until_out(0x30);
	OK(kvm_interrupt(0x50));                       /* held: IF is clear */
	size_t len;
	uint8_t *blob = save(-1, &len);
	uint8_t mem[0x10000];
	memcpy(mem, kvm_guest_memory(vm, 0, sizeof(mem)), sizeof(mem));
	end_vm(vm);

	vm = vm_with_memory(0x10000);
	memcpy(kvm_guest_memory(vm, 0, sizeof(mem)), mem, sizeof(mem));
	OK(kvm_create_vcpu(vm, 0));
	OK(kvm_restore_vcpu(blob, len));
	CHECK_EQ(run_until_out(0x31), 0x50);           /* before the guest's own report */
	run_until_out(0x32);
	end_vm(vm);

	/* Such a vcpu does not fit a VM with an in-kernel irqchip. */
	vm = vm_with_memory(0x10000);
	OK(kvm_create_irqchip(vm));
	OK(kvm_create_vcpu(vm, 0));
	CHECK_ERR(kvm_restore_vcpu(blob, len), EINVAL);
	end_vm(vm);
	free(blob);
}

/* ---- the two processes -------------------------------------------------------------- */

/* The fresh process: rebuilds the machine from the file, lets the guest finish, and
 * writes its outcome to <path>.out. With `checks`, it first tries bad blobs and VMs of
 * other shapes. */
static int restore_and_finish(const char *path, int checks)
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	size_t vm_len, vcpu_len, mem_len, o_len;
	uint8_t *vm_blob = (uint8_t *)get_record(f, &vm_len);
	uint8_t *vcpu_blob = (uint8_t *)get_record(f, &vcpu_len);
	uint8_t *mem = (uint8_t *)get_record(f, &mem_len);
	struct outcome *saved = (struct outcome *)get_record(f, &o_len);
	fclose(f);
	CHECK_EQ(mem_len, MEM);
	CHECK_EQ(o_len, sizeof(struct outcome));

	int vm = vm_with_memory(MEM);
	OK(kvm_create_irqchip(vm));
	OK(kvm_create_vcpu(vm, 0));
	if (checks) {
		bad_blobs(vm, vcpu_blob, vcpu_len, vm_blob, vm_len);
		other_shapes(vm_blob, vm_len);
	}
	memcpy(kvm_guest_memory(vm, 0, MEM), mem, MEM);
	OK(kvm_restore_vm(vm, vm_blob, vm_len));
	OK(kvm_restore_vcpu(vcpu_blob, vcpu_len));
	guest_vm = vm;
	/* Where the guest was: its last step, and whether that step's read was answered. */
	struct outcome o = fresh;
	o.last_step = saved->last_step;
	o.answered = saved->answered;
	CHECK_EQ(run_guest(&o, -1), 0);

	char out[4096];
	snprintf(out, sizeof(out), "%s.out", path);
	f = fopen(out, "wb");
	CHECK(f != NULL);
	CHECK(fwrite(&o, sizeof(o), 1, f) == 1);
	fclose(f);
	end_vm(vm);
	free(vm_blob);
	free(vcpu_blob);
	free(mem);
	free(saved);
	return 0;
}

/* Runs the guest until `stop`, saves vcpu, VM and memory to a file, and has a fresh
 * process (this test, exec'd) restore and finish it: the outcome must be `ref`'s. */
static void stop_save_finish(int stop, const struct outcome *ref, int checks)
{
	int vm = machine(MEM, 1);
	pthread_t t;
	if (stop == STOP_BY_KICK) {
		kick_go = kick_done = 0;
		CHECK(pthread_create(&t, NULL, kicker, NULL) == 0);
	}
	struct outcome part = fresh;
	CHECK_EQ(run_guest(&part, stop), 1);
	if (stop == STOP_BY_KICK)
		CHECK(pthread_join(t, NULL) == 0);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	size_t vcpu_len, vm_len;
	uint8_t *vcpu_blob = save(-1, &vcpu_len);
	uint8_t *vm_blob = save(vm, &vm_len);
	char path[] = "/tmp/libkvm-snapshot-XXXXXX";
	WRITE_RECORDS(path, { vm_blob, vm_len }, { vcpu_blob, vcpu_len },
		      { kvm_guest_memory(vm, 0, MEM), MEM }, { &part, sizeof(part) });
	end_vm(vm);

	pid_t pid;
	CHECK_EQ(run_self("snapshot", checks ? "--restore-checked" : "--restore", path, &pid), 0);
	char out[4096];
	snprintf(out, sizeof(out), "%s.out", path);
	FILE *f = fopen(out, "rb");
	CHECK(f != NULL);
	struct outcome o;
	CHECK(fread(&o, sizeof(o), 1, f) == 1);
	fclose(f);
	unlink(out);
	unlink(path);
	CHECK_EQ(o.first_out, part.last_step + 1);      /* continues right after the stop */
	CHECK_EQ(o.last_step, STEPS - 1);
	CHECK_EQ(part.steps + o.steps, STEPS);
	CHECK_EQ(o.result, ref->result);
	CHECK_EQ(o.mix, ref->mix);
	CHECK_EQ(o.ticks, ref->ticks);
	/* The whole deterministic machine state, not only what the guest reported. */
	for (int i = 0; i < 4; i++)
		CHECK_EQ(o.data[i], ref->data[i]);
	CHECK_EQ(o.rip, ref->rip);
	CHECK_EQ(o.rsp, ref->rsp);
	CHECK_EQ(o.rcx, ref->rcx);
	CHECK_EQ(o.rbx, ref->rbx);
	CHECK_EQ(o.rsi, ref->rsi);
	CHECK_EQ(o.rdi, ref->rdi);
	CHECK_EQ(o.rbp, ref->rbp);
	printf("%s: stopped after step %d's report at rip 0x%llx (vcpu blob %zu bytes, VM blob "
	       "%zu); finished in pid %d: result %08x mix %08x ticks %u, as uninterrupted\n",
	       stop == STOP_BY_KICK ? "kick" : "pending port read", part.last_step,
	       (unsigned long long)r.rip, vcpu_len, vm_len, (int)pid, o.result, o.mix, o.ticks);
	free(vcpu_blob);
	free(vm_blob);
}

int main(int argc, char **argv)
{
	require_kvm();
	alarm(60);      /* a lost interrupt hangs the guest: fail instead */
	if (argc == 3 && strcmp(argv[1], "--restore") == 0)
		return restore_and_finish(argv[2], 0);
	if (argc == 3 && strcmp(argv[1], "--restore-checked") == 0)
		return restore_and_finish(argv[2], 1);

	/* The uninterrupted run. */
	int vm = machine(MEM, 1);
	struct outcome ref = fresh;
	CHECK_EQ(run_guest(&ref, -1), 0);
	CHECK_EQ(ref.steps, STEPS);
	CHECK_EQ(ref.ticks, STEPS);
	end_vm(vm);

	/* Stopped at the port read of step STEPS/2, its data supplied but the IN still
	 * pending in the kernel: saving must complete it (else the fresh process would see
	 * the read again, without its value). That process also tries the bad blobs. */
	stop_save_finish(STOP_AT_EXIT, &ref, 1);
	/* Stopped by a kick from another thread, wherever it lands: in the computation, in
	 * HLT with the timer armed, in the interrupt handler. */
	for (kick_delay_us = 0; kick_delay_us <= 1000; kick_delay_us += 250)
		stop_save_finish(STOP_BY_KICK, &ref, 0);
	held_interrupt();
	return 0;
}
