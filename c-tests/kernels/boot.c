/* What kvmrun hands a multiboot kernel: EAX magic, the multiboot information (memory
 * sizes, memory map, command line, modules, loader name) and where it lies, flat
 * protected mode with paging and interrupts off, a usable GDT. The command line carries
 * what to expect: mem=<MiB> mods=<count> and the module contents (see kvmrun.sh). */
#include "lib.h"

extern const uint8_t boot_gdtr[6];
extern const uint32_t boot_cr0, boot_eflags;

static int outside_reserved(uint32_t start, uint32_t end)
{
	/* off page 0 and off 0x8000-0xdfff */
	return start >= 0x1000 && (end <= 0x8000 || start >= 0xe000);
}

int kmain(uint32_t magic, const struct mb_info *mbi);
int kmain(uint32_t magic, const struct mb_info *mbi)
{
	CHECK(magic == 0x2badb002, "EAX = 0x2badb002 (0x%x)", magic);
	CHECK((boot_cr0 & 0x80000001) == 1, "CR0: protected mode, paging off (0x%x)", boot_cr0);
	CHECK(!(boot_eflags & 0x200), "EFLAGS.IF clear (0x%x)", boot_eflags);
	uint32_t gdt_base;
	uint16_t gdt_limit;
	memcpy(&gdt_limit, boot_gdtr, 2);
	memcpy(&gdt_base, boot_gdtr + 2, 4);
	const uint32_t *g = (const uint32_t *)(uintptr_t)gdt_base;
	CHECK(gdt_limit >= 23 && g[2] == 0xffff && g[3] == 0x00cf9a00 && g[4] == 0xffff && g[5] == 0x00cf9200,
	      "GDT at 0x%x: flat code 0x08 and data 0x10", gdt_base);
	CHECK(outside_reserved(gdt_base, gdt_base + gdt_limit + 1), "GDT off page 0 and 0x8000-0xdfff");
	CHECK(outside_reserved((uint32_t)(uintptr_t)mbi, (uint32_t)(uintptr_t)mbi + 88),
	      "multiboot information at 0x%x: off page 0 and 0x8000-0xdfff", (uint32_t)(uintptr_t)mbi);
	uint32_t need = 1u << 0 | 1u << 2 | 1u << 3 | 1u << 6 | 1u << 9;
	CHECK((mbi->flags & need) == need, "flags 0x%x: memory, cmdline, mods, mmap, loader name", mbi->flags);

	const char *cmdline = (const char *)(uintptr_t)mbi->cmdline;
	kprintf("command line: \"%s\"\n", cmdline);
	CHECK(outside_reserved(mbi->cmdline, mbi->cmdline + (uint32_t)strlen(cmdline) + 1), "command line placed safely");
	/* "<kernel name> <append>": the first word is this kernel's file */
	size_t first = 0;
	while (cmdline[first] && cmdline[first] != ' ')
		first++;
	CHECK(first >= 8 && strncmp(cmdline + first - 8, "boot.elf", 8) == 0, "first word is the kernel's name");
	CHECK(arg_has(cmdline, "hello") && arg_has(cmdline, "world"), "-append words follow it");

	uint32_t mem = arg_u32(cmdline, "mem", 128);
	uint32_t low = mem > 3584 ? 3584 : mem;
	CHECK(mbi->mem_lower == 640, "mem_lower = 640 (%u)", mbi->mem_lower);
	CHECK(mbi->mem_upper == low * 1024 - 1024, "mem_upper = %u KiB (%u)", low * 1024 - 1024, mbi->mem_upper);

	/* the memory map: RAM from 1 MiB to the end of low RAM, and above 4 GiB the rest */
	uint64_t ram_low = 0, ram_high = 0, reserved_bios = 0;
	for (uint32_t off = 0; off < mbi->mmap_length;) {
		const struct mb_mmap *e = (const struct mb_mmap *)(uintptr_t)(mbi->mmap_addr + off);
		kprintf("mmap %x%x +%x%x type %u\n", (uint32_t)(e->addr >> 32), (uint32_t)e->addr,
			(uint32_t)(e->len >> 32), (uint32_t)e->len, e->type);
		if (e->type == 1 && e->addr == 0x100000)
			ram_low = e->len;
		if (e->type == 1 && e->addr == 0x100000000ULL)
			ram_high = e->len;
		if (e->type == 2 && e->addr <= 0xf0000 && e->addr + e->len >= 0x100000)
			reserved_bios = 1;
		off += e->size + 4;
	}
	CHECK(ram_low == ((uint64_t)low << 20) - 0x100000, "mmap: RAM 1 MiB-%u MiB", low);
	CHECK(ram_high == ((uint64_t)(mem - low) << 20), "mmap: %u MiB above 4 GiB", mem - low);
	CHECK(reserved_bios, "mmap: BIOS area reserved");

	const char *loader = (const char *)(uintptr_t)mbi->boot_loader_name;
	CHECK(strlen(loader) == 6 && memcmp(loader, "kvmrun", 6) == 0, "loader name \"%s\"", loader);

	/* modules: mods=N, each file holding "module <i>\n", its cmdline "<file> arg<i>" */
	uint32_t nmods = arg_u32(cmdline, "mods", 0);
	CHECK(mbi->mods_count == nmods, "%u modules (%u)", nmods, mbi->mods_count);
	const struct mb_mod *mods = (const struct mb_mod *)(uintptr_t)mbi->mods_addr;
	uint32_t prev_end = 0x100000;
	for (uint32_t i = 0; i < mbi->mods_count && i < 8; i++) {
		const char *data = (const char *)(uintptr_t)mods[i].start;
		const char *mcmd = (const char *)(uintptr_t)mods[i].cmdline;
		char want[] = "module ?\n";
		want[7] = (char)('0' + i);
		kprintf("module %u at 0x%x-0x%x: \"%s\"\n", i, mods[i].start, mods[i].end, mcmd);
		CHECK(mods[i].end - mods[i].start == 9 && memcmp(data, want, 9) == 0, "module %u contents", i);
		CHECK((mods[i].start & 0xfff) == 0 && mods[i].start >= prev_end, "module %u page-aligned, after the kernel", i);
		char arg[] = "arg?";
		arg[3] = (char)('0' + i);
		CHECK(arg_has(mcmd, arg), "module %u command line has \"%s\"", i, arg);
		prev_end = mods[i].end;
	}
	return finish();
}
