/* -stats: at exit, the exits of each vcpu by kind and the VM's own counters, from KVM's
 * binary statistics (kvm_stats_read(3)), as two small tables on stderr. The kinds are
 * the vcpu statistics the kernel names "*_exits"; a kind no vcpu had is left out. */
#include "kvmrun.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KINDS 32

/* A single-valued statistic of vcpu fd `fd`, or 0. */
static uint64_t value(int fd, int index)
{
	uint64_t v = 0;
	if (kvm_stats_read(fd, index, &v, 1) != 1)
		return 0;
	return v;
}

static int digits(uint64_t v)
{
	int n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The vcpus' table: a column per kind of exit, a row per vcpu and the total. */
static void vcpu_table(FILE *f, const int *fds, unsigned n)
{
	int index[MAX_KINDS], width[MAX_KINDS], kinds = 0;
	const char *name;
	/* "exits" (every exit of the vcpu) first, then the kinds in the kernel's order. */
	int all = kvm_stats_lookup(fds[0], "exits");
	if (all >= 0)
		index[kinds++] = all;
	for (int i = 0; (name = kvm_stats_name(fds[0], i)) && kinds < MAX_KINDS; i++)
		if (i != all && ends_with(name, "_exits"))
			index[kinds++] = i;
	uint64_t *v = calloc((size_t)(n + 1) * MAX_KINDS, sizeof(*v));
	if (!v) {
		complain("-stats: out of memory");
		return;
	}
	uint64_t *total = v + (size_t)n * MAX_KINDS;
	for (unsigned c = 0; c < n; c++)
		for (int k = 0; k < kinds; k++) {
			v[c * MAX_KINDS + k] = value(fds[c], index[k]);
			total[k] += v[c * MAX_KINDS + k];
		}
	int idw = n > 1 ? 5 : 4; /* "vcpu" or "total" */
	for (int k = 0; k < kinds; k++) {
		name = kvm_stats_name(fds[0], index[k]);
		int w = (int)strlen(name) - (k == 0 && all >= 0 ? 0 : 6); /* without "_exits" */
		width[k] = digits(total[k]) > w ? digits(total[k]) : w;
	}
	fprintf(f, "kvmrun: exits by kind (KVM's statistics, %u vcpu%s):\n", n, n > 1 ? "s" : "");
	fprintf(f, "%-*s", idw, "vcpu");
	for (int k = 0; k < kinds; k++) {
		if (k > 0 && total[k] == 0)
			continue;
		name = kvm_stats_name(fds[0], index[k]);
		int len = (int)strlen(name) - (k == 0 && all >= 0 ? 0 : 6);
		fprintf(f, "  %*.*s", width[k], len, name);
	}
	fputc('\n', f);
	for (unsigned c = 0; c <= n; c++) {
		if (c == n && n == 1)
			break; /* one vcpu: its row is the total */
		uint64_t *row = c < n ? v + (size_t)c * MAX_KINDS : total;
		if (c < n)
			fprintf(f, "%*u", idw, c);
		else
			fprintf(f, "%-*s", idw, "total");
		for (int k = 0; k < kinds; k++)
			if (k == 0 || total[k] != 0)
				fprintf(f, "  %*" PRIu64, width[k], row[k]);
		fputc('\n', f);
	}
	free(v);
}

/* The VM's table: each of its single-valued statistics that is not 0. */
static void vm_table(FILE *f, int vm)
{
	const char *name;
	int w = 0, shown = 0;
	for (int i = 0; (name = kvm_stats_name(vm, i)); i++)
		if ((int)strlen(name) > w)
			w = (int)strlen(name);
	for (int i = 0; (name = kvm_stats_name(vm, i)); i++) {
		uint32_t flags, size;
		int16_t exponent;
		if (kvm_stats_info(vm, i, &flags, &exponent, &size) != 0 || size != 1)
			continue;
		uint64_t v = value(vm, i);
		if (v == 0)
			continue;
		if (!shown++)
			fprintf(f, "kvmrun: the VM's statistics (those not 0):\n");
		fprintf(f, "  %-*s  %" PRIu64 "\n", w, name, v);
	}
}

void stats_print(FILE *f, int vm, const int *vcpu_fds, unsigned n)
{
	if (n == 0 || vcpu_fds[0] < 0)
		return;
	if (kvm_stats_lookup(vcpu_fds[0], "exits") < 0 && errno != ENOENT) {
		complain("-stats: KVM's statistics are not readable: %s", strerror(errno));
		return;
	}
	vcpu_table(f, vcpu_fds, n);
	vm_table(f, vm);
}
