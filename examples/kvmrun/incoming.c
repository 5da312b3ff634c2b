/* The destination of a live migration (-incoming) and the loading of a stream's state,
 * which -restore shares: RAM runs into guest memory, the devices' sections, then after
 * END the VM (kvm_restore_vm, once every vcpu exists) and each vcpu on its own thread
 * (kvm_restore_vcpu). Every section's checksum is checked before it is used, and
 * nothing runs until everything loaded: the destination then answers the source "OK"
 * (or "ERR why") and lets the vcpus go. */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096u

static int load_ram(struct machine *m, const uint8_t *p, size_t n, char *why, size_t whylen)
{
	unsigned slot[2];
	uint64_t gpa[2], size[2];
	unsigned ns = machine_ram_slots(m, slot, gpa, size);
	size_t at = 0;
	while (at < n) {
		if (n - at < 16) {
			snprintf(why, whylen, "RAM section: a run header is cut short");
			return -1;
		}
		uint64_t addr = get64(p + at), pages = get32(p + at + 8);
		uint32_t kind = get32(p + at + 12);
		at += 16;
		uint64_t bytes = pages * PAGE;
		int ok = kind <= RUN_ZERO && addr % PAGE == 0 && pages > 0;
		unsigned i = 0;
		for (; ok && i < ns; i++)
			if (addr >= gpa[i] && addr - gpa[i] <= size[i] && bytes <= size[i] - (addr - gpa[i]))
				break;
		if (!ok || i == ns || (kind == RUN_DATA && bytes > n - at)) {
			snprintf(why, whylen, "RAM section: a malformed run (%llu pages at 0x%llx)",
				 (unsigned long long)pages, (unsigned long long)addr);
			return -1;
		}
		uint8_t *dst = m->ram[i] + (addr - gpa[i]);
		if (kind == RUN_DATA) {
			memcpy(dst, p + at, bytes);
			at += bytes;
		} else {
			memset(dst, 0, bytes);
		}
	}
	return 0;
}

/* One section of a stream or snapshot: 0, or -1 (malformed, `why` says how). */
static int load_section(struct machine *m, uint32_t tag, const uint8_t *p, size_t n, uint8_t **blobs,
		 size_t *lens, uint8_t **vm_blob, size_t *vm_len, char *why, size_t whylen)
{
	if (tag == TAG_RAM)
		return load_ram(m, p, n, why, whylen);
	int d = devices_load(tag, p, n);
	if (d != 0) {
		if (d < 0)
			snprintf(why, whylen, "section '%.4s': malformed", (const char *)&tag);
		return d < 0 ? -1 : 0;
	}
	uint8_t **dst;
	size_t *dlen;
	if (tag == TAG_VM) {
		dst = vm_blob, dlen = vm_len;
	} else if (tag == TAG_CPU && n >= 4 && get32(p) < m->ncpus) {
		dst = &blobs[get32(p)], dlen = &lens[get32(p)];
		p += 4, n -= 4;
	} else {
		snprintf(why, whylen, "unknown or malformed section '%.4s'", (const char *)&tag);
		return -1;
	}
	if (*dst) {
		snprintf(why, whylen, "section '%.4s' twice", (const char *)&tag);
		return -1;
	}
	*dst = malloc(n ? n : 1);
	if (!*dst) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	memcpy(*dst, p, n);
	*dlen = n;
	return 0;
}

/* After the END section: the VM, then each vcpu on its own thread. */
static int load_finish(struct machine *m, uint8_t **blobs, size_t *lens, uint8_t *vm_blob, size_t vm_len,
		char *why, size_t whylen)
{
	if (!vm_blob) {
		snprintf(why, whylen, "no VM section");
		return -1;
	}
	for (unsigned i = 0; i < m->ncpus; i++)
		if (!blobs[i]) {
			snprintf(why, whylen, "no section for vcpu %u", i);
			return -1;
		}
	if (vcpus_wait_created() < 0) {
		snprintf(why, whylen, "the vcpus could not be created");
		return -1;
	}
	if (kvm_restore_vm(m->vm, vm_blob, vm_len) < 0) {
		snprintf(why, whylen, "kvm_restore_vm: %s", strerror(errno));
		return -1;
	}
	return vcpus_load(blobs, lens, why, whylen);
}

static int refuse(int fd, int status, const char *why)
{
	complain("incoming migration failed: %s", why);
	if (fd >= 0) {
		char line[256];
		int n = snprintf(line, sizeof(line), "ERR %s\n", why);
		if (write(fd, line, (size_t)n) < 0) {
			/* the source is gone: nothing to tell */
		}
		close(fd);
	}
	vcpus_end(status);
	return status;
}

