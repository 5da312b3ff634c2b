/* The migration test kernel: every vcpu keeps rewriting a region of its own with a
 * running checksum, in ring 3 under long-mode paging (port I/O through out %al, %dx) (native speed on hosts where
 * kernel-mode code goes through KVM's emulator), while the boot vcpu counts the PIT's
 * timer interrupts. kvmrun migrates or snapshots it midway; the result must equal an
 * unmigrated run's exactly. Arguments:
 *   cpus=N     vcpus taking part (default 1)
 *   kb=K       KiB each vcpu rewrites (default 1024), at 16 MiB + vcpu * (K + 64) KiB
 *   passes=P   rewrites of the region (default 100)
 *   hz=H       PIT rate (default 100)
 *   nowait     do not wait for a timer tick after each pass (dirty at full speed)
 * Each pass p rewrites every 64-bit word x of the region as x * A + (p << 32 | i) and
 * folds the new value into the vcpu's checksum; the 16 pages after the region are filled
 * on pass 0 and page p - 1 of them zeroed on pass p = 1..16, for good (pages that turn
 * zero again: a migration must send them as such); after the last pass every vcpu
 * re-reads both into a second checksum (a write lost in migration shows there, or in the
 * next pass's values). Without `nowait`, every vcpu waits for the next timer
 * interrupt after each pass: the boot vcpu waits for exactly P ticks, so "ticks-waited P" is
 * deterministic, and a timer that stops after a migration hangs the guest (kvmrun -t
 * ends it). The result line:
 *   migtest: cpus N kb K passes P checksum C readback R ticks-waited T devices ok
 * ("devices ok": the UART's and pc-testdev's scratch registers kept what kmain wrote)
 * then "migtest: timer ok" if at least T interrupts arrived, and the kernel exits with
 * isa-debug-exit 0 (kvmrun status 1). */
#include "lib.h"

#define MAX_CPUS 16
#define REGION_BASE 0x1000000u
#define FLIP_KB 64 /* after each region: 16 pages, filled on pass 0, page p - 1 zeroed on pass p */
#define FLIP_WORDS_S "8192"

struct __attribute__((packed)) tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3, iomap;
};

/* Shared with the 64-bit code below (absolute addresses: everything is below 2 GiB). */
uint64_t pml4[512] __attribute__((aligned(4096)));
uint64_t pdpt[512] __attribute__((aligned(4096)));
uint64_t pd[4][512] __attribute__((aligned(4096)));
uint64_t gdt64[7 + 2 * MAX_CPUS] __attribute__((aligned(16)));
/* 10 bytes: lidt in long mode reads a 64-bit base (lgdt in 32-bit mode the low 4). */
struct __attribute__((packed)) { uint16_t limit; uint64_t base; } gdt64_ptr, idt64_ptr;
uint64_t idt64[2 * 256] __attribute__((aligned(16)));
struct tss64 tss[MAX_CPUS];
uint8_t kstacks[MAX_CPUS][4096] __attribute__((aligned(16)));
uint8_t ustacks[MAX_CPUS][4096] __attribute__((aligned(16)));
/* Per vcpu: region base, words, passes, wait flag; results. */
struct job {
	uint64_t base, words, passes, wait, sum, readback, done, pad;
} jobs[MAX_CPUS];
volatile uint64_t ticks;
uint64_t ncpus;
volatile uint64_t report_req;
uint64_t user_rsp[MAX_CPUS];

void go_long(unsigned cpu) __attribute__((noreturn));
extern const char timer_isr[], spurious_isr[], bad_isr[];

