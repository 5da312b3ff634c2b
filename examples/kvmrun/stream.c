/* The migration stream: kvmrun's own format, the same on a socket (live migration) and
 * in a snapshot's state file. All numbers little-endian.
 *   header   "KVMRUNST", u32 format version, u32 libkvm version, u64 RAM size,
 *            u32 vcpus, u32 CRC-32C of the 28 bytes before it                   (32 bytes)
 *   section  u32 tag, u32 reserved 0, u64 payload length, u32 CRC-32C of the payload,
 *            u32 CRC-32C of the 20 bytes before it, then the payload            (24 + n)
 * Sections (stream_tag()): RAM (runs of pages: u64 guest address, u32 pages, u32 kind
 * 0 = data follows, 1 = zero pages), one per device (UART, PM timer, fw_cfg, pc-testdev,
 * debug-exit, ACPI PM registers, PCI), VM (kvm_save_vm), CPU (u32 vcpu, kvm_save_vcpu)
 * and END (u32 number of sections before it), always last. The receiver checks each
 * checksum before it uses a byte of the section.
 * KVMRUN_FAULT (testing, kvmrun(1)) injects failures into the writer and the reader:
 * close-after=N, corrupt-at=N, corrupt-tag=TAG (the writer), dest-die-after=N,
 * dest-close-after=N (the reader), N a byte offset in the stream. */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* CRC-32C (Castagnoli), with the SSE4.2 crc32 instruction where the processor has it
 * (some GB/s: the checksums cost the downtime little), else a table. */
static uint32_t crc_table[256];
static int crc_hw;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0x82f63b78u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
	crc_hw = __builtin_cpu_supports("sse4.2");
}

__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t c, const uint8_t *b, size_t n)
{
	uint64_t c64 = c;
	for (; n >= 8; n -= 8, b += 8) {
		uint64_t v;
		memcpy(&v, b, 8);
		c64 = __builtin_ia32_crc32di(c64, v);
	}
	c = (uint32_t)c64;
	for (; n; n--, b++)
		c = __builtin_ia32_crc32qi(c, *b);
	return c;
}

uint32_t crc32_of(const void *p, size_t n)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, crc_init);
	const uint8_t *b = p;
	uint32_t c = 0xffffffffu;
	if (crc_hw)
		return crc_sse42(c, b, n) ^ 0xffffffffu;
	for (size_t i = 0; i < n; i++)
		c = crc_table[(c ^ b[i]) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* KVMRUN_FAULT=WHAT=N: the fault `what` at byte N of the stream, or -1. */
static int64_t fault_at(const char *what)
{
	const char *f = getenv("KVMRUN_FAULT");
	size_t n = strlen(what);
	if (!f || strncmp(f, what, n) != 0 || f[n] != '=')
		return -1;
	return strtoll(f + n + 1, NULL, 10);
}

void stream_init(struct stream *s, int fd, int is_socket)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->is_socket = is_socket;
	s->fault_close = fault_at("close-after");
	s->fault_corrupt = fault_at("corrupt-at");
	s->fault_die = fault_at("dest-die-after");
	s->fault_drop = fault_at("dest-close-after");
	const char *f = getenv("KVMRUN_FAULT");
	s->fault_tag = f && strncmp(f, "corrupt-tag=", 12) == 0 ? f + 12 : NULL;
}

/* ---- writing -------------------------------------------------------------------------- */

