/* kvmrun: boots a multiboot kernel on libkvm the way `qemu-system-x86_64 -M pc -kernel`
 * does, so that test kernels written for QEMU run unchanged. See kvmrun(1).
 * This file: the command line and the order of things. */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>

void complain(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("kvmrun: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void usage(FILE *f)
{
	fputs("usage: kvmrun [options] [-kernel] KERNEL\n"
	      "Boots a multiboot (version 1) kernel in a KVM virtual machine that has the\n"
	      "devices of QEMU's pc machine that test kernels use; the serial port is stdout.\n"
	      "\n"
	      "  -kernel FILE    the kernel (an ELF32 multiboot kernel); or give it last\n"
	      "  -append STRING  the kernel's arguments (its command line is \"KERNEL STRING\")\n"
	      "  -initrd FILES   multiboot modules: comma-separated, each \"file [arguments]\";\n"
	      "                  \",,\" is a comma in a name or argument\n"
	      "  -m SIZE         RAM in MiB, or with a suffix K, M, G or T (default 128M)\n"
	      "  -smp N          number of vcpus (default 1)\n"
	      "  -t SECONDS      stop the machine after SECONDS\n"
	      "  -v              say more (-incoming, -restore: when the guest starts)\n"
	      "  -stats          at exit, print each vcpu's exits by kind and the VM's\n"
	      "                  statistics (KVM's counters) on stderr\n"
	      "  -h              this help\n"
	      "\n"
	      "Migration and snapshots (URI: tcp:HOST:PORT, unix:PATH, or file:PATH for a stream\n"
	      "in a file):\n"
	      "  -incoming URI   wait for a migration stream on URI and run the guest it brings\n"
	      "                  (same -m and -smp as the source; no kernel is loaded)\n"
	      "  -monitor URI    control socket: migrate URI, snapshot DIR, stop, cont,\n"
	      "                  info migrate, info status, quit\n"
	      "  -migrate-at SECONDS URI   live-migrate to URI after SECONDS\n"
	      "  -snapshot-at SECONDS DIR  write a snapshot to DIR after SECONDS (runs on)\n"
	      "  -restore DIR    resume the snapshot in DIR (its shape; no kernel)\n"
	      "  -downtime MS    longest pause for the last copy (default 300)\n"
	      "  -max-bandwidth MIBS  send at most MIBS MiB/s (default: no limit)\n"
	      "  -dirty-ring BYTES  track dirty pages in KVM's dirty ring, BYTES per vcpu (a\n"
	      "                  power of two, 4096 up to the host's maximum), not the bitmap;\n"
	      "                  -incoming and -restore use the ring if the source did\n"
	      "\n"
	      "Exit status: (value << 1) | 1 when the guest writes value to isa-debug-exit\n"
	      "(port 0xf4); 0 for -h and after a completed migration; 2 bad command line;\n"
	      "4 kernel or module cannot be loaded; 6 KVM or host failure (also -dirty-ring on a\n"
	      "host without the dirty ring); 8 triple fault; 10 emulation failure; 12 failed VM\n"
	      "entry; 14 timeout (-t); 16 another exit kvmrun does not handle; 18 incoming stream\n"
	      "or snapshot truncated or corrupt; 20 stream or snapshot of another kvmrun, libkvm,\n"
	      "machine shape or kind of dirty log; 22 -incoming cannot listen, or the connection\n"
	      "broke mid-stream.\n", f);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("kvmrun: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\nTry 'kvmrun -h' for more information.\n", stderr);
	va_end(ap);
	return -1;
}

/* "128", "128M", "512k", "2G", optionally after "size=". Plain numbers are MiB. */
static int parse_size(const char *s, uint64_t *out)
{
	const char *p = strncmp(s, "size=", 5) == 0 ? s + 5 : s;
	if (*p < '0' || *p > '9')
		return bad("-m: '%s' is not a size", s);
	errno = 0;
	char *end;
	unsigned long long v = strtoull(p, &end, 10);
	unsigned shift = 20;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return bad("-m: '%s' is not a size (suffixes: K, M, G, T)", s);
	}
	if (*end)
		return bad("-m: '%s' is not a size (suffixes: K, M, G, T)", s);
	if (errno || v > (1ULL << 40) >> shift)
		return bad("-m: %s is too large (at most 1T)", s);
	v <<= shift;
	if (v < (2ULL << 20))
		return bad("-m: %s is too small (at least 2M)", s);
	if (v & 0xfff)
		return bad("-m: %s is not a multiple of 4K", s);
	*out = v;
	return 0;
}

static int parse_smp(const char *s, unsigned *out)
{
	const char *p = strncmp(s, "cpus=", 5) == 0 ? s + 5 : s;
	char *end;
	errno = 0;
	long v = strtol(p, &end, 10);
	if (*p < '0' || *p > '9' || *end || errno)
		return bad("-smp: '%s' is not a number of vcpus (only the count is supported)", s);
	if (v < 1 || v > MAX_VCPUS)
		return bad("-smp: %s vcpus: between 1 and %d, please", s, MAX_VCPUS);
	*out = (unsigned)v;
	return 0;
}

static int parse_timeout(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(v) || v <= 0 || v > 1e7)
		return bad("-t: '%s' is not a number of seconds (more than 0)", s);
	*out = v;
	return 0;
}

