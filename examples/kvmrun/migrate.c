/* Live migration, pre-copy as QEMU and cloud-hypervisor do it. The source sends every
 * non-zero page while the guest runs (zero pages are not sent: the destination's RAM
 * starts zeroed), then rounds of the pages the dirty log says the guest wrote since, until
 * what is left would take no longer than -downtime to send at the bandwidth measured so
 * far; then it stops the vcpus (kvm_kick_vcpu), each saves its state on its own thread
 * (kvm_save_vcpu), sends the last dirty pages, the devices, the VM (kvm_save_vm) and the
 * vcpus, and waits for the destination's answer. A guest that dirties memory faster than
 * the link drains it is throttled (throttle.c). On any failure the source turns dirty
 * logging and throttling off and lets the guest run on; the destination (incoming.c)
 * runs nothing until every section arrived intact and loaded. */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define RUN_MAX_PAGES 256u /* 1 MiB of data per RAM section */
#define MAX_ROUNDS_AT_FULL_THROTTLE 10
#define SETTLE_PAGES 32
#define SETTLE_MS 50.0

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ---- what `info migrate` shows -------------------------------------------------------- */

static pthread_mutex_t info_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	const char *status; /* "none", "setup", "active", "completed", "failed" */
	char why[200];
	double start, total_ms, downtime_ms, setup_ms;
	uint64_t bytes, pages, zero_pages, rounds, dirty_rate; /* dirty rate: pages/s */
	char dlog[64];      /* "bitmap" or "ring, N bytes per vcpu" */
	unsigned throttle;
	int throttled;
} info = { .status = "none" };
static int migrating;

void migrate_machine_ended(void)
{
	if (__atomic_load_n(&migrating, __ATOMIC_SEQ_CST))
		fprintf(stderr, "migration: failed: the guest ended before the migration did\n");
}

void migrate_info(char *buf, size_t len)
{
	pthread_mutex_lock(&info_lock);
	double total = strcmp(info.status, "active") == 0 || strcmp(info.status, "setup") == 0
			       ? now_ms() - info.start : info.total_ms;
	int n = snprintf(buf, len,
			 "status: %s\ntotal time: %.0f ms\ndowntime: %.1f ms\nsetup: %.1f ms\n"
			 "bytes sent: %llu\npages sent: %llu\nzero pages skipped: %llu\nrounds: %llu\n"
			 "dirty rate: %llu pages/s\nthrottle: %u%%\ndirty log: %s\n",
			 info.status, total, info.downtime_ms, info.setup_ms, (unsigned long long)info.bytes,
			 (unsigned long long)info.pages, (unsigned long long)info.zero_pages,
			 (unsigned long long)info.rounds, (unsigned long long)info.dirty_rate, info.throttle, info.dlog);
	if (n > 0 && (size_t)n < len && info.throttled)
		n += snprintf(buf + n, len - (size_t)n, "converged: by throttling the vcpus (auto-converge)\n");
	if (n > 0 && (size_t)n < len && info.why[0])
		snprintf(buf + n, len - (size_t)n, "error: %s\n", info.why);
	pthread_mutex_unlock(&info_lock);
}

/* ---- sending pages -------------------------------------------------------------------- */

static int page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	for (unsigned i = 0; i < PAGE / 8; i += 8)
		if (q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] | q[i + 5] | q[i + 6] | q[i + 7])
			return 0;
	return 1;
}

struct sender {
	struct stream *s;
	uint8_t *buf;      /* the RAM section being built */
	size_t len;
	size_t run_at;     /* offset of the open run's header, or SIZE_MAX */
	uint64_t run_next; /* the guest address that would extend the open run */
	uint32_t run_kind, run_pages, data_pages;
	uint64_t pages, zero_pages;
};

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int sender_flush(struct sender *x)
{
	if (x->run_at != SIZE_MAX)
		put_le(x->buf + x->run_at + 8, x->run_pages, 4);
	int r = x->len ? stream_put_section(x->s, TAG_RAM, x->buf, x->len) : 0;
	x->len = 0;
	x->run_at = SIZE_MAX;
	x->data_pages = 0;
	return r;
}

