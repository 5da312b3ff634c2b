/* Multiboot (version 1) loading as QEMU's -kernel does it: an ELF32 kernel's segments at
 * their physical addresses (or a flat image placed by the header's address fields), the
 * -initrd files as modules after the kernel, and the multiboot information with the
 * memory sizes, a memory map, the command line "<kernel> <append>" and the module list.
 * The information (and a flat GDT for the boot vcpu) goes in low memory, off page 0 and
 * off 0x8000-0xdfff, where guests tend to put their AP start-up code. */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MB_MAGIC 0x1badb002u
#define MB_SEARCH 8192
#define MB_FLAG_AOUT_KLUDGE (1u << 16)
#define MB_FLAGS_KNOWN (0x7u | MB_FLAG_AOUT_KLUDGE) /* page-align, memory info, video */

/* Multiboot information flags kvmrun provides. */
#define MBI_MEMORY (1u << 0)
#define MBI_BOOT_DEVICE (1u << 1)
#define MBI_CMDLINE (1u << 2)
#define MBI_MODS (1u << 3)
#define MBI_MMAP (1u << 6)
#define MBI_LOADER_NAME (1u << 9)

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr, drives_length, drives_addr, config_table;
	uint32_t boot_loader_name, apm_table;
	uint32_t vbe[4];        /* VBE fields: not provided */
	uint8_t framebuffer[28]; /* framebuffer fields: not provided */
};

struct mb_mod {
	uint32_t start, end, cmdline, pad;
};

struct __attribute__((packed)) mb_mmap {
	uint32_t size; /* 20: the size of what follows */
	uint64_t addr, len;
	uint32_t type; /* 1 RAM, 2 reserved */
};

struct file {
	uint8_t *data;
	size_t size;
};

/* Guest ranges taken by the kernel and the modules, to place the information around. */
#define MAX_USED 256
static struct { uint64_t start, end; } used[MAX_USED];
static unsigned nused;