/* QEMU's -initrd for multiboot: modules separated by commas (",," is a comma), each the
 * file name, then optionally a space and arguments; the whole entry is its command line. */
static int parse_modules(const char *s, struct machine *m)
{
	size_t len = strlen(s);
	m->modules = calloc(len / 2 + 2, sizeof(*m->modules));
	char *buf = malloc(len + 1);
	if (!m->modules || !buf)
		return bad("out of memory");
	m->nmodules = 0;
	for (const char *p = s;;) {
		size_t n = 0;
		while (*p && !(*p == ',' && p[1] != ',')) {
			if (*p == ',')
				p++; /* ",," */
			buf[n++] = *p++;
		}
		buf[n] = 0;
		struct module *mod = &m->modules[m->nmodules++];
		mod->cmdline = strdup(buf);
		char *space = strchr(buf, ' ');
		if (space)
			*space = 0;
		mod->path = strdup(buf);
		if (!mod->cmdline || !mod->path)
			return bad("out of memory");
		if (!*mod->path)
			return bad("-initrd: module %u has no file name", m->nmodules);
		if (!*p)
			break;
		p++;
	}
	free(buf);
	return 0;
}

static int parse_ms(const char *opt, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v > 3600000)
		return bad("%s: '%s' is not a number of milliseconds", opt, s);
	*out = v;
	return 0;
}

static int parse_uri(const char *opt, const char *s)
{
	char why[300];
	if (uri_valid(s, why, sizeof(why)) < 0)
		return bad("%s: %s", opt, why);
	return 0;
}

