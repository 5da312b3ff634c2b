/* Ways for a guest to end, chosen by the command line: "triple" (#UD with no IDT: a triple fault),
 * "mmio-exec" (running code from MMIO, which KVM cannot emulate), "hlt" (halting with
 * interrupts off forever), "spin" (looping forever), "exit=<n>" (isa-debug-exit n),
 * "exit16=<n>" (a 16-bit write). */
#include "lib.h"

int kmain(uint32_t magic, const struct mb_info *mbi);
int kmain(uint32_t magic, const struct mb_info *mbi)
{
	(void)magic;
	const char *cmdline = (const char *)(uintptr_t)mbi->cmdline;
	kprintf("exits: %s\n", cmdline);
	if (arg_has(cmdline, "triple")) {
		struct __attribute__((packed)) { uint16_t limit; uint32_t base; } none = { 0, 0 };
		__asm__ volatile("lidt %0; ud2" : : "m"(none));
	}
	if (arg_has(cmdline, "mmio-exec"))
		((void (*)(void))0xff000000u)();
	if (arg_has(cmdline, "hlt"))
		for (;;)
			__asm__ volatile("cli; hlt");
	if (arg_has(cmdline, "spin"))
		for (;;)
			cpu_relax();
	if (arg_u32(cmdline, "exit16", 0xffffffff) != 0xffffffff) {
		outw(0xf4, (uint16_t)arg_u32(cmdline, "exit16", 0));
		return 0x7f;
	}
	return (int)arg_u32(cmdline, "exit", 0);
}