static int loaded(uint64_t start, uint64_t end)
{
	if (nused == MAX_USED) {
		complain("the kernel has too many segments (more than %d)", MAX_USED - 1);
		return -1;
	}
	used[nused].start = start;
	used[nused].end = end;
	nused++;
	return 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static int read_whole(const char *path, const char *what, uint64_t limit, struct file *f)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		complain("cannot open %s %s: %s", what, path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		complain("%s %s is not a regular file", what, path);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > limit) {
		complain("%s %s (%lld bytes) does not fit in the guest's RAM", what, path,
			 (long long)st.st_size);
		close(fd);
		return -1;
	}
	f->size = (size_t)st.st_size;
	f->data = malloc(f->size ? f->size : 1);
	if (!f->data) {
		complain("%s %s: out of memory", what, path);
		close(fd);
		return -1;
	}
	size_t got = 0;
	while (got < f->size) {
		ssize_t n = read(fd, f->data + got, f->size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			complain("cannot read %s %s: %s", what, path, n < 0 ? strerror(errno) : "file shrank");
			close(fd);
			free(f->data);
			return -1;
		}
		got += (size_t)n;
	}
	close(fd);
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Copies `filesz` bytes and zeroes the rest of `[addr, addr + memsz)`, which must be RAM
 * below 4 GiB, outside the BIOS area. */
static int place(const struct machine *m, const char *what, uint64_t addr, uint64_t memsz,
		 const uint8_t *src, uint64_t filesz)
{
	if (memsz == 0)
		return 0;
	if (addr + memsz > m->low_size || addr + memsz < addr) {
		complain("%s at 0x%llx-0x%llx lies outside the guest's RAM below 4 GiB "
			 "(0-0x%llx; see -m)", what, (unsigned long long)addr,
			 (unsigned long long)(addr + memsz - 1), (unsigned long long)(m->low_size - 1));
		return -1;
	}
	if (addr < BIOS_AREA_END && addr + memsz > BIOS_AREA) {
		complain("%s at 0x%llx-0x%llx overlaps the BIOS area 0x%x-0x%x (ACPI tables)", what,
			 (unsigned long long)addr, (unsigned long long)(addr + memsz - 1), BIOS_AREA,
			 BIOS_AREA_END - 1);
		return -1;
	}
	uint8_t *dst = kvm_guest_memory(m->vm, addr, memsz);
	if (!dst) {
		complain("%s: guest memory at 0x%llx: %s", what, (unsigned long long)addr, strerror(errno));
		return -1;
	}
	memcpy(dst, src, filesz);
	memset(dst + filesz, 0, memsz - filesz);
	return loaded(addr, addr + memsz);
}

static int load_elf(struct machine *m, const struct file *k)
{
	const char *name = m->kernel;
	if (k->size < sizeof(Elf32_Ehdr) || memcmp(k->data, ELFMAG, SELFMAG) != 0) {
		complain("%s has a multiboot header but is not an ELF file, and its header does "
			 "not give load addresses (flag 16)", name);
		return -1;
	}
	Elf32_Ehdr eh;
	memcpy(&eh, k->data, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS32 || eh.e_machine == EM_X86_64) {
		complain("%s is a 64-bit ELF file; multiboot kernels are 32-bit (ELF32, i386)", name);
		return -1;
	}
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_386) {
		complain("%s is not an i386 ELF file (machine %u)", name, eh.e_machine);
		return -1;
	}
	if (eh.e_type != ET_EXEC) {
		complain("%s is not an executable ELF file (type %u)", name, eh.e_type);
		return -1;
	}
	if (eh.e_phentsize != sizeof(Elf32_Phdr) || eh.e_phnum == 0 ||
	    (uint64_t)eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf32_Phdr) > k->size) {
		complain("%s: malformed ELF program headers", name);
		return -1;
	}
	int nload = 0;
	uint32_t entry = eh.e_entry;
	int entry_found = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf32_Phdr ph;
		memcpy(&ph, k->data + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz || (uint64_t)ph.p_offset + ph.p_filesz > k->size) {
			complain("%s: malformed ELF segment %u (file range outside the file)", name, i);
			return -1;
		}
		char what[64];
		snprintf(what, sizeof(what), "kernel segment %u", i);
		if (place(m, what, ph.p_paddr, ph.p_memsz, k->data + ph.p_offset, ph.p_filesz) < 0)
			return -1;
		nload++;
		/* A kernel linked at virtual addresses starts at the physical address of its
		 * entry point. */
		uint64_t e = eh.e_entry;
		if (!entry_found && e >= ph.p_paddr && e < (uint64_t)ph.p_paddr + ph.p_memsz) {
			entry = eh.e_entry;
			entry_found = 1;
		} else if (!entry_found && e >= ph.p_vaddr && e < (uint64_t)ph.p_vaddr + ph.p_memsz) {
			entry = eh.e_entry - ph.p_vaddr + ph.p_paddr;
			entry_found = 1;
		}
	}
	if (nload == 0) {
		complain("%s has no loadable ELF segment", name);
		return -1;
	}
	if (!entry_found) {
		complain("%s: entry point 0x%x is not inside a loaded segment", name, eh.e_entry);
		return -1;
	}
	m->entry = entry;
	return 0;
}