static int stream_status(int code, int is_socket)
{
	if (code == STREAM_FOREIGN)
		return EXIT_FOREIGN;
	if (code == STREAM_TRUNCATED && is_socket)
		return EXIT_CHANNEL;
	return EXIT_DAMAGED;
}

/* Reads sections up to END into the machine; the exit status, or 0. */
int load_stream(struct machine *m, struct stream *s, char *why, size_t whylen)
{
	int code;
	uint8_t **blobs = calloc(m->ncpus, sizeof(*blobs)), *vm_blob = NULL;
	size_t *lens = calloc(m->ncpus, sizeof(*lens)), vm_len = 0;
	int status = blobs && lens ? 0 : EXIT_HOST;
	if (status)
		snprintf(why, whylen, "out of memory");
	while (status == 0) {
		uint32_t tag;
		uint8_t *p;
		size_t n;
		uint32_t before = s->sections;
		code = stream_get_section(s, &tag, &p, &n);
		if (code) {
			snprintf(why, whylen, "%s", s->why);
			status = stream_status(code, s->is_socket);
			break;
		}
		if (tag == TAG_END) {
			if (n != 4 || get32(p) != before) {
				snprintf(why, whylen, "the END section counts %u sections, %u arrived",
					 n == 4 ? get32(p) : 0, before);
				status = EXIT_DAMAGED;
			} else if (load_finish(m, blobs, lens, vm_blob, vm_len, why, whylen) < 0) {
				status = EXIT_FOREIGN;
			}
			break;
		}
		if (tag == TAG_MEMFILE)
			continue; /* snapshot_restore() checked it */
		if (load_section(m, tag, p, n, blobs, lens, &vm_blob, &vm_len, why, whylen) < 0)
			status = EXIT_DAMAGED;
	}
	free_blobs(blobs, lens, m->ncpus);
	free(vm_blob);
	stream_free(s);
	return status;
}

static struct stream in; /* incoming_open() to migrate_incoming() */

int incoming_open(struct machine *m)
{
	char why[300];
	int from_file = uri_is_file(m->incoming);
	int lfd = uri_listen(m->incoming, why, sizeof(why));
	if (lfd < 0)
		return refuse(-1, from_file ? EXIT_DAMAGED : EXIT_CHANNEL, why);
	int fd = lfd;
	if (!from_file) {
		if (m->verbose)
			complain("waiting for a migration on %s", m->incoming);
		fd = uri_accept(lfd, why, sizeof(why));
		close(lfd);
		if (fd < 0)
			return refuse(-1, EXIT_CHANNEL, why);
	}
	stream_init(&in, fd, !from_file);
	uint64_t ram;
	unsigned ncpus;
	uint32_t ring;
	int code = stream_get_header(&in, &ram, &ncpus, &ring), status = 0;
	if (code) {
		snprintf(why, sizeof(why), "%s", in.why);
		status = stream_status(code, in.is_socket);
	} else if (ram != m->ram_size || ncpus != m->ncpus) {
		snprintf(why, sizeof(why), "the stream is of a machine with %llu MiB of RAM and %u vcpus, this one has %llu MiB and %u",
			 (unsigned long long)(ram >> 20), ncpus, (unsigned long long)(m->ram_size >> 20), m->ncpus);
		status = EXIT_FOREIGN;
	} else if (!(status = machine_adopt_dirty_ring(m, ring, EXIT_FOREIGN, why, sizeof(why)))) {
		status = machine_dirty_ring(m, why, sizeof(why));
	}
	if (status) {
		stream_free(&in);
		if (from_file) {
			close(in.fd); /* nobody to answer */
			in.fd = -1;
		}
		return refuse(in.fd, status, why);
	}
	return 0;
}

int migrate_incoming(struct machine *m)
{
	char why[300];
	int from_file = !in.is_socket;
	int status = load_stream(m, &in, why, sizeof(why));
	if (status && from_file) {
		close(in.fd); /* nobody to answer */
		in.fd = -1;
	}
	if (status)
		return refuse(in.fd, status, why);
	if (from_file) {
		close(in.fd);
	} else if (write(in.fd, "OK\n", 3) != 3) {
		snprintf(why, sizeof(why), "the source went away before the end: %s", strerror(errno));
		return refuse(in.fd, EXIT_CHANNEL, why);
	} else {
		close(in.fd);
	}
	vcpus_go();
	return -1;
}
