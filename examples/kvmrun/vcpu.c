/* One thread per vcpu. Each creates its vcpu; once all exist, each sets its CPUID (and
 * the boot vcpu 0 its multiboot entry state; the others stay waiting for INIT/SIPI in
 * the in-kernel local APIC); once all are ready, each runs its vcpu, handing port and
 * MMIO exits to devices.c. The first vcpu to end the machine (debug-exit, a fatal exit)
 * decides the exit status; the main thread then kicks every vcpu out of the guest, joins
 * the threads and destroys the VM. -t does the same when the time is up. */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct vcpu {
	unsigned id;
	int fd;
	pthread_t thread;
	int started;
	unsigned save_gen;        /* the vcpus_save() round this vcpu answered last */
	uint8_t *blob;            /* vcpus_save(): its state; vcpus_load(): what to load */
	size_t blob_len;
	int err;                  /* errno of its last save or load, 0 if it worked */
};

static struct machine *mach;
static struct vcpu *vcpus;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;
static unsigned created, ready;
static int stopping;
static int status = -1;
/* Pausing (vcpus_pause): requests outstanding, vcpus parked, save rounds. */
static int pause_req;
static unsigned parked, save_gen, saved;
/* Loading (vcpus_load): blobs handed out, vcpus done, go. */
static int load_ready, go;
static unsigned loaded;
static struct timespec start_time; /* the -t deadline */