/* Flag 16: the header says where the image goes (for kernels that are not ELF). */
static int load_aout_kludge(struct machine *m, const struct file *k, size_t hdr)
{
	const char *name = m->kernel;
	if (hdr + 32 > k->size) {
		complain("%s: multiboot header truncated", name);
		return -1;
	}
	const uint8_t *h = k->data + hdr;
	uint32_t header_addr = le32(h + 12), load_addr = le32(h + 16), load_end = le32(h + 20);
	uint32_t bss_end = le32(h + 24), entry = le32(h + 28);
	if (header_addr < load_addr || header_addr - load_addr > hdr) {
		complain("%s: multiboot header_addr 0x%x and load_addr 0x%x do not match the "
			 "header's place in the file", name, header_addr, load_addr);
		return -1;
	}
	uint64_t offset = hdr - (header_addr - load_addr);
	uint64_t size = k->size - offset;
	if (load_end) {
		if (load_end < load_addr || load_end - load_addr > size) {
			complain("%s: multiboot load_end_addr 0x%x is invalid", name, load_end);
			return -1;
		}
		size = load_end - load_addr;
	}
	uint64_t memsz = size;
	if (bss_end) {
		if (bss_end < load_addr + size) {
			complain("%s: multiboot bss_end_addr 0x%x is below the image's end", name, bss_end);
			return -1;
		}
		memsz = bss_end - load_addr;
	}
	if (place(m, "kernel image", load_addr, memsz, k->data + offset, size) < 0)
		return -1;
	m->entry = entry;
	return 0;
}

/* Finds a place for `size` bytes in [lo, hi) clear of everything loaded. */
static uint64_t find_room(uint64_t lo, uint64_t hi, uint64_t size)
{
	uint64_t a = lo;
	for (int moved = 1; moved;) {
		moved = 0;
		for (unsigned i = 0; i < nused; i++) {
			if (a < used[i].end && a + size > used[i].start) {
				a = align_up(used[i].end, 16);
				moved = 1;
			}
		}
	}
	return a + size <= hi ? a : 0;
}