static int sender_page(struct sender *x, uint64_t gpa, const uint8_t *p, int zero)
{
	uint32_t kind = zero ? RUN_ZERO : RUN_DATA;
	if (x->run_at == SIZE_MAX || x->run_next != gpa || x->run_kind != kind || x->run_pages == UINT32_MAX) {
		if (x->run_at != SIZE_MAX)
			put_le(x->buf + x->run_at + 8, x->run_pages, 4);
		x->run_at = x->len;
		put_le(x->buf + x->len, gpa, 8);
		put_le(x->buf + x->len + 12, kind, 4);
		x->len += 16;
		x->run_kind = kind;
		x->run_pages = 0;
	}
	if (!zero) {
		memcpy(x->buf + x->len, p, PAGE);
		x->len += PAGE;
		x->data_pages++;
		x->pages++;
	} else {
		x->zero_pages++;
	}
	x->run_pages++;
	x->run_next = gpa + PAGE;
	/* room for one more run header and page */
	if (x->data_pages >= RUN_MAX_PAGES || x->len + 16 + PAGE > (RUN_MAX_PAGES + 64) * (size_t)PAGE)
		return sender_flush(x);
	return 0;
}

static int sender_init(struct sender *x, struct stream *s)
{
	memset(x, 0, sizeof(*x));
	x->s = s;
	x->run_at = SIZE_MAX;
	x->buf = malloc((RUN_MAX_PAGES + 64) * (size_t)PAGE);
	return x->buf ? 0 : -1;
}

/* Whether the host may not have swapped guest memory out: then a page of libkvm's
 * anonymous memory that mincore() says is not resident was never written, so zero. */
static int no_swap(void)
{
	FILE *f = fopen("/proc/swaps", "re");
	if (!f)
		return 0;
	char line[256];
	int lines = 0;
	while (fgets(line, sizeof(line), f))
		lines++;
	fclose(f);
	return lines == 1;
}

/* For RAM mapped from a snapshot's memory file (-restore): which pages of the file hold
 * data (the others are holes, zero). NULL if the file system cannot tell: all may. */
static unsigned char *file_data(const struct machine *m, uint64_t file_off, uint64_t pages)
{
	unsigned char *map = calloc(pages ? pages : 1, 1);
	if (!map)
		return NULL;
	off_t off = (off_t)file_off, end = (off_t)(file_off + pages * PAGE);
	while (off < end) {
		off_t d = lseek(m->snapshot_fd, off, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break; /* no data after off */
		if (d < 0) {
			free(map);
			return NULL;
		}
		if (d >= end)
			break;
		off_t h = lseek(m->snapshot_fd, d, SEEK_HOLE);
		if (h < 0 || h > end)
			h = end;
		for (off_t p = (d - (off_t)file_off) / PAGE; p < (h - (off_t)file_off + PAGE - 1) / PAGE; p++)
			map[p] = 1;
		off = h;
	}
	return map;
}

/* Sends the pages of every RAM slot whose bit is set in bitmaps[i] (first round: NULL,
 * every non-zero page). */
static int send_pages(struct machine *m, struct sender *x, uint64_t *const *bitmaps)
{
	unsigned slot[2];
	uint64_t gpa[2], size[2];
	unsigned n = machine_ram_slots(m, slot, gpa, size);
	/* A page that is not resident was never written by the guest (no swap): zero, unless
	 * it comes from a snapshot's memory file where the file holds data. */
	int use_mincore = !bitmaps && no_swap();
	uint64_t file_off = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t pages = size[i] / PAGE;
		unsigned char *resident = NULL, *data = NULL;
		if (use_mincore) {
			resident = malloc(pages);
			if (resident && mincore(m->ram[i], size[i], resident) < 0) {
				free(resident);
				resident = NULL;
			}
			if (resident && m->snapshot_fd >= 0 && !(data = file_data(m, file_off, pages))) {
				free(resident);
				resident = NULL;
			}
		}
		file_off += size[i];
		for (uint64_t pg = 0; pg < pages; pg++) {
			if (bitmaps) {
				uint64_t w = bitmaps[i][pg / 64];
				if (!w) {
					pg |= 63;
					continue;
				}
				if (!(w >> (pg % 64) & 1))
					continue;
			} else if (resident && !(resident[pg] & 1) && !(data && data[pg])) {
				continue;
			}
			const uint8_t *p = m->ram[i] + pg * PAGE;
			int zero = page_is_zero(p);
			if (zero && !bitmaps) {
				x->zero_pages++;
				continue; /* the first round skips zero pages */
			}
			if (sender_page(x, gpa[i] + pg * PAGE, p, zero) < 0) {
				free(resident);
				free(data);
				return -1;
			}
		}
		free(resident);
		free(data);
	}
	return sender_flush(x);
}

struct dirty {
	unsigned n;
	uint64_t *maps[2];
	size_t words[2];
};

