/* Benchmark 7: memory libkvm adds per vcpu beyond the kernel's run area: heap (malloc
 * statistics) and resident set growth over many vcpus, libkvm against raw ioctls (which
 * map the same run areas). */
#define _GNU_SOURCE
#include "bench.h"
#include <malloc.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

enum { VCPUS = 128 };

static long resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size, resident;
	if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2)
		DIE("/proc/self/statm");
	fclose(f);
	return resident * sysconf(_SC_PAGESIZE);
}

/* Resident bytes of the vcpu run areas (the kernel's, not libkvm's). */
static long run_area_resident(void)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		DIE("/proc/self/smaps");
	char line[512];
	int in_vcpu = 0;
	long total = 0, kb;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) /* a mapping's first line */
			in_vcpu = strstr(line, "kvm-vcpu") != NULL;
		if (in_vcpu && sscanf(line, "Rss: %ld kB", &kb) == 1)
			total += kb * 1024;
	}
	fclose(f);
	return total;
}

static size_t heap_bytes(void)
{
	struct mallinfo2 m = mallinfo2();
	return m.uordblks + m.hblkhd;
}

struct usage {
	long heap, resident, run_areas;
};

static struct usage usage(void)
{
	return (struct usage){ (long)heap_bytes(), resident_bytes(), run_area_resident() };
}

int main(void)
{
	long run_size = TRY(kvm_get_vcpu_mmap_size());

	/* libkvm: VCPUS vcpus, each created by this thread and detached again. */
	int vm = TRY(kvm_create_vm());
	TRY(kvm_create_vcpu(vm, 0)); /* the first one sets up what is per thread */
	TRY(kvm_detach_vcpu());
	(void)usage(); /* (its own first use touches pages) */
	struct usage l0 = usage();
	for (unsigned i = 1; i <= VCPUS; i++) {
		TRY(kvm_create_vcpu(vm, i));
		TRY(kvm_detach_vcpu());
	}
	struct usage l1 = usage();

	/* Raw: the same number of vcpus and run areas. */
	struct raw_vm raw;
	raw_vm_create(&raw, 0x10000, 0);
	raw_vcpu_create(&raw, 0);
	struct kvm_run *runs[VCPUS];
	int fds[VCPUS];
	struct usage r0 = usage();
	for (unsigned i = 0; i < VCPUS; i++) {
		fds[i] = TRY(ioctl(raw.vm, KVM_CREATE_VCPU, i + 1));
		runs[i] = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
		if (runs[i] == MAP_FAILED)
			DIE("mmap: %s", strerror(errno));
	}
	struct usage r1 = usage();

	double lheap = (double)(l1.heap - l0.heap) / VCPUS;
	double lres = (double)((l1.resident - l1.run_areas) - (l0.resident - l0.run_areas)) / VCPUS;
	double rheap = (double)(r1.heap - r0.heap) / VCPUS;
	double rres = (double)((r1.resident - r1.run_areas) - (r0.resident - r0.run_areas)) / VCPUS;
	report_note("%-44s libkvm %8.0f B   raw %8.0f B   libkvm adds %.0f B per vcpu",
		    "7 heap per vcpu (malloc in use)", lheap, rheap, lheap - rheap);
	report_note("%-44s libkvm %8.0f B   raw %8.0f B   libkvm adds %.0f B per vcpu",
		    "7 resident per vcpu, run areas excluded", lres, rres, lres - rres);
	report_note("%-44s %ld B mapped per vcpu, by both (%d vcpus each)",
		    "7 kernel run area, for scale", run_size, VCPUS);

	for (unsigned i = 0; i < VCPUS; i++) {
		munmap(runs[i], (size_t)run_size);
		close(fds[i]);
	}
	raw_vm_destroy(&raw);
	TRY(kvm_destroy_vm(vm));
	return 0;
}