int multiboot_load(struct machine *m)
{
	struct file k;
	if (read_whole(m->kernel, "kernel", m->low_size, &k) < 0)
		return -1;
	size_t hdr = 0;
	int found = 0;
	uint32_t flags = 0;
	for (size_t off = 0; off + 12 <= k.size && off + 12 <= MB_SEARCH; off += 4) {
		if (le32(k.data + off) != MB_MAGIC)
			continue;
		flags = le32(k.data + off + 4);
		if (MB_MAGIC + flags + le32(k.data + off + 8) == 0) {
			hdr = off;
			found = 1;
			break;
		}
	}
	if (!found) {
		complain("%s is not a multiboot kernel (no multiboot header in its first %d bytes)",
			 m->kernel, MB_SEARCH);
		free(k.data);
		return -1;
	}
	if (flags & 0xffff & ~MB_FLAGS_KNOWN) {
		complain("%s asks for multiboot features kvmrun does not provide (flags 0x%x)",
			 m->kernel, flags & 0xffff & ~MB_FLAGS_KNOWN);
		free(k.data);
		return -1;
	}
	int r = flags & MB_FLAG_AOUT_KLUDGE ? load_aout_kludge(m, &k, hdr) : load_elf(m, &k);
	free(k.data);
	if (r < 0)
		return -1;
	if (m->entry >= m->low_size) {
		complain("%s: entry point 0x%x is outside the guest's RAM", m->kernel, m->entry);
		return -1;
	}

	/* Modules: page-aligned, after the kernel (and above 1 MiB). */
	uint64_t next = BIOS_AREA_END;
	for (unsigned i = 0; i < nused; i++)
		if (used[i].end > next)
			next = used[i].end;
	next = align_up(next, 4096);
	struct mb_mod *mods = calloc(m->nmodules + 1, sizeof(*mods));
	if (!mods) {
		complain("out of memory");
		return -1;
	}
	for (unsigned i = 0; i < m->nmodules; i++) {
		struct file f;
		if (read_whole(m->modules[i].path, "module", m->low_size, &f) < 0)
			goto fail;
		char what[64];
		snprintf(what, sizeof(what), "module %u", i);
		r = place(m, what, next, f.size ? f.size : 1, f.data, f.size);
		free(f.data);
		if (r < 0)
			goto fail;
		mods[i].start = (uint32_t)next;
		mods[i].end = (uint32_t)(next + f.size);
		next = align_up(next + (f.size ? f.size : 1), 4096);
	}

	/* The information block: GDT, info, memory map, module list, strings. */
	struct mb_mmap map[8];
	unsigned nmap = 0;
#define MAP(a, l, t) (map[nmap++] = (struct mb_mmap){ 20, (a), (l), (t) })
	MAP(0, 0xa0000, 1);
	MAP(BIOS_AREA, BIOS_AREA_END - BIOS_AREA, 2);
	MAP(BIOS_AREA_END, m->low_size - BIOS_AREA_END, 1);
	MAP(IDENTITY_MAP_ADDR, TESTDEV_MMIO - IDENTITY_MAP_ADDR, 2);
	MAP(TSS_ADDR, 3 * 4096, 2);
	if (m->high_size)
		MAP(HIGH_RAM_BASE, m->high_size, 1);
#undef MAP
	static const char loader[] = "kvmrun";
	size_t cmdline_len = strlen(m->kernel) + 1 + strlen(m->append ? m->append : "") + 1;
	size_t strings = sizeof(loader) + cmdline_len;
	for (unsigned i = 0; i < m->nmodules; i++)
		strings += strlen(m->modules[i].cmdline) + 1;
	size_t o_gdt = 0, o_info = 24, o_map = o_info + sizeof(struct mb_info);
	size_t o_mods = o_map + nmap * sizeof(struct mb_mmap);
	size_t o_str = o_mods + m->nmodules * sizeof(struct mb_mod);
	size_t size = o_str + strings;

	uint64_t at = find_room(0x1000, 0x8000, size);
	if (!at)
		at = find_room(0xe000, 0xa0000, size);
	if (!at)
		at = find_room(next, m->low_size, size);
	if (!at) {
		complain("no room left in the guest's RAM for the multiboot information (see -m)");
		goto fail;
	}
	uint8_t *b = calloc(1, size);
	if (!b) {
		complain("out of memory");
		goto fail;
	}
	static const uint64_t gdt[3] = { 0, 0x00cf9a000000ffffULL, 0x00cf92000000ffffULL };
	memcpy(b + o_gdt, gdt, sizeof(gdt));

	struct mb_info info;
	memset(&info, 0, sizeof(info));
	info.flags = MBI_MEMORY | MBI_BOOT_DEVICE | MBI_CMDLINE | MBI_MODS | MBI_MMAP | MBI_LOADER_NAME;
	info.mem_lower = 640;
	info.mem_upper = (uint32_t)(m->low_size / 1024 - 1024);
	info.boot_device = 0x8000ffff;
	info.mmap_addr = (uint32_t)(at + o_map);
	info.mmap_length = (uint32_t)(nmap * sizeof(struct mb_mmap));
	info.mods_count = m->nmodules;
	info.mods_addr = (uint32_t)(at + o_mods);
	size_t s = o_str;
	memcpy(b + s, loader, sizeof(loader));
	info.boot_loader_name = (uint32_t)(at + s);
	s += sizeof(loader);
	info.cmdline = (uint32_t)(at + s);
	s += (size_t)sprintf((char *)b + s, "%s %s", m->kernel, m->append ? m->append : "") + 1;
	for (unsigned i = 0; i < m->nmodules; i++) {
		size_t l = strlen(m->modules[i].cmdline) + 1;
		memcpy(b + s, m->modules[i].cmdline, l);
		mods[i].cmdline = (uint32_t)(at + s);
		s += l;
	}
	memcpy(b + o_info, &info, sizeof(info));
	memcpy(b + o_map, map, nmap * sizeof(struct mb_mmap));
	memcpy(b + o_mods, mods, m->nmodules * sizeof(struct mb_mod));
	r = place(m, "multiboot information", at, size, b, size);
	free(b);
	free(mods);
	m->gdt = (uint32_t)(at + o_gdt);
	m->mbi = (uint32_t)(at + o_info);
	return r;
fail:
	free(mods);
	return -1;
}