/* Ends the machine with `st` unless something ended it first. */
void vcpus_end(int st)
{
	pthread_mutex_lock(&lock);
	if (status < 0)
		status = st;
	__atomic_store_n(&stopping, 1, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

static void print_segment(FILE *f, const char *name, const struct kvm_segment *s)
{
	fprintf(f, "  %-3s %04x base %016llx limit %08x type %x s %u dpl %u p %u db %u l %u g %u%s\n",
		name, s->selector, (unsigned long long)s->base, s->limit, s->type, s->s, s->dpl,
		s->present, s->db, s->l, s->g, s->unusable ? " unusable" : "");
}

/* The calling thread's vcpu state, and the code bytes at its instruction pointer. */
static void dump_state(const struct vcpu *v, const char *what)
{
	static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&dump_lock);
	FILE *f = stderr;
	fprintf(f, "kvmrun: vcpu %u: %s\n", v->id, what);
	struct kvm_regs r;
	struct kvm_sregs s;
	if (kvm_get_regs(&r) < 0 || kvm_get_sregs(&s) < 0) {
		fprintf(f, "  (registers unreadable: %s)\n", strerror(errno));
		pthread_mutex_unlock(&dump_lock);
		return;
	}
	fprintf(f, "  rax %016llx rbx %016llx rcx %016llx rdx %016llx\n", (unsigned long long)r.rax,
		(unsigned long long)r.rbx, (unsigned long long)r.rcx, (unsigned long long)r.rdx);
	fprintf(f, "  rsi %016llx rdi %016llx rbp %016llx rsp %016llx\n", (unsigned long long)r.rsi,
		(unsigned long long)r.rdi, (unsigned long long)r.rbp, (unsigned long long)r.rsp);
	fprintf(f, "  r8  %016llx r9  %016llx r10 %016llx r11 %016llx\n", (unsigned long long)r.r8,
		(unsigned long long)r.r9, (unsigned long long)r.r10, (unsigned long long)r.r11);
	fprintf(f, "  r12 %016llx r13 %016llx r14 %016llx r15 %016llx\n", (unsigned long long)r.r12,
		(unsigned long long)r.r13, (unsigned long long)r.r14, (unsigned long long)r.r15);
	fprintf(f, "  rip %016llx rflags %08llx\n", (unsigned long long)r.rip, (unsigned long long)r.rflags);
	print_segment(f, "cs", &s.cs);
	print_segment(f, "ds", &s.ds);
	print_segment(f, "es", &s.es);
	print_segment(f, "fs", &s.fs);
	print_segment(f, "gs", &s.gs);
	print_segment(f, "ss", &s.ss);
	print_segment(f, "tr", &s.tr);
	print_segment(f, "ldt", &s.ldt);
	fprintf(f, "  gdt base %016llx limit %04x  idt base %016llx limit %04x\n",
		(unsigned long long)s.gdt.base, s.gdt.limit, (unsigned long long)s.idt.base, s.idt.limit);
	fprintf(f, "  cr0 %08llx cr2 %016llx cr3 %016llx cr4 %08llx cr8 %llx efer %llx apic_base %llx\n",
		(unsigned long long)s.cr0, (unsigned long long)s.cr2, (unsigned long long)s.cr3,
		(unsigned long long)s.cr4, (unsigned long long)s.cr8, (unsigned long long)s.efer,
		(unsigned long long)s.apic_base);
	uint64_t phys;
	uint8_t valid, writeable, user;
	if (kvm_translate(s.cs.base + r.rip, &phys, &valid, &writeable, &user) == 0 && valid) {
		const uint8_t *code = kvm_guest_memory(mach->vm, phys, 16);
		if (code) {
			fprintf(f, "  code at %llx:", (unsigned long long)phys);
			for (int i = 0; i < 16; i++)
				fprintf(f, " %02x", code[i]);
			fputc('\n', f);
		}
	}
	pthread_mutex_unlock(&dump_lock);
}

/* After a timeout: where the vcpu was, in one line. */
static void report_timeout(const struct vcpu *v)
{
	static const char *const states[] = { "runnable", "waiting for INIT/SIPI", "received INIT",
					      "halted", "received SIPI" };
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_mp_state mp;
	if (kvm_get_regs(&r) < 0 || kvm_get_sregs(&s) < 0 || kvm_get_mp_state(&mp) < 0)
		return;
	complain("vcpu %u: %s, at %04x:%08llx", v->id,
		 mp.mp_state < sizeof(states) / sizeof(states[0]) ? states[mp.mp_state] : "in another state",
		 s.cs.selector, (unsigned long long)r.rip);
}

/* The calling thread's vcpu state into v->blob. */
static void save_own(struct vcpu *v)
{
	free(v->blob);
	v->blob = NULL;
	v->blob_len = 0;
	size_t len = 0;
	v->err = 0;
	if (kvm_save_vcpu(NULL, &len) == 0 || errno != E2BIG) {
		v->err = errno ? errno : EIO;
		return;
	}
	v->blob = malloc(len);
	if (!v->blob) {
		v->err = ENOMEM;
		return;
	}
	if (kvm_save_vcpu(v->blob, &len) < 0) {
		v->err = errno;
		free(v->blob);
		v->blob = NULL;
		return;
	}
	v->blob_len = len;
}

/* Out of the guest while the machine is paused: saves the vcpu's state when asked. */
static void park(struct vcpu *v)
{
	pthread_mutex_lock(&lock);
	parked++;
	pthread_cond_broadcast(&changed);
	while (pause_req && !stopping) {
		if (v->save_gen != save_gen) {
			unsigned gen = save_gen;
			pthread_mutex_unlock(&lock);
			save_own(v);
			pthread_mutex_lock(&lock);
			v->save_gen = gen;
			saved++;
			pthread_cond_broadcast(&changed);
			continue;
		}
		pthread_cond_wait(&changed, &lock);
	}
	parked--;
	pthread_mutex_unlock(&lock);
}

/* Runs the calling thread's vcpu until the machine stops. */
static void run_loop(struct vcpu *v)
{
	struct kvm_run *run = kvm_run_area();
	char what[160];
	for (;;) {
		if (__atomic_load_n(&pause_req, __ATOMIC_SEQ_CST))
			park(v);
		throttle_point();
		if (__atomic_load_n(&stopping, __ATOMIC_SEQ_CST)) {
			pthread_mutex_lock(&lock);
			int timed_out = status == EXIT_TIMEOUT;
			pthread_mutex_unlock(&lock);
			if (timed_out)
				report_timeout(v);
			return;
		}
		int reason = kvm_run();
		if (reason < 0) {
			/* EINTR: a kick (the loop checks why) or a stray signal. */
			if (errno == EINTR)
				continue;
			complain("vcpu %u: kvm_run: %s", v->id, strerror(errno));
			vcpus_end(EXIT_HOST);
			return;
		}
		switch (reason) {
		case KVM_EXIT_IO: {
			uint8_t *data = (uint8_t *)run + run->io.data_offset;
			for (uint32_t i = 0; i < run->io.count; i++) {
				int st = device_pio(run->io.port, run->io.direction == KVM_EXIT_IO_OUT,
						    data + i * run->io.size, run->io.size);
				if (st >= 0) {
					vcpus_end(st);
					return;
				}
			}
			break;
		}
		case KVM_EXIT_MMIO:
			device_mmio(run->mmio.phys_addr, run->mmio.is_write, run->mmio.data, run->mmio.len);
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_SHUTDOWN:
			dump_state(v, "triple fault (KVM_EXIT_SHUTDOWN)");
			vcpus_end(EXIT_SHUTDOWN);
			return;
		case KVM_EXIT_INTERNAL_ERROR: {
			int n = snprintf(what, sizeof(what), "%s (KVM_EXIT_INTERNAL_ERROR, suberror %u",
					 run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
						 ? "instruction emulation failed" : "KVM internal error",
					 run->internal.suberror);
			for (uint32_t i = 0; i < run->internal.ndata && i < 4 && n < (int)sizeof(what); i++)
				n += snprintf(what + n, sizeof(what) - (size_t)n, "%s%llx", i ? " " : ", data ",
					      (unsigned long long)run->internal.data[i]);
			if (n < (int)sizeof(what))
				snprintf(what + n, sizeof(what) - (size_t)n, ")");
			dump_state(v, what);
			vcpus_end(EXIT_EMULATION);
			return;
		}
		case KVM_EXIT_FAIL_ENTRY:
			snprintf(what, sizeof(what),
				 "the hardware refused to enter the guest (KVM_EXIT_FAIL_ENTRY, reason 0x%llx, cpu %u)",
				 (unsigned long long)run->fail_entry.hardware_entry_failure_reason,
				 run->fail_entry.cpu);
			dump_state(v, what);
			vcpus_end(EXIT_FAIL_ENTRY);
			return;
		case KVM_EXIT_SYSTEM_EVENT:
			snprintf(what, sizeof(what), "system event %u (KVM_EXIT_SYSTEM_EVENT)",
				 run->system_event.type);
			dump_state(v, what);
			vcpus_end(EXIT_UNHANDLED);
			return;
		default:
			snprintf(what, sizeof(what), "unhandled exit reason %d", reason);
			dump_state(v, what);
			vcpus_end(EXIT_UNHANDLED);
			return;
		}
	}
}

/* Waits until `*count` reaches the number of vcpus, or the machine stops. */
static void barrier(unsigned *count)
{
	pthread_mutex_lock(&lock);
	++*count;
	pthread_cond_broadcast(&changed);
	while (*count < mach->ncpus && !stopping)
		pthread_cond_wait(&changed, &lock);
	pthread_mutex_unlock(&lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	int fd = kvm_create_vcpu(mach->vm, v->id);
	if (fd < 0) {
		complain("vcpu %u: kvm_create_vcpu: %s", v->id, strerror(errno));
		vcpus_end(EXIT_HOST);
	}
	pthread_mutex_lock(&lock);
	v->fd = fd;
	pthread_mutex_unlock(&lock);
	/* Every vcpu exists before any is configured: KVM builds its map from APIC IDs to
	 * vcpus when a local APIC changes (kvm_set_lapic() on the boot vcpu), and an IPI
	 * to a vcpu missing from that map is lost. */
	barrier(&created);
	if (mach->incoming || mach->restore) {
		/* The state comes from a stream: load it on this thread, then wait for go. */
		pthread_mutex_lock(&lock);
		while (!load_ready && !stopping)
			pthread_cond_wait(&changed, &lock);
		int load = load_ready && !stopping && fd >= 0;
		pthread_mutex_unlock(&lock);
		v->err = 0;
		if (load && kvm_restore_vcpu(v->blob, v->blob_len) < 0)
			v->err = errno;
		pthread_mutex_lock(&lock);
		loaded++;
		pthread_cond_broadcast(&changed);
		while (!go && !stopping)
			pthread_cond_wait(&changed, &lock);
		int run = go && !stopping && load && !v->err;
		pthread_mutex_unlock(&lock);
		if (run)
			run_loop(v);
		return NULL;
	}
	int ok = fd >= 0 && !__atomic_load_n(&stopping, __ATOMIC_SEQ_CST) && vcpu_configure(mach, v->id) == 0;
	if (fd >= 0 && !ok)
		vcpus_end(EXIT_HOST);
	barrier(&ready);
	if (ok)
		run_loop(v);
	return NULL;
}

/* With the lock held: waits until `*count` covers every vcpu; -1 if the machine stops. */
static int wait_all(const unsigned *count, char *why, size_t whylen)
{
	while (*count < mach->ncpus && !stopping)
		pthread_cond_wait(&changed, &lock);
	if (stopping && why)
		snprintf(why, whylen, "the machine stopped");
	return stopping ? -1 : 0;
}

void vcpus_kick_all(void)
{
	pthread_mutex_lock(&lock);
	for (unsigned i = 0; vcpus && i < mach->ncpus; i++)
		if (vcpus[i].fd >= 0)
			kvm_kick_vcpu(vcpus[i].fd); /* EAGAIN still kicks, on entry */
	pthread_mutex_unlock(&lock);
}

int vcpus_pause(void)
{
	pthread_mutex_lock(&lock);
	if (stopping) {
		pthread_mutex_unlock(&lock);
		return -1;
	}
	__atomic_add_fetch(&pause_req, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&lock);
	vcpus_kick_all();
	pthread_mutex_lock(&lock);
	int r = wait_all(&parked, NULL, 0);
	if (r < 0)
		__atomic_sub_fetch(&pause_req, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&lock);
	return r;
}

void vcpus_resume(void)
{
	pthread_mutex_lock(&lock);
	if (pause_req > 0)
		__atomic_sub_fetch(&pause_req, 1, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

int vcpus_paused(void)
{
	return __atomic_load_n(&pause_req, __ATOMIC_SEQ_CST) > 0;
}

int vcpus_save(uint8_t **blobs, size_t *lens, char *why, size_t whylen)
{
	pthread_mutex_lock(&lock);
	save_gen++;
	saved = 0;
	pthread_cond_broadcast(&changed);
	int r = wait_all(&saved, why, whylen);
	for (unsigned i = 0; i < mach->ncpus; i++) {
		blobs[i] = vcpus[i].blob;
		lens[i] = vcpus[i].blob_len;
		vcpus[i].blob = NULL;
		if (r == 0 && vcpus[i].err) {
			snprintf(why, whylen, "vcpu %u: kvm_save_vcpu: %s", i, strerror(vcpus[i].err));
			r = -1;
		}
	}
	pthread_mutex_unlock(&lock);
	return r;
}

int vcpus_wait_created(void)
{
	pthread_mutex_lock(&lock);
	int r = wait_all(&created, NULL, 0);
	pthread_mutex_unlock(&lock);
	return r;
}

int vcpus_load(uint8_t *const *blobs, const size_t *lens, char *why, size_t whylen)
{
	pthread_mutex_lock(&lock);
	wait_all(&created, NULL, 0);
	for (unsigned i = 0; i < mach->ncpus; i++) {
		vcpus[i].blob = blobs[i];
		vcpus[i].blob_len = lens[i];
	}
	load_ready = 1;
	pthread_cond_broadcast(&changed);
	int r = wait_all(&loaded, why, whylen);
	for (unsigned i = 0; i < mach->ncpus; i++) {
		vcpus[i].blob = NULL;
		if (r == 0 && (vcpus[i].fd < 0 || vcpus[i].err)) {
			snprintf(why, whylen, "vcpu %u: %s: %s", i, vcpus[i].fd < 0 ? "kvm_create_vcpu" : "kvm_restore_vcpu",
				 strerror(vcpus[i].err ? vcpus[i].err : EIO));
			r = -1;
		}
	}
	pthread_mutex_unlock(&lock);
	return r;
}

void vcpus_go(void)
{
	if (mach->verbose) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		complain("the guest starts at CLOCK_MONOTONIC %lld.%09ld", (long long)t.tv_sec, t.tv_nsec);
	}
	pthread_mutex_lock(&lock);
	go = 1;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

int vcpus_start(struct machine *m)
{
	mach = m;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&changed, &ca);
	pthread_condattr_destroy(&ca);

	vcpus = calloc(m->ncpus, sizeof(*vcpus));
	if (!vcpus) {
		complain("out of memory");
		return -1;
	}
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (m->timeout > 0) {
		double whole = (double)(time_t)m->timeout;
		deadline.tv_sec += (time_t)m->timeout;
		deadline.tv_nsec += (long)((m->timeout - whole) * 1e9);
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
	}
	for (unsigned i = 0; i < m->ncpus; i++) {
		vcpus[i].id = i;
		vcpus[i].fd = -1;
		int e = pthread_create(&vcpus[i].thread, NULL, vcpu_thread, &vcpus[i]);
		if (e) {
			complain("cannot start the thread of vcpu %u: %s", i, strerror(e));
			vcpus_end(EXIT_HOST);
			break;
		}
		vcpus[i].started = 1;
	}
	start_time = deadline;
	return 0;
}

int vcpus_wait(struct machine *m)
{
	struct timespec deadline = start_time;
	pthread_mutex_lock(&lock);
	while (!stopping) {
		if (m->timeout <= 0) {
			pthread_cond_wait(&changed, &lock);
		} else if (pthread_cond_timedwait(&changed, &lock, &deadline) == ETIMEDOUT && !stopping) {
			status = EXIT_TIMEOUT;
			__atomic_store_n(&stopping, 1, __ATOMIC_SEQ_CST);
			complain("timed out after %g seconds", m->timeout);
		}
	}
	pthread_cond_broadcast(&changed); /* parked and waiting vcpus see `stopping` */
	/* Every vcpu out of the guest. The fds are set under the lock; a thread that has not
	 * reached its run loop yet sees `stopping` and never runs its vcpu. */
	for (unsigned i = 0; i < m->ncpus; i++)
		if (vcpus[i].fd >= 0)
			kvm_kick_vcpu(vcpus[i].fd); /* EAGAIN still kicks, on entry */
	pthread_mutex_unlock(&lock);

	for (unsigned i = 0; i < m->ncpus; i++) {
		if (vcpus[i].started)
			pthread_join(vcpus[i].thread, NULL);
		free(vcpus[i].blob);
	}
	devices_flush();
	if (m->stats) {
		int fds[MAX_VCPUS];
		for (unsigned i = 0; i < m->ncpus; i++)
			fds[i] = vcpus[i].fd;
		stats_print(stderr, m->vm, fds, m->ncpus);
	}
	if (kvm_destroy_vm(m->vm) < 0)
		complain("kvm_destroy_vm: %s", strerror(errno));
	free(vcpus);
	return status;
}