static int dirty_init(struct machine *m, struct dirty *d)
{
	unsigned slot[2];
	uint64_t gpa[2], size[2];
	d->n = machine_ram_slots(m, slot, gpa, size);
	for (unsigned i = 0; i < d->n; i++) {
		d->words[i] = (size[i] / PAGE + 63) / 64;
		d->maps[i] = calloc(d->words[i], 8);
		if (!d->maps[i])
			return -1;
	}
	return 0;
}

/* Reads (and clears) the dirty logs; returns the number of dirty pages, or -1. */
static int64_t dirty_fetch(struct machine *m, struct dirty *d)
{
	int64_t count = 0;
	for (unsigned i = 0; i < d->n; i++) {
		if (kvm_get_dirty_log(m->vm, i, d->maps[i]) < 0)
			return -1;
		for (size_t w = 0; w < d->words[i]; w++)
			count += __builtin_popcountll(d->maps[i][w]);
	}
	return count;
}

static void dirty_free(struct dirty *d)
{
	for (unsigned i = 0; i < 2; i++)
		free(d->maps[i]);
}

/* ---- the machine's state after its memory ----------------------------------------------- */

int save_machine_state(struct machine *m, struct stream *s, uint8_t **blobs, size_t *lens, char *why, size_t whylen)
{
	if (devices_save(s) < 0) {
		snprintf(why, whylen, "sending the devices: %s", strerror(s->err));
		return -1;
	}
	size_t len = 0;
	if (kvm_save_vm(m->vm, NULL, &len) == 0 || errno != E2BIG) {
		snprintf(why, whylen, "kvm_save_vm: %s", strerror(errno));
		return -1;
	}
	uint8_t *vm = malloc(len);
	if (!vm || kvm_save_vm(m->vm, vm, &len) < 0) {
		snprintf(why, whylen, "kvm_save_vm: %s", strerror(vm ? errno : ENOMEM));
		free(vm);
		return -1;
	}
	int r = stream_put_section(s, TAG_VM, vm, len);
	free(vm);
	for (unsigned i = 0; r == 0 && i < m->ncpus; i++) {
		uint8_t *c = malloc(4 + lens[i]);
		if (!c) {
			s->err = ENOMEM;
			r = -1;
			break;
		}
		put_le(c, i, 4);
		memcpy(c + 4, blobs[i], lens[i]);
		r = stream_put_section(s, TAG_CPU, c, 4 + lens[i]);
		free(c);
	}
	if (r == 0)
		r = stream_put_end(s);
	if (r < 0)
		snprintf(why, whylen, "sending the machine state: %s", strerror(s->err));
	return r;
}

void free_blobs(uint8_t **blobs, size_t *lens, unsigned n)
{
	for (unsigned i = 0; blobs && i < n; i++)
		free(blobs[i]);
	free(blobs);
	free(lens);
}

/* ---- the source --------------------------------------------------------------------------- */

/* After a send failed: the destination's "ERR why" if it said why within 200 ms. */
static void their_reason(int fd, char *why, size_t whylen)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char line[256];
	size_t n = 0;
	while (n < sizeof(line) - 1 && poll(&p, 1, 200) == 1) {
		ssize_t r = read(fd, line + n, sizeof(line) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(line, '\n', n))
			break;
	}
	line[n] = 0;
	char *nl = strchr(line, '\n');
	if (nl && strncmp(line, "ERR ", 4) == 0) {
		*nl = 0;
		snprintf(why, whylen, "the destination refused the stream: %.150s", line + 4);
	}
}

static int failed(struct machine *m, int paused, int fd, struct dirty *d, const char *cause)
{
	char why[200];
	snprintf(why, sizeof(why), "%s", cause);
	if (fd >= 0)
		their_reason(fd, why, sizeof(why));
	throttle_set(m, 0);
	machine_dirty_log(m, 0);
	if (paused)
		vcpus_resume();
	if (fd >= 0)
		close(fd);
	dirty_free(d);
	pthread_mutex_lock(&info_lock);
	info.status = "failed";
	snprintf(info.why, sizeof(info.why), "%s", why);
	info.total_ms = now_ms() - info.start;
	info.throttle = 0;
	pthread_mutex_unlock(&info_lock);
	fprintf(stderr, "migration: failed: %s\n", why);
	__atomic_store_n(&migrating, 0, __ATOMIC_SEQ_CST);
	return -1;
}