__asm__(
	".text\n"
	".code32\n"
	".globl go_long\n"
	"go_long:\n"
	"	mov 4(%esp), %edi\n"
	"	mov $pml4, %eax\n"
	"	mov %eax, %cr3\n"
	"	mov %cr4, %eax\n"
	"	or $0x20, %eax\n"          /* PAE */
	"	mov %eax, %cr4\n"
	"	mov $0xc0000080, %ecx\n"   /* EFER.LME */
	"	rdmsr\n"
	"	or $0x100, %eax\n"
	"	wrmsr\n"
	"	lgdt gdt64_ptr\n"
	"	mov %cr0, %eax\n"
	"	or $0x80000000, %eax\n"    /* PG */
	"	mov %eax, %cr0\n"
	"	ljmp $0x18, $long_entry\n"
	".code64\n"
	"long_entry:\n"
	"	mov $0x20, %ax\n"
	"	mov %ax, %ds\n"
	"	mov %ax, %es\n"
	"	mov %ax, %ss\n"
	"	mov %ax, %fs\n"
	"	mov %ax, %gs\n"
	"	mov $idt64_ptr, %eax\n"
	"	lidt (%rax)\n"
	"	mov %edi, %eax\n"
	"	shl $4, %eax\n"
	"	add $0x38, %eax\n"
	"	ltr %ax\n"
	"	mov %edi, %edi\n"
	"	pushq $0x2b\n"
	"	mov $user_rsp, %eax\n"
	"	pushq (%rax,%rdi,8)\n"
	"	mov $0x0002, %eax\n"
	"	test %edi, %edi\n"
	"	jnz 1f\n"
	"	or $0x200, %eax\n"         /* interrupts on for the boot vcpu only */
	"1:	push %rax\n"
	"	pushq $0x33\n"
	"	mov $user_main, %eax\n"
	"	push %rax\n"
	"	iretq\n"

	/* Kernel mode: the PIT tick (master PIC, vector 0x20). */
	".globl timer_isr, spurious_isr, bad_isr\n"
	"timer_isr:\n"
	"	push %rax\n"
	"	mov $ticks, %eax\n"
	"	lock incq (%rax)\n"
	"	mov $0x20, %al\n"
	"	out %al, $0x20\n"
	"	mov $report_req, %eax\n"
	"	cmpq $0, (%rax)\n"
	"	jne report_and_exit\n"
	"	pop %rax\n"
	"	iretq\n"
	/* The result is printed in kernel mode, by the tick after the boot vcpu asked for
	 * it: ring 3 gets no port I/O (IOPL 3) and no way into the kernel (int $n, syscall)
	 * on every host (kvm_pvm refuses them), but interrupts reach the kernel everywhere. */
	"report_and_exit:\n"
	"	call report\n"
	"	xor %eax, %eax\n"
	"	out %al, $0xf4\n"
	"23:	hlt\n"
	"	jmp 23b\n"
	"spurious_isr:\n"
	"	iretq\n"
	"bad_isr:\n"
	"	mov $bad_msg, %esi\n"
	"2:	lodsb\n"
	"	test %al, %al\n"
	"	jz 3f\n"
	"	mov $0x3f8, %dx\n"
	"	out %al, %dx\n"
	"	jmp 2b\n"
	"3:	mov $0x7f, %al\n"
	"	out %al, $0xf4\n"
	"	hlt\n"
	"	jmp 3b\n"

	/* Ring 3. %rdi = vcpu; %rbp = its job. */
	"user_main:\n"
	"	mov %rdi, %rbp\n"
	"	shl $6, %rbp\n"
	"	mov $jobs, %eax\n"
	"	add %rax, %rbp\n"
	"	mov $ticks, %r11d\n"
	"	mov $ncpus, %r9d\n"
	"	mov $jobs, %r8d\n"
	"	xor %r12, %r12\n"           /* pass */
	"	xor %rbx, %rbx\n"           /* checksum */
	"	movabs $6364136223846793005, %r14\n"
	"	cmpq $0, 16(%rbp)\n"
	"	je 7f\n"
	"4:	mov 0(%rbp), %rsi\n"
	"	mov 8(%rbp), %rcx\n"
	"	mov %r12, %r13\n"
	"	shl $32, %r13\n"
	"5:	mov (%rsi), %rax\n"
	"	imul %r14, %rax\n"
	"	add %r13, %rax\n"
	"	mov %rax, (%rsi)\n"
	"	xor %rax, %rbx\n"
	"	rol $7, %rbx\n"
	"	inc %r13\n"
	"	add $8, %rsi\n"
	"	dec %rcx\n"
	"	jnz 5b\n"
	/* the flip area after the region: filled on pass 0, then its page p - 1 zeroed on
	 * pass p = 1..16 and never written again (the stream's zero runs) */
	"	mov %r12, %rax\n"
	"	test %rax, %rax\n"
	"	jnz 26f\n"
	"	movabs $0x5a5a5a5a5a5a5a5a, %rax\n"
	"	mov $" FLIP_WORDS_S ", %ecx\n"
	"25:	mov %rax, (%rsi)\n"
	"	add $8, %rsi\n"
	"	dec %rcx\n"
	"	jnz 25b\n"
	"	jmp 27f\n"
	"26:	cmp $16, %rax\n"
	"	ja 27f\n"
	"	dec %rax\n"
	"	shl $12, %rax\n"
	"	add %rax, %rsi\n"
	"	xor %eax, %eax\n"
	"	mov $512, %ecx\n"
	"28:	mov %rax, (%rsi)\n"
	"	add $8, %rsi\n"
	"	dec %rcx\n"
	"	jnz 28b\n"
	"27:\n"
	"	cmpq $0, 24(%rbp)\n"
	"	je 6f\n"
	"	mov (%r11), %rax\n"
	"8:	pause\n"
	"	cmp (%r11), %rax\n"
	"	je 8b\n"
	"6:	inc %r12\n"
	"	cmp 16(%rbp), %r12\n"
	"	jb 4b\n"
	"7:	mov %rbx, 32(%rbp)\n"
	"	mov 0(%rbp), %rsi\n"         /* read back, the flip area too */
	"	mov 8(%rbp), %rcx\n"
	"	add $" FLIP_WORDS_S ", %rcx\n"
	"	xor %rbx, %rbx\n"
	"9:	mov (%rsi), %rax\n"
	"	add %rax, %rbx\n"
	"	rol $13, %rbx\n"
	"	add $8, %rsi\n"
	"	dec %rcx\n"
	"	jnz 9b\n"
	"	mov %rbx, 40(%rbp)\n"
	"	movq $1, 48(%rbp)\n"
	"	test %rdi, %rdi\n"
	"	jz 10f\n"
	"11:	pause\n"                  /* the APs are done: spin until the machine ends */
	"	jmp 11b\n"
	"10:	xor %rdx, %rdx\n"           /* the boot vcpu waits for every vcpu */
	"12:	cmp (%r9), %rdx\n"
	"	jae 13f\n"
	"	mov %rdx, %rax\n"
	"	shl $6, %rax\n"
	"14:	pause\n"
	"	cmpq $0, 48(%r8,%rax)\n"
	"	je 14b\n"
	"	inc %rdx\n"
	"	jmp 12b\n"
	"13:	mov $report_req, %eax\n"
	"	movq $1, (%rax)\n"
	"15:	pause\n"
	"	jmp 15b\n"

	/* report: the result line (kernel mode). */
	"report:\n"
	"	mov $jobs, %r12d\n"
	"	mov $ncpus, %r13d\n"
	"	mov $msg_cpus, %esi\n"
	"	call puts64\n"
	"	mov (%r13), %rax\n"
	"	call putdec\n"
	"	mov $msg_kb, %esi\n"
	"	call puts64\n"
	"	mov 8(%r12), %rax\n"
	"	shr $7, %rax\n"
	"	call putdec\n"
	"	mov $msg_passes, %esi\n"
	"	call puts64\n"
	"	mov 16(%r12), %rax\n"
	"	call putdec\n"
	"	xor %rbx, %rbx\n"
	"	xor %r15, %r15\n"
	"	xor %rdx, %rdx\n"
	"16:	mov %rdx, %rax\n"
	"	shl $6, %rax\n"
	"	rol $17, %rbx\n"
	"	xor 32(%r12,%rax), %rbx\n"
	"	rol $17, %r15\n"
	"	xor 40(%r12,%rax), %r15\n"
	"	inc %rdx\n"
	"	cmp (%r13), %rdx\n"
	"	jb 16b\n"
	"	mov $msg_sum, %esi\n"
	"	call puts64\n"
	"	mov %rbx, %rax\n"
	"	call puthex\n"
	"	mov $msg_readback, %esi\n"
	"	call puts64\n"
	"	mov %r15, %rax\n"
	"	call puthex\n"
	"	mov $msg_ticks, %esi\n"
	"	call puts64\n"
	"	xor %eax, %eax\n"
	"	cmpq $0, 24(%r12)\n"
	"	je 17f\n"
	"	mov 16(%r12), %rax\n"
	"17:	mov %rax, %rbx\n"
	"	call putdec\n"
	"	mov $msg_dev_ok, %esi\n"       /* device state kept: UART scratch, pc-testdev scratch */
	"	mov $0x3ff, %dx\n"
	"	in %dx, %al\n"
	"	cmp $0xa5, %al\n"
	"	jne 29f\n"
	"	mov $0xe0, %dx\n"
	"	in %dx, %eax\n"
	"	cmp $0x4b564d52, %eax\n"
	"	je 30f\n"
	"29:	mov $msg_dev_lost, %esi\n"
	"30:	call puts64\n"
	"	mov $msg_nl, %esi\n"
	"	call puts64\n"
	"	mov $msg_timer_ok, %esi\n"
	"	mov $ticks, %eax\n"
	"	cmp (%rax), %rbx\n"
	"	jbe 18f\n"
	"	mov $msg_timer_bad, %esi\n"
	"18:	call puts64\n"
	"	ret\n"
	"puts64:\n"
	"	mov $0x3f8, %dx\n"
	"19:	lodsb\n"
	"	test %al, %al\n"
	"	jz 20f\n"
	"	out %al, %dx\n"
	"	jmp 19b\n"
	"20:	ret\n"
	"puthex:\n"                        /* %rax, 16 digits */
	"	mov $hexdigits, %r11d\n"
	"	mov %rax, %r8\n"
	"	mov $16, %ecx\n"
	"	mov $0x3f8, %dx\n"
	"21:	rol $4, %r8\n"
	"	mov %r8d, %eax\n"
	"	and $15, %eax\n"
	"	movb (%r11,%rax), %al\n"
	"	out %al, %dx\n"
	"	dec %ecx\n"
	"	jnz 21b\n"
	"	ret\n"
	"putdec:\n"                        /* %rax, decimal */
	"	mov %rsp, %r9\n"
	"	mov $10, %r10\n"
	"	sub $32, %rsp\n"
	"	lea 31(%rsp), %rsi\n"
	"	movb $0, (%rsi)\n"
	"22:	xor %edx, %edx\n"
	"	div %r10\n"
	"	add $'0', %dl\n"
	"	dec %rsi\n"
	"	mov %dl, (%rsi)\n"
	"	test %rax, %rax\n"
	"	jnz 22b\n"
	"	call puts64\n"
	"	mov %r9, %rsp\n"
	"	ret\n"
	".code32\n"
	".section .rodata\n"
	"hexdigits: .ascii \"0123456789abcdef\"\n"
	"bad_msg: .asciz \"FAIL migtest: unexpected exception in long mode\\n\"\n"
	"msg_cpus: .asciz \"migtest: cpus \"\n"
	"msg_kb: .asciz \" kb \"\n"
	"msg_passes: .asciz \" passes \"\n"
	"msg_sum: .asciz \" checksum \"\n"
	"msg_readback: .asciz \" readback \"\n"
	"msg_ticks: .asciz \" ticks-waited \"\n"
	"msg_nl: .asciz \"\\n\"\n"
	"msg_dev_ok: .asciz \" devices ok\"\n"
	"msg_dev_lost: .asciz \" devices LOST\"\n"
	"msg_timer_ok: .asciz \"migtest: timer ok\\n\"\n"
	"msg_timer_bad: .asciz \"FAIL migtest: fewer timer interrupts than ticks waited for\\n\"\n"
	".text\n");

