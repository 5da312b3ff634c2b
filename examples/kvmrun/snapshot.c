/* Snapshots: `snapshot DIR` (monitor) and -snapshot-at write, with the vcpus stopped for
 * the while (as QEMU's savevm), then running on:
 *   DIR/memory  the RAM as a file: low RAM from offset 0, RAM above 4 GiB after it;
 *               zero pages are holes
 *   DIR/state   a migration stream without RAM sections: the DLOG section (dirty
 *               bitmap or ring), a MEMF section (the memory file's size), the devices,
 *               the VM and each vcpu, END
 * Both are written under temporary names and renamed, memory first. `kvmrun -restore DIR`
 * takes the machine's shape and kind of dirty log from DIR/state, has libkvm map
 * DIR/memory MAP_PRIVATE (kvm_set_memory_region_fd in machine.c, ram_map) so that only
 * pages the guest touches are read, and loads the rest. The state
 * file is checksummed section by section; the memory file is checked for its size only
 * (reading it all to check it would undo the point of mapping it). */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096u

static int write_memory(struct machine *m, int fd, char *why, size_t whylen)
{
	if (ftruncate(fd, (off_t)m->ram_size) < 0) {
		snprintf(why, whylen, "memory file: %s", strerror(errno));
		return -1;
	}
	unsigned slot[2];
	uint64_t gpa[2], size[2];
	unsigned n = machine_ram_slots(m, slot, gpa, size);
	uint64_t file_off = 0;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *ram = m->ram[i];
		uint64_t pages = size[i] / PAGE;
		for (uint64_t pg = 0; pg < pages;) {
			const uint64_t *q = (const uint64_t *)(ram + pg * PAGE);
			int zero = 1;
			for (unsigned k = 0; k < PAGE / 8 && zero; k++)
				zero = q[k] == 0;
			if (zero) {
				pg++;
				continue;
			}
			uint64_t end = pg + 1;
			while (end < pages && end - pg < 256) {
				const uint64_t *r = (const uint64_t *)(ram + end * PAGE);
				int z = 1;
				for (unsigned k = 0; k < PAGE / 8 && z; k++)
					z = r[k] == 0;
				if (z)
					break;
				end++;
			}
			size_t len = (size_t)((end - pg) * PAGE);
			const uint8_t *p = ram + pg * PAGE;
			off_t off = (off_t)(file_off + pg * PAGE);
			while (len) {
				ssize_t w = pwrite(fd, p, len, off);
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0) {
					snprintf(why, whylen, "memory file: %s", w < 0 ? strerror(errno) : "short write");
					return -1;
				}
				p += w, off += w, len -= (size_t)w;
			}
			pg = end;
		}
		file_off += size[i];
	}
	return 0;
}