static int write_all(struct stream *s, const void *p, size_t n)
{
	const uint8_t *b = p;
	if (s->fault_corrupt >= 0 && (uint64_t)s->fault_corrupt >= s->bytes &&
	    (uint64_t)s->fault_corrupt < s->bytes + n) {
		uint8_t *copy = malloc(n);
		if (!copy)
			return s->err = ENOMEM, -1;
		memcpy(copy, p, n);
		copy[s->fault_corrupt - (int64_t)s->bytes] ^= 0x10;
		s->fault_corrupt = -1;
		int r = write_all(s, copy, n);
		free(copy);
		return r;
	}
	while (n) {
		size_t chunk = n;
		if (s->rate) {
			/* -max-bandwidth: 64 KiB at a time, no faster than the rate */
			if (chunk > 65536)
				chunk = 65536;
			struct timespec t;
			clock_gettime(CLOCK_MONOTONIC, &t);
			double now = (double)t.tv_sec + (double)t.tv_nsec / 1e9;
			if (!s->rate_start)
				s->rate_start = now;
			double ahead = (double)s->bytes / (double)s->rate - (now - s->rate_start);
			if (ahead > 0) {
				struct timespec d = { (time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9) };
				nanosleep(&d, NULL);
			}
		}
		if (s->fault_close >= 0) {
			if (s->bytes >= (uint64_t)s->fault_close) {
				shutdown(s->fd, SHUT_RDWR);
				return s->err = ECONNRESET, -1;
			}
			if (s->bytes + chunk > (uint64_t)s->fault_close)
				chunk = (size_t)((uint64_t)s->fault_close - s->bytes);
		}
		ssize_t w = s->is_socket ? send(s->fd, b, chunk, MSG_NOSIGNAL) : write(s->fd, b, chunk);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return s->err = w < 0 ? errno : EIO, -1;
		b += w;
		n -= (size_t)w;
		s->bytes += (uint64_t)w;
	}
	return 0;
}

int stream_put_header(struct stream *s, const struct machine *m)
{
	uint8_t h[32];
	memcpy(h, STREAM_MAGIC, 8);
	put32(h + 8, STREAM_VERSION);
	put32(h + 12, (uint32_t)kvm_get_library_version());
	put64(h + 16, m->ram_size);
	put32(h + 24, m->ncpus);
	put32(h + 28, crc32_of(h, 28));
	uint8_t ring[4];
	put32(ring, (uint32_t)m->dirty_ring);
	if (write_all(s, h, sizeof(h)) < 0)
		return -1;
	return stream_put_section(s, TAG_DLOG, ring, sizeof(ring));
}

int stream_put_section(struct stream *s, uint32_t tag, const void *payload, size_t len)
{
	uint8_t h[24];
	put32(h, tag);
	put32(h + 4, 0);
	put64(h + 8, len);
	put32(h + 16, crc32_of(payload, len));
	put32(h + 20, crc32_of(h, 20));
	if (s->fault_tag && len && strlen(s->fault_tag) <= 4 && memcmp(h, s->fault_tag, strlen(s->fault_tag)) == 0) {
		s->fault_corrupt = (int64_t)(s->bytes + sizeof(h)); /* the payload's first byte */
		s->fault_tag = NULL;
	}
	if (write_all(s, h, sizeof(h)) < 0 || write_all(s, payload, len) < 0)
		return -1;
	s->sections++;
	return 0;
}

int stream_put_end(struct stream *s)
{
	uint8_t p[4];
	put32(p, s->sections);
	return stream_put_section(s, TAG_END, p, sizeof(p));
}

/* ---- reading -------------------------------------------------------------------------- */

static int fail(struct stream *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct stream *s, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return code;
}