static void gate(unsigned v, const void *handler)
{
	uint32_t h = (uint32_t)(uintptr_t)handler;
	/* 64-bit interrupt gate, present, selector 0x18 (64-bit code); DPL 3 for out %al, %dx */
	idt64[2 * v] = (uint64_t)(h & 0xffff) | (uint64_t)0x18 << 16 | (uint64_t)0x8e00 << 32 |
		       (uint64_t)(h >> 16) << 48;
	idt64[2 * v + 1] = 0;
}

static void tables_init(void)
{
	/* Identity map of the low 4 GiB in 2 MiB pages, user-accessible. */
	pml4[0] = (uint32_t)(uintptr_t)pdpt | 7;
	for (unsigned i = 0; i < 4; i++) {
		pdpt[i] = (uint32_t)(uintptr_t)pd[i] | 7;
		for (unsigned j = 0; j < 512; j++)
			pd[i][j] = ((uint64_t)i << 30) + ((uint64_t)j << 21) + 0x87;
	}
	gdt64[1] = 0x00cf9a000000ffffull; /* 0x08 32-bit code */
	gdt64[2] = 0x00cf92000000ffffull; /* 0x10 data */
	gdt64[3] = 0x00209a0000000000ull; /* 0x18 64-bit code, DPL 0 */
	gdt64[4] = 0x0000920000000000ull; /* 0x20 data, DPL 0 */
	gdt64[5] = 0x0000f20000000000ull; /* 0x28 data, DPL 3 (selector 0x2b) */
	gdt64[6] = 0x0020fa0000000000ull; /* 0x30 64-bit code, DPL 3 (selector 0x33) */
	for (unsigned c = 0; c < MAX_CPUS; c++) {
		tss[c].rsp[0] = (uint32_t)(uintptr_t)(kstacks[c] + sizeof(kstacks[c]));
		tss[c].iomap = sizeof(struct tss64);
		user_rsp[c] = (uint32_t)(uintptr_t)(ustacks[c] + sizeof(ustacks[c]));
		uint32_t b = (uint32_t)(uintptr_t)&tss[c];
		uint32_t limit = sizeof(struct tss64) - 1;
		gdt64[7 + 2 * c] = (uint64_t)(limit & 0xffff) | (uint64_t)(b & 0xffffff) << 16 |
				   (uint64_t)0x89 << 40 | (uint64_t)(b >> 24) << 56;
		gdt64[8 + 2 * c] = 0;
	}
	gdt64_ptr.limit = sizeof(gdt64) - 1;
	gdt64_ptr.base = (uint32_t)(uintptr_t)gdt64;
	for (unsigned v = 0; v < 256; v++)
		gate(v, v == 0x20 ? (const void *)timer_isr : v > 0x20 && v < 0x30 ? (const void *)spurious_isr : (const void *)bad_isr);
	idt64_ptr.limit = sizeof(idt64) - 1;
	idt64_ptr.base = (uint32_t)(uintptr_t)idt64;
}