static char *path_in(const char *dir, const char *name)
{
	char *p;
	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

int snapshot_save(struct machine *m, const char *dir, char *why, size_t whylen)
{
	if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
		snprintf(why, whylen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	char *mem = path_in(dir, "memory"), *mem_tmp = path_in(dir, "memory.tmp");
	char *state = path_in(dir, "state"), *state_tmp = path_in(dir, "state.tmp");
	uint8_t **blobs = calloc(m->ncpus, sizeof(*blobs));
	size_t *lens = calloc(m->ncpus, sizeof(*lens));
	int r = -1, paused = 0, mfd = -1, sfd = -1;
	if (!mem || !mem_tmp || !state || !state_tmp || !blobs || !lens) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	if (vcpus_pause() < 0) {
		snprintf(why, whylen, "the machine stopped");
		goto out;
	}
	paused = 1;
	devices_flush();
	if (vcpus_save(blobs, lens, why, whylen) < 0)
		goto out;
	mfd = open(mem_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	sfd = open(state_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (mfd < 0 || sfd < 0) {
		snprintf(why, whylen, "cannot write in %s: %s", dir, strerror(errno));
		goto out;
	}
	if (write_memory(m, mfd, why, whylen) < 0)
		goto out;
	struct stream s;
	stream_init(&s, sfd, 0);
	uint64_t size = m->ram_size;
	if (stream_put_header(&s, m) < 0 || stream_put_section(&s, TAG_MEMFILE, &size, sizeof(size)) < 0) {
		snprintf(why, whylen, "state file: %s", strerror(s.err));
		goto out;
	}
	if (save_machine_state(m, &s, blobs, lens, why, whylen) < 0)
		goto out;
	if (close(mfd) < 0 || close(sfd) < 0) {
		mfd = sfd = -1;
		snprintf(why, whylen, "writing %s: %s", dir, strerror(errno));
		goto out;
	}
	mfd = sfd = -1;
	if (rename(mem_tmp, mem) < 0 || rename(state_tmp, state) < 0) {
		snprintf(why, whylen, "renaming in %s: %s", dir, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (paused)
		vcpus_resume();
	if (mfd >= 0)
		close(mfd);
	if (sfd >= 0)
		close(sfd);
	if (r < 0 && mem_tmp && state_tmp) {
		unlink(mem_tmp);
		unlink(state_tmp);
	}
	free_blobs(blobs, lens, m->ncpus);
	free(mem);
	free(mem_tmp);
	free(state);
	free(state_tmp);
	return r;
}

static struct stream saved = { .fd = -1 }; /* DIR/state, from snapshot_open() to snapshot_restore() */

int snapshot_open(struct machine *m)
{
	char *state = path_in(m->restore, "state"), *mem = path_in(m->restore, "memory");
	if (!state || !mem) {
		complain("out of memory");
		return EXIT_HOST;
	}
	int status = 0;
	int fd = open(state, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		complain("-restore: cannot open %s: %s", state, strerror(errno));
		status = EXIT_DAMAGED;
		goto out;
	}
	stream_init(&saved, fd, 0);
	uint64_t ram;
	unsigned ncpus;
	uint32_t ring;
	int code = stream_get_header(&saved, &ram, &ncpus, &ring);
	if (code) {
		complain("-restore: %s: %s", state, saved.why);
		status = code == STREAM_FOREIGN ? EXIT_FOREIGN : EXIT_DAMAGED;
		goto out;
	}
	if (ram < (2u << 20) || ram % PAGE || ncpus < 1 || ncpus > MAX_VCPUS) {
		complain("-restore: %s: a machine of %llu bytes and %u vcpus cannot be", state,
			 (unsigned long long)ram, ncpus);
		status = EXIT_DAMAGED;
		goto out;
	}
	if (m->shape_given && (ram != m->ram_size || ncpus != m->ncpus)) {
		complain("-restore: the snapshot is of a machine with %llu MiB and %u vcpus: -m and -smp must agree or be left out",
			 (unsigned long long)(ram >> 20), ncpus);
		status = EXIT_USAGE;
		goto out;
	}
	m->ram_size = ram;
	m->ncpus = ncpus;
	char why[300];
	status = machine_adopt_dirty_ring(m, ring, EXIT_USAGE, why, sizeof(why));
	if (status) {
		complain("-restore: %s", why);
		goto out;
	}
	m->snapshot_fd = open(mem, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (m->snapshot_fd < 0 || fstat(m->snapshot_fd, &st) < 0) {
		complain("-restore: cannot open %s: %s", mem, strerror(errno));
		status = EXIT_DAMAGED;
	} else if ((uint64_t)st.st_size != ram) {
		complain("-restore: %s has %llu bytes, the machine %llu", mem, (unsigned long long)st.st_size,
			 (unsigned long long)ram);
		status = EXIT_DAMAGED;
	}
out:
	free(state);
	free(mem);
	return status;
}

int snapshot_restore(struct machine *m)
{
	char why[300];
	int status = load_stream(m, &saved, why, sizeof(why));
	close(saved.fd);
	saved.fd = -1;
	if (status) {
		complain("-restore %s: %s", m->restore, why);
		vcpus_end(status);
		return status;
	}
	vcpus_go();
	return -1;
}
