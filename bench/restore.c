/* Benchmark 10: a restore, from a memory file to the first exit: open the file, a VM
 * whose 512 MiB slot maps it MAP_PRIVATE (copy-on-write: pages load on first touch), a
 * vcpu, and the first exit of a guest that touches 1 % of its pages (code, page tables
 * and data from the file; 64-bit ring 3, which kvm_pvm runs natively); libkvm
 * (kvm_set_memory_region_fd) against raw ioctls and mmap. The same with anonymous
 * memory (kvm_set_memory_region, code and page tables copied in) for scale. */
#define _GNU_SOURCE
#include "bench.h"
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

enum { MEM = 512 << 20, STRIDE = 100 * 4096, CODE = 0x1000, PT = 0x2000 };

/* The memory file, unlinked at once and reopened by this name for each restore. */
static char path[64];

/* The byte the memory file holds at each page the guest touches. */
static uint8_t file_byte(uint64_t gpa)
{
	return (uint8_t)((gpa / STRIDE) | 1);
}

/* Identity-mapping page tables for the first GiB at PT (PML4, PDPT, PD of 2 MiB
 * pages), user-accessible. */
static uint64_t page_tables[3 * 512];

static void make_page_tables(void)
{
	page_tables[0] = (PT + 0x1000) | 7;          /* present, writable, user */
	page_tables[512] = (PT + 0x2000) | 7;
	for (uint64_t i = 0; i < 512; i++)
		page_tables[1024 + i] = (i << 21) | 0x87; /* ... and a 2 MiB page */
}

/* 64-bit ring 3 at CODE with IOPL 3 (so that `out` works), flat segments. */
static void user_long_mode(struct kvm_sregs *s, struct kvm_regs *r)
{
	struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = 0x1b,
				    .type = 11, .present = 1, .dpl = 3, .s = 1, .l = 1, .g = 1 };
	struct kvm_segment data = { .base = 0, .limit = 0xffffffff, .selector = 0x23,
				    .type = 3, .present = 1, .dpl = 3, .db = 1, .s = 1, .g = 1 };
	s->cs = code;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->cr3 = PT;
	s->cr4 = 0x20;       /* PAE */
	s->cr0 = 0x80000011; /* PG | ET | PE */
	s->efer = 0x500;     /* LME | LMA */
	memset(r, 0, sizeof(*r));
	r->rip = CODE;
	r->rflags = 0x3002;  /* IOPL 3 */
}

static void lib_setup(void)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	TRY(kvm_get_sregs(&s));
	user_long_mode(&s, &r);
	TRY(kvm_set_sregs(&s));
	TRY(kvm_set_regs(&r));
}

static void raw_setup(struct raw_vm *v)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	TRY(ioctl(v->vcpu, KVM_GET_SREGS, &s));
	user_long_mode(&s, &r);
	TRY(ioctl(v->vcpu, KVM_SET_SREGS, &s));
	TRY(ioctl(v->vcpu, KVM_SET_REGS, &r));
}

/* The memory file: the guest's code at CODE, its page tables at PT, a byte in each page
 * it touches, holes elsewhere (pages no guest access reads). */
static void make_file(void)
{
	char name[] = "/var/tmp/libkvm-bench-restore-XXXXXX";
	int fd = mkstemp(name);
	if (fd < 0)
		DIE("mkstemp: %s", strerror(errno));
	TRY(unlink(name));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	TRY(ftruncate(fd, MEM));
	struct blob b = BLOB(bench_restore);
	if (pwrite(fd, b.start, (size_t)(b.end - b.start), CODE) != b.end - b.start)
		DIE("pwrite: %s", strerror(errno));
	make_page_tables();
	if (pwrite(fd, page_tables, sizeof(page_tables), PT) != (ssize_t)sizeof(page_tables))
		DIE("pwrite: %s", strerror(errno));
	for (uint64_t gpa = 0; gpa < MEM; gpa += STRIDE) {
		uint8_t v = file_byte(gpa);
		if (pwrite(fd, &v, 1, (off_t)gpa) != 1)
			DIE("pwrite: %s", strerror(errno));
	}
	TRY(fsync(fd));
}

/* The guest touched every page once (each byte one more than the file's); its code
 * page was not written. */
static void check_guest(const uint8_t *mem)
{
	for (uint64_t gpa = 0; gpa < MEM; gpa += STRIDE)
		if (mem[gpa] != (uint8_t)(file_byte(gpa) + 1))
			DIE("page 0x%llx: 0x%x, not 0x%x", (unsigned long long)gpa, mem[gpa],
			    (uint8_t)(file_byte(gpa) + 1));
}

static double lib_restore(void *anon)
{
	uint64_t t0 = now_ns();
	int vm;
	if (anon) {
		vm = lib_vm_create(MEM, 0, CODE, BLOB(bench_restore));
		memcpy(kvm_guest_memory(vm, PT, sizeof(page_tables)), page_tables,
		       sizeof(page_tables));
	} else {
		vm = TRY(kvm_create_vm());
		int fd = TRY(open(path, O_RDONLY | O_CLOEXEC));
		TRY(kvm_set_memory_region_fd(vm, 0, 0, 0, MEM, fd, 0, MAP_PRIVATE));
		close(fd);
	}
	TRY(kvm_create_vcpu(vm, 0));
	lib_setup();
	lib_run_expect(KVM_EXIT_IO);
	uint64_t t1 = now_ns();
	const uint8_t *mem = kvm_guest_memory(vm, 0, MEM);
	if (!mem)
		DIE("kvm_guest_memory: %s", strerror(errno));
	if (!anon)
		check_guest(mem);
	TRY(kvm_detach_vcpu());
	TRY(kvm_destroy_vm(vm));
	return (double)(t1 - t0);
}

static double raw_restore(void *anon)
{
	struct raw_vm r;
	uint64_t t0 = now_ns();
	if (anon) {
		raw_vm_create(&r, MEM, 0);
		raw_load(&r, CODE, BLOB(bench_restore));
		memcpy(r.mem + PT, page_tables, sizeof(page_tables));
	} else {
		int fd = TRY(open(path, O_RDONLY | O_CLOEXEC));
		raw_vm_create_fd(&r, MEM, 0, fd, MAP_PRIVATE);
		close(fd);
	}
	raw_vcpu_create(&r, 0);
	raw_setup(&r);
	raw_run_expect(&r, KVM_EXIT_IO);
	uint64_t t1 = now_ns();
	if (!anon)
		check_guest(r.mem);
	raw_vm_destroy(&r);
	return (double)(t1 - t0);
}

int main(void)
{
	make_file();
	int rounds = bench_rounds(15);
	/* Warm up both and the page cache (the file's pages, read once). */
	lib_restore(NULL);
	raw_restore(NULL);
	compare("8 restore: 512 MiB file MAP_PRIVATE + vcpu + first exit, 1% of pages touched",
		rounds, lib_restore, raw_restore, NULL, 1.05);
	compare("8 the same with anonymous memory (code copied in)", rounds, lib_restore,
		raw_restore, (void *)1, 0);
	return 0;
}