/* Reads exactly `n` bytes: 0, or STREAM_TRUNCATED at end of file or a broken connection. */
static int read_all(struct stream *s, void *p, size_t n, const char *what)
{
	uint8_t *b = p;
	while (n) {
		size_t chunk = n;
		if (s->fault_die >= 0 && s->bytes + chunk > (uint64_t)s->fault_die) {
			if (s->bytes >= (uint64_t)s->fault_die)
				kill(getpid(), SIGKILL);
			chunk = (size_t)((uint64_t)s->fault_die - s->bytes);
		}
		if (s->fault_drop >= 0 && s->bytes + chunk > (uint64_t)s->fault_drop) {
			if (s->bytes >= (uint64_t)s->fault_drop) {
				close(s->fd);
				s->fd = -1;
				return fail(s, STREAM_TRUNCATED, "connection closed (KVMRUN_FAULT) in %s", what);
			}
			chunk = (size_t)((uint64_t)s->fault_drop - s->bytes);
		}
		ssize_t r = read(s->fd, b, chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(s, STREAM_TRUNCATED, "reading %s: %s", what, strerror(errno));
		if (r == 0)
			return fail(s, STREAM_TRUNCATED, "the stream ends in %s (at byte %llu)", what,
				    (unsigned long long)s->bytes);
		b += r;
		n -= (size_t)r;
		s->bytes += (uint64_t)r;
	}
	return 0;
}

int stream_get_header(struct stream *s, uint64_t *ram_size, unsigned *ncpus, uint32_t *ring)
{
	uint8_t h[32];
	int r = read_all(s, h, sizeof(h), "the header");
	if (r)
		return r;
	if (memcmp(h, STREAM_MAGIC, 8) != 0)
		return fail(s, STREAM_FOREIGN, "not a kvmrun migration stream or snapshot");
	if (crc32_of(h, 28) != get32(h + 28))
		return fail(s, STREAM_CORRUPT, "the header's checksum does not match");
	if (get32(h + 8) != STREAM_VERSION)
		return fail(s, STREAM_FOREIGN, "stream format version %u, this kvmrun reads version %u",
			    get32(h + 8), STREAM_VERSION);
	if (get32(h + 12) != (uint32_t)kvm_get_library_version())
		return fail(s, STREAM_FOREIGN, "made with libkvm version 0x%x, this is 0x%x", get32(h + 12),
			    (unsigned)kvm_get_library_version());
	*ram_size = get64(h + 16);
	*ncpus = get32(h + 24);
	uint32_t tag;
	uint8_t *p;
	size_t n;
	r = stream_get_section(s, &tag, &p, &n);
	if (r)
		return r;
	if (tag != TAG_DLOG || n != 4)
		return fail(s, STREAM_CORRUPT, "no DLOG section after the header");
	*ring = get32(p);
	if (*ring && (*ring < 4096 || (*ring & (*ring - 1))))
		return fail(s, STREAM_CORRUPT, "the DLOG section names a dirty ring of %u bytes", *ring);
	return 0;
}

int stream_get_section(struct stream *s, uint32_t *tag, uint8_t **payload, size_t *len)
{
	uint8_t h[24];
	int r = read_all(s, h, sizeof(h), "a section header");
	if (r)
		return r;
	if (crc32_of(h, 20) != get32(h + 20))
		return fail(s, STREAM_CORRUPT, "section header checksum mismatch at byte %llu",
			    (unsigned long long)(s->bytes - sizeof(h)));
	uint64_t n = get64(h + 8);
	if (get32(h + 4) != 0 || n > STREAM_MAX_SECTION)
		return fail(s, STREAM_CORRUPT, "malformed section header at byte %llu",
			    (unsigned long long)(s->bytes - sizeof(h)));
	if (n > s->cap) {
		uint8_t *nb = realloc(s->buf, n);
		if (!nb)
			return fail(s, STREAM_CORRUPT, "out of memory for a %llu-byte section", (unsigned long long)n);
		s->buf = nb;
		s->cap = n;
	}
	char what[64];
	snprintf(what, sizeof(what), "section '%.4s'", (const char *)h);
	r = read_all(s, s->buf, n, what);
	if (r)
		return r;
	if (crc32_of(s->buf, n) != get32(h + 16))
		return fail(s, STREAM_CORRUPT, "%s: checksum mismatch", what);
	*tag = get32(h);
	*payload = s->buf;
	*len = n;
	s->sections++;
	return 0;
}

void stream_free(struct stream *s)
{
	free(s->buf);
	s->buf = NULL;
	s->cap = 0;
}