/* The destination's answer: "OK" or "ERR why". */
static int read_answer(int fd, char *why, size_t whylen)
{
	char line[256];
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		ssize_t r = read(fd, line + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(why, whylen, "the destination went away before it answered%s%s",
				 r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
			return -1;
		}
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = 0;
	if (strcmp(line, "OK") == 0)
		return 0;
	snprintf(why, whylen, "the destination refused the stream: %.150s",
		 strncmp(line, "ERR ", 4) == 0 ? line + 4 : line);
	return -1;
}

static void update(struct sender *x, struct stream *s, uint64_t rounds)
{
	pthread_mutex_lock(&info_lock);
	info.bytes = s->bytes;
	info.pages = x->pages;
	info.zero_pages = x->zero_pages;
	info.rounds = rounds;
	pthread_mutex_unlock(&info_lock);
}

int migrate_to(struct machine *m, const char *uri)
{
	if (__atomic_exchange_n(&migrating, 1, __ATOMIC_SEQ_CST)) {
		fprintf(stderr, "migration: failed: a migration is already running\n");
		return -1;
	}
	struct dirty d = { 0 };
	pthread_mutex_lock(&info_lock);
	memset(&info, 0, sizeof(info));
	info.status = "setup";
	info.start = now_ms();
	snprintf(info.dlog, sizeof(info.dlog), "bitmap");
	if (m->dirty_ring)
		snprintf(info.dlog, sizeof(info.dlog), "ring, %llu bytes per vcpu", (unsigned long long)m->dirty_ring);
	pthread_mutex_unlock(&info_lock);

	char why[200];
	int fd = uri_connect(uri, why, sizeof(why));
	if (fd < 0)
		return failed(m, 0, -1, &d, why);
	int to_file = uri_is_file(uri);
	struct stream s;
	stream_init(&s, fd, !to_file);
	s.rate = m->max_bandwidth << 20;
	struct sender x;
	if (sender_init(&x, &s) < 0 || dirty_init(m, &d) < 0) {
		free(x.buf);
		return failed(m, 0, fd, &d, "out of memory");
	}
	if (machine_dirty_log(m, 1) < 0) {
		snprintf(why, sizeof(why), "turning dirty logging on: %s", strerror(errno));
		free(x.buf);
		return failed(m, 0, fd, &d, why);
	}
	int r = stream_put_header(&s, m);
	pthread_mutex_lock(&info_lock);
	info.setup_ms = now_ms() - info.start;
	info.status = "active";
	pthread_mutex_unlock(&info_lock);

	/* Round 1: every non-zero page. */
	double t0 = now_ms();
	uint64_t b0 = s.bytes, rounds = 1;
	if (r == 0)
		r = send_pages(m, &x, NULL);
	update(&x, &s, rounds);
	double bandwidth = 0; /* bytes per ms */
	int hot_rounds = 0, full_throttle_rounds = 0;
	double settle_from = 0;
	unsigned throttle = 0;
	while (r == 0) {
		double t1 = now_ms();
		double round_ms = t1 - t0 > 0.01 ? t1 - t0 : 0.01;
		uint64_t sent = s.bytes - b0;
		if (sent)
			bandwidth = (double)sent / round_ms;
		int64_t dirty = dirty_fetch(m, &d);
		if (dirty < 0) {
			snprintf(why, sizeof(why), "kvm_get_dirty_log: %s", strerror(errno));
			free(x.buf);
			return failed(m, 0, fd, &d, why);
		}
		uint64_t dirty_bytes = (uint64_t)dirty * (PAGE + 16);
		pthread_mutex_lock(&info_lock);
		info.dirty_rate = (uint64_t)((double)dirty * 1000.0 / round_ms);
		pthread_mutex_unlock(&info_lock);
		double expect_ms = bandwidth > 0 ? (double)dirty_bytes / bandwidth : 0;
		if (full_throttle_rounds >= MAX_ROUNDS_AT_FULL_THROTTLE)
			break;
		if (expect_ms <= (double)m->downtime_ms) {
			/* What is left fits the downtime. A guest that writes in bursts may be
			 * between two: a few more rounds, for at most SETTLE_MS, while they find
			 * more than SETTLE_PAGES pages, leave less for the stop-and-copy. */
			if (settle_from == 0)
				settle_from = t1;
			if (dirty <= SETTLE_PAGES || t1 - settle_from >= SETTLE_MS)
				break; /* stop and copy: what is left is in d; the vcpus' last writes follow */
		}
		/* Auto-converge, as QEMU: the guest dirtied more than half of what the round sent,
		 * twice in a row, while what is left does not fit the downtime: throttle 20%,
		 * then 10% more each time, up to 99%. */
		if (settle_from == 0 && dirty_bytes * 2 > sent && ++hot_rounds >= 2) {
			hot_rounds = 0;
			throttle = throttle ? throttle + 10 : 20;
			if (throttle > 99)
				throttle = 99;
			throttle_set(m, throttle);
			pthread_mutex_lock(&info_lock);
			info.throttle = throttle;
			info.throttled = 1;
			pthread_mutex_unlock(&info_lock);
		}
		if (throttle >= 99)
			full_throttle_rounds++;
		t0 = t1;
		b0 = s.bytes;
		rounds++;
		r = send_pages(m, &x, d.maps);
		update(&x, &s, rounds);
	}
	if (r < 0) {
		snprintf(why, sizeof(why), "sending memory: %s", strerror(s.err));
		free(x.buf);
		return failed(m, 0, fd, &d, why);
	}

	double stop_at = now_ms();
	if (vcpus_pause() < 0) {
		free(x.buf);
		return failed(m, 0, fd, &d, "the machine stopped");
	}
	devices_flush();
	uint8_t **blobs = calloc(m->ncpus, sizeof(*blobs));
	size_t *lens = calloc(m->ncpus, sizeof(*lens));
	if (!blobs || !lens) {
		free_blobs(blobs, lens, 0);
		free(x.buf);
		return failed(m, 1, fd, &d, "out of memory");
	}
	double tp = now_ms();
	r = vcpus_save(blobs, lens, why, sizeof(why));
	double ts = now_ms();
	/* The pages dirtied since the last fetch, and those it found but did not send. */
	if (r == 0) {
		uint64_t *prev[2] = { d.maps[0], d.maps[1] };
		struct dirty last = { 0 };
		if (dirty_init(m, &last) < 0 || dirty_fetch(m, &last) < 0) {
			snprintf(why, sizeof(why), "kvm_get_dirty_log: %s", strerror(errno ? errno : ENOMEM));
			r = -1;
		} else {
			for (unsigned i = 0; i < d.n; i++)
				for (size_t w = 0; w < d.words[i]; w++)
					last.maps[i][w] |= prev[i][w];
			rounds++;
			r = send_pages(m, &x, last.maps);
			if (r < 0)
				snprintf(why, sizeof(why), "sending memory: %s", strerror(s.err));
		}
		dirty_free(&last);
	}
	double tm = now_ms();
	if (r == 0)
		r = save_machine_state(m, &s, blobs, lens, why, sizeof(why));
	double tst = now_ms();
	free_blobs(blobs, lens, m->ncpus);
	update(&x, &s, rounds);
	free(x.buf);
	if (r == 0 && !to_file)
		r = read_answer(fd, why, sizeof(why));
	if (r == 0 && to_file && close(fd) < 0) {
		snprintf(why, sizeof(why), "writing %s: %s", uri + 5, strerror(errno));
		fd = -1;
		r = -1;
	}
	if (r < 0)
		return failed(m, 1, fd, &d, why);

	double end = now_ms();
	if (getenv("KVMRUN_TIMES")) /* kvmrun(1): where the downtime went */
		fprintf(stderr, "migration: downtime: pause %.2f ms, vcpu state %.2f ms, last pages %.2f ms, "
			"devices, VM and vcpus %.2f ms, the destination's answer %.2f ms\n",
			tp - stop_at, ts - tp, tm - ts, tst - tm, end - tst);
	__atomic_store_n(&migrating, 0, __ATOMIC_SEQ_CST);
	if (!to_file)
		close(fd);
	dirty_free(&d);
	pthread_mutex_lock(&info_lock);
	info.status = "completed";
	info.downtime_ms = end - stop_at;
	info.total_ms = end - info.start;
	double total = info.total_ms, down = info.downtime_ms;
	pthread_mutex_unlock(&info_lock);
	char dlog[64] = "dirty bitmap";
	if (m->dirty_ring)
		snprintf(dlog, sizeof(dlog), "dirty ring of %llu bytes per vcpu", (unsigned long long)m->dirty_ring);
	fprintf(stderr, "migration: completed in %.0f ms, downtime %.1f ms, %llu bytes sent (%.1f ms of the downtime "
		"until the last byte was sent, %llu pages, %llu rounds, %s%s)\n",
		total, down, (unsigned long long)s.bytes, tst - stop_at, (unsigned long long)x.pages,
		(unsigned long long)rounds, dlog, info.throttled ? ", converged by throttling" : "");
	return 0;
}