/* The master PIC at vector 0x20 with only IRQ 0 open, the slave closed; the PIT at `hz`. */
static void timer_init(uint32_t hz)
{
	outb(0x20, 0x11);
	outb(0x21, 0x20);
	outb(0x21, 0x04);
	outb(0x21, 0x01);
	outb(0x21, 0xfe);
	outb(0xa1, 0xff);
	uint32_t count = 1193182u / hz;
	outb(0x43, 0x34);
	outb(0x40, (uint8_t)count);
	outb(0x40, (uint8_t)(count >> 8));
}

void ap_main(unsigned id)
{
	go_long(id);
}

int kmain(uint32_t magic, const struct mb_info *mbi);
int kmain(uint32_t magic, const struct mb_info *mbi)
{
	(void)magic;
	const char *cmdline = (const char *)(uintptr_t)mbi->cmdline;
	uint32_t cpus = arg_u32(cmdline, "cpus", 1);
	uint32_t kb = arg_u32(cmdline, "kb", 1024);
	uint32_t passes = arg_u32(cmdline, "passes", 100);
	uint32_t hz = arg_u32(cmdline, "hz", 100);
	int wait = !arg_has(cmdline, "nowait");
	if (cpus < 1 || cpus > MAX_CPUS || kb < 4 || kb % 4 || passes < 1 || hz < 19 || hz > 10000) {
		kprintf("FAIL migtest: bad arguments\n");
		return 0x7e;
	}
	uint64_t mem_kb = ((uint64_t)mbi->mem_upper + 1024);
	if (REGION_BASE / 1024 + (uint64_t)cpus * (kb + FLIP_KB) > mem_kb) {
		kprintf("FAIL migtest: %u x %u KiB does not fit in RAM above 16 MiB\n", cpus, kb);
		return 0x7e;
	}
	kprintf("migtest: %u vcpus, %u KiB each, %u passes%s\n", cpus, kb, passes, wait ? "" : ", no waiting");
	ncpus = cpus;
	for (unsigned c = 0; c < cpus; c++) {
		jobs[c].base = REGION_BASE + (uint64_t)c * (kb + FLIP_KB) * 1024;
		jobs[c].words = (uint64_t)kb * 128;
		jobs[c].passes = passes;
		jobs[c].wait = (uint64_t)wait;
	}
	outb(0x3ff, 0xa5);       /* UART scratch register */
	outl(0xe0, 0x4b564d52);  /* pc-testdev scratch register */
	tables_init();
	timer_init(hz);
	unsigned ids[MAX_CPUS];
	for (unsigned i = 1; i < cpus; i++)
		ids[i - 1] = i;
	start_aps(ids, cpus - 1);
	go_long(0);
}
