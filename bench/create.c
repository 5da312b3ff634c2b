/* Benchmark 5: creation, from nothing to the first exit: a VM, 64 MiB of guest memory, a
 * vcpu set up in real mode, and its first exit; libkvm against raw ioctls. Teardown is
 * timed separately. */
#include "bench.h"

enum { MEM = 64 << 20 };

struct cost {
	double create, teardown;
};

static struct cost lib_round(long n)
{
	struct cost c = { 0, 0 };
	for (long i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		int vm = lib_vm_create(MEM, 0, 0x1000, BLOB(bench_out));
		TRY(kvm_create_vcpu(vm, 0));
		lib_setup_real_mode(0x1000);
		lib_run_expect(KVM_EXIT_IO);
		uint64_t t1 = now_ns();
		TRY(kvm_detach_vcpu());
		TRY(kvm_destroy_vm(vm));
		uint64_t t2 = now_ns();
		c.create += (double)(t1 - t0) / (double)n;
		c.teardown += (double)(t2 - t1) / (double)n;
	}
	return c;
}

static struct cost raw_round(long n)
{
	struct cost c = { 0, 0 };
	for (long i = 0; i < n; i++) {
		struct raw_vm r;
		uint64_t t0 = now_ns();
		raw_vm_create(&r, MEM, 0);
		raw_load(&r, 0x1000, BLOB(bench_out));
		raw_vcpu_create(&r, 0);
		raw_setup_real_mode(&r, 0x1000);
		raw_run_expect(&r, KVM_EXIT_IO);
		uint64_t t1 = now_ns();
		raw_vm_destroy(&r);
		uint64_t t2 = now_ns();
		c.create += (double)(t1 - t0) / (double)n;
		c.teardown += (double)(t2 - t1) / (double)n;
	}
	return c;
}

int main(void)
{
	int rounds = bench_rounds(21);
	long n = bench_iters(5);
	double *lc = calloc((size_t)rounds, sizeof(double)), *rc = calloc((size_t)rounds, sizeof(double));
	double *lt = calloc((size_t)rounds, sizeof(double)), *rt = calloc((size_t)rounds, sizeof(double));
	double *qc = calloc((size_t)rounds, sizeof(double)), *qt = calloc((size_t)rounds, sizeof(double));
	if (!lc || !rc || !lt || !rt || !qc || !qt)
		DIE("out of memory");
	/* Warm up both (the first libkvm call opens /dev/kvm). */
	lib_round(1);
	raw_round(1);
	for (int i = 0; i < rounds; i++) {
		struct cost l, r;
		if (i % 2 == 0) {
			l = lib_round(n);
			r = raw_round(n);
		} else {
			r = raw_round(n);
			l = lib_round(n);
		}
		lc[i] = l.create;
		lt[i] = l.teardown;
		rc[i] = r.create;
		rt[i] = r.teardown;
		qc[i] = l.create / r.create;
		qt[i] = l.teardown / r.teardown;
	}
	report("5 create VM + 64 MiB + vcpu + first exit", "ns", median(lc, rounds),
	       median(rc, rounds), median(qc, rounds), 1.05);
	report("5 teardown (detach + destroy)", "ns", median(lt, rounds), median(rt, rounds),
	       median(qt, rounds), 0);
	return 0;
}