static int parse_seconds(const char *opt, const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(v) || v < 0 || v > 1e7)
		return bad("%s: '%s' is not a number of seconds", opt, s);
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct machine *m)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] == '-' && a[1] == '-' && a[2])
			a++; /* --opt as -opt, like QEMU */
		if (strcmp(a, "-h") == 0 || strcmp(a, "-help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(a, "-stats") == 0) {
			m->stats = 1;
			continue;
		}
		if (a[0] != '-' || a[1] == 0) {
			if (i != argc - 1)
				return bad("unexpected argument '%s' (the kernel comes last)", a);
			if (m->kernel)
				return bad("two kernels: '%s' and '%s'", m->kernel, a);
			m->kernel = a;
			continue;
		}
		if (strcmp(a, "-v") == 0) {
			m->verbose = 1;
			continue;
		}
		if (strcmp(a, "-migrate-at") == 0 || strcmp(a, "-snapshot-at") == 0) {
			if (i + 2 >= argc)
				return bad("option '%s' needs two values", argv[i]);
			int mig = a[1] == 'm';
			if (parse_seconds(a, argv[i + 1], mig ? &m->migrate_at : &m->snapshot_at) < 0 ||
			    (mig && parse_uri(a, argv[i + 2]) < 0))
				return -1;
			*(mig ? &m->migrate_uri : &m->snapshot_dir) = argv[i + 2];
			i += 2;
			continue;
		}
		static const char *const with_value[] = { "-kernel", "-append", "-initrd", "-m", "-smp", "-t",
							  "-incoming", "-restore", "-monitor", "-downtime", "-dirty-ring",
							  "-max-bandwidth" };
		int known = 0;
		for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
			known |= strcmp(a, with_value[k]) == 0;
		if (!known)
			return bad("unknown option '%s'", argv[i]);
		if (i + 1 >= argc)
			return bad("option '%s' needs a value", argv[i]);
		const char *v = argv[++i];
		int r = 0;
		if (strcmp(a, "-kernel") == 0) {
			if (m->kernel)
				return bad("two kernels: '%s' and '%s'", m->kernel, v);
			m->kernel = v;
		} else if (strcmp(a, "-append") == 0) {
			m->append = v;
		} else if (strcmp(a, "-initrd") == 0) {
			r = parse_modules(v, m);
		} else if (strcmp(a, "-m") == 0) {
			r = parse_size(v, &m->ram_size);
			m->shape_given = 1;
		} else if (strcmp(a, "-smp") == 0) {
			r = parse_smp(v, &m->ncpus);
			m->shape_given = 1;
		} else if (strcmp(a, "-incoming") == 0) {
			r = parse_uri(a, v);
			m->incoming = v;
		} else if (strcmp(a, "-monitor") == 0) {
			r = parse_uri(a, v);
			if (r == 0 && uri_is_file(v))
				return bad("-monitor: a control socket is tcp:HOST:PORT or unix:PATH");
			m->monitor = v;
		} else if (strcmp(a, "-restore") == 0) {
			m->restore = v;
		} else if (strcmp(a, "-downtime") == 0) {
			r = parse_ms(a, v, &m->downtime_ms);
		} else if (strcmp(a, "-max-bandwidth") == 0) {
			r = parse_ms(a, v, &m->max_bandwidth);
			if (r == 0 && (m->max_bandwidth == 0 || m->max_bandwidth > 1000000))
				return bad("-max-bandwidth: '%s' is not a number of MiB/s (1 to 1000000)", v);
		} else if (strcmp(a, "-dirty-ring") == 0) {
			char *end;
			errno = 0;
			unsigned long long bytes = strtoull(v, &end, 10);
			if (*v < '0' || *v > '9' || *end || errno || bytes < 4096 || bytes > (1ULL << 31) ||
			    (bytes & (bytes - 1)))
				return bad("-dirty-ring: '%s' is not a power of two of 4096 to 2147483648 bytes", v);
			m->dirty_ring = bytes;
		} else {
			r = parse_timeout(v, &m->timeout);
		}
		if (r < 0)
			return -1;
	}
	if (m->restore && (m->kernel || m->incoming || m->append || m->modules))
		return bad("-restore DIR takes the machine from DIR: no kernel, -append, -initrd or -incoming");
	if (!m->kernel && !m->incoming && !m->restore)
		return bad("no kernel given");
	return 0;
}

int main(int argc, char **argv)
{
	struct machine m = { .ram_size = 128ULL << 20, .ncpus = 1, .vm = -1, .downtime_ms = 300, .snapshot_fd = -1 };
	if (parse_args(argc, argv, &m) < 0)
		return EXIT_USAGE;
	/* A migration peer that goes away is an error from send() or write(), not a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (m.restore) {
		int st = snapshot_open(&m);
		if (st)
			return st;
	}

	if (kvm_get_api_version() < 0) {
		complain("cannot use KVM (/dev/kvm): %s", strerror(errno));
		return EXIT_HOST;
	}
	int max = kvm_check_extension(-1, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = kvm_check_extension(-1, KVM_CAP_NR_VCPUS);
	if (max > 0 && m.ncpus > (unsigned)max) {
		complain("-smp %u: this host's KVM allows at most %d vcpus", m.ncpus, max);
		return EXIT_USAGE;
	}

	if (machine_create(&m) < 0)
		return EXIT_HOST;
	/* The dirty ring before the first vcpu: -incoming learns the source's from the stream. */
	char why[300];
	int st = m.incoming ? incoming_open(&m) : machine_dirty_ring(&m, why, sizeof(why));
	if (st > 0 && !m.incoming)
		complain("%s", why);
	if (st > 0)
		return st;
	int from_stream = m.incoming || m.restore;
	if (!from_stream && multiboot_load(&m) < 0)
		return EXIT_LOAD;
	if (!from_stream && acpi_build(&m) < 0)
		return EXIT_HOST;
	devices_init(&m);
	if (vcpus_start(&m) < 0)
		return EXIT_HOST;
	st = -1;
	if (m.incoming)
		st = migrate_incoming(&m);
	else if (m.restore)
		st = snapshot_restore(&m);
	if (st < 0 && monitor_start(&m) < 0)
		vcpus_end(EXIT_HOST);
	st = vcpus_wait(&m);
	migrate_machine_ended();
	return st;
}
