/* The VM: guest memory, the in-kernel interrupt controllers and PIT with QEMU's interrupt
 * routing, the PICs, PIT and local APIC as QEMU's BIOS hands them over, and each vcpu's
 * CPUID and initial state. */
#define _GNU_SOURCE
#include "kvmrun.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int fail(const char *what)
{
	complain("%s: %s", what, strerror(errno));
	return -1;
}

/* GSI routing as QEMU sets it up for the pc machine: GSIs 0-15 reach the PICs (but for
 * the cascade, 2), and the IOAPIC pins 0-23 with GSI 0 (the PIT) on pin 2, to match
 * the interrupt source override in the MADT. */
static int set_gsi_routing(int vm)
{
	size_t n = 0, max = 15 + 23;
	struct kvm_irq_routing *r = calloc(1, sizeof(*r) + max * sizeof(r->entries[0]));
	if (!r)
		return fail("routing table");
	for (unsigned gsi = 0; gsi < 16; gsi++) {
		if (gsi == 2)
			continue;
		struct kvm_irq_routing_entry *e = &r->entries[n++];
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_IRQCHIP;
		e->u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
		e->u.irqchip.pin = gsi & 7;
	}
	for (unsigned gsi = 0; gsi < 24; gsi++) {
		if (gsi == 2)
			continue;
		struct kvm_irq_routing_entry *e = &r->entries[n++];
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_IRQCHIP;
		e->u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		e->u.irqchip.pin = gsi == 0 ? 2 : gsi;
	}
	r->nr = (uint32_t)n;
	int ret = kvm_set_gsi_routing(vm, r);
	free(r);
	return ret < 0 ? fail("kvm_set_gsi_routing") : 0;
}

/* The interrupt hardware as `qemu-system-x86_64 -M pc -kernel` hands it to a multiboot
 * kernel, after SeaBIOS: measured on QEMU 7.2 (Debian 1:7.2+dfsg-7+deb12u18, TCG and KVM
 * alike) with the monitor's `info pic` / `info lapic` and from inside the guest
 * (c-tests/kernels/irqstate.c, which checks the same here):
 *   PICs   vector bases 0x08 and 0x70, 8086 mode, cascade on IRQ 2, no auto-EOI, no
 *          special fully nested mode, OCW3 reading the IRR; masks 0xb8 (IRQ 0 timer,
 *          1 keyboard, 2 cascade, 6 floppy open) and 0x8e (IRQ 8 RTC, 12 mouse, 13 FPU,
 *          14 IDE open: the lines SeaBIOS enables); ELCR 0x00 and 0x0c (IRQ 10 and 11,
 *          SeaBIOS's PCI interrupt lines, level-triggered). IRQ 11 is masked.
 *   PIT    channel 0 in mode 2 (rate generator), lobyte/hibyte, binary, count 0 (65536):
 *          IRQ 0 at 18.2 Hz, so a kernel's first `sti; hlt` wakes with vector 0x08.
 *   LAPIC  (boot vcpu) enabled, spurious vector 0xff (SVR 0x1ff); LINT0 0x8700 (ExtINT,
 *          level: the PIC), LINT1 0x8400 (NMI); timer, error, PMC and thermal masked;
 *          TPR 0.
 *   IOAPIC ID 0, every pin masked with destination 0: KVM's reset state, so nothing to do
 *          (its version register reads 0x11, KVM's, where QEMU's own IOAPIC has 0x20).
 * No BIOS runs here, so kvmrun writes that state into KVM's devices. */
static int program_pics(int vm)
{
	static const uint8_t base[2] = { 0x08, 0x70 }, imr[2] = { 0xb8, 0x8e }, elcr[2] = { 0x00, 0x0c };
	for (unsigned chip = 0; chip < 2; chip++) {
		struct kvm_irqchip c;
		memset(&c, 0, sizeof(c));
		c.chip_id = chip;
		if (kvm_get_irqchip(vm, &c) < 0)
			return fail("kvm_get_irqchip");
		c.chip.pic.irq_base = base[chip];
		c.chip.pic.imr = imr[chip];
		c.chip.pic.elcr = elcr[chip];
		c.chip.pic.init4 = 1;
		c.chip.pic.init_state = 0;
		c.chip.pic.auto_eoi = 0;
		c.chip.pic.special_fully_nested_mode = 0;
		c.chip.pic.read_reg_select = 0;
		if (kvm_set_irqchip(vm, &c) < 0)
			return fail("kvm_set_irqchip");
	}
	return 0;
}

/* PIT channel 0 as the BIOS programs it (control word 0x34, count 0): KVM starts the
 * periodic timer when the state is set. */
static int program_pit(int vm)
{
	struct kvm_pit_state2 pit;
	if (kvm_get_pit2(vm, &pit) < 0)
		return fail("kvm_get_pit2");
	struct kvm_pit_channel_state *c = &pit.channels[0];
	c->count = 0;
	c->rw_mode = c->read_state = c->write_state = 3; /* lobyte/hibyte */
	c->mode = 2;
	c->bcd = 0;
	c->gate = 1;
	c->count_latched = c->status_latched = 0;
	if (kvm_set_pit2(vm, &pit) < 0)
		return fail("kvm_set_pit2");
	return 0;
}

/* RAM slot `slot` at `gpa`, `flags` (KVM_MEM_LOG_DIRTY_PAGES or 0): memory libkvm
 * allocates, or with -restore the snapshot's memory file from `offset`, which libkvm maps
 * MAP_PRIVATE (kvm_set_memory_region_fd) so that only the pages the guest touches are
 * read, and its writes stay in this process. Again for an existing slot: its flags
 * change, its contents stay. */
static int ram_map(struct machine *m, unsigned slot, unsigned flags, uint64_t gpa, uint64_t size, uint64_t offset)
{
	int r = m->snapshot_fd < 0 ? kvm_set_memory_region(m->vm, slot, flags, gpa, size)
				   : kvm_set_memory_region_fd(m->vm, slot, flags, gpa, size, m->snapshot_fd, offset,
							      MAP_PRIVATE);
	if (r < 0)
		return -1;
	m->ram[slot] = kvm_guest_memory(m->vm, gpa, size);
	return m->ram[slot] ? 0 : -1;
}

unsigned machine_ram_slots(const struct machine *m, unsigned slot[2], uint64_t gpa[2], uint64_t size[2])
{
	slot[0] = 0, gpa[0] = 0, size[0] = m->low_size;
	slot[1] = 1, gpa[1] = HIGH_RAM_BASE, size[1] = m->high_size;
	return m->high_size ? 2 : 1;
}

int machine_dirty_log(struct machine *m, int on)
{
	unsigned slot[2];
	uint64_t gpa[2], size[2];
	unsigned n = machine_ram_slots(m, slot, gpa, size);
	unsigned flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0;
	for (unsigned i = 0; i < n; i++)
		if (ram_map(m, slot[i], flags, gpa[i], size[i], i ? size[0] : 0) < 0)
			return -1;
	return 0;
}

/* The largest dirty ring this host's KVM takes per vcpu, 0 if it has none. */
static uint64_t host_ring_max(void)
{
	int r = kvm_check_extension(-1, KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
	if (r <= 0)
		r = kvm_check_extension(-1, KVM_CAP_DIRTY_LOG_RING);
	return r > 0 ? (uint64_t)r : 0;
}

int machine_adopt_dirty_ring(struct machine *m, uint32_t ring, int contradiction, char *why, size_t whylen)
{
	if (!ring && m->dirty_ring) {
		snprintf(why, whylen, "-dirty-ring: the %s's machine uses the dirty bitmap, "
			 "and libkvm restores a VM only into one with the same kind of dirty log: leave -dirty-ring out",
			 m->incoming ? "stream" : "snapshot");
		return contradiction;
	}
	if (ring && !m->dirty_ring) {
		m->dirty_ring = ring;
		m->ring_from_stream = 1;
	}
	return 0;
}

int machine_dirty_ring(struct machine *m, char *why, size_t whylen)
{
	if (!m->dirty_ring)
		return 0;
	const char *whose = !m->ring_from_stream ? "-dirty-ring" : m->incoming ? "the stream" : "the snapshot";
	uint64_t max = host_ring_max();
	if (!max) {
		snprintf(why, whylen, "%s: this host's KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING)%s", whose,
			 m->ring_from_stream ? ", and the machine logs dirty pages in one" : "");
		return EXIT_HOST;
	}
	if (m->dirty_ring > max) {
		if (!m->ring_from_stream) {
			snprintf(why, whylen, "-dirty-ring %llu: this host's KVM takes at most %llu bytes per vcpu",
				 (unsigned long long)m->dirty_ring, (unsigned long long)max);
			return EXIT_USAGE;
		}
		m->dirty_ring = max; /* the ring's size may differ from the source's */
	}
	if (kvm_enable_dirty_ring(m->vm, (uint32_t)m->dirty_ring) == 0)
		return 0;
	int e = errno;
	snprintf(why, whylen, "%s: kvm_enable_dirty_ring(%llu): %s%s", whose, (unsigned long long)m->dirty_ring,
		 strerror(e), e == EINVAL ? " (a ring too small for the entries KVM keeps in reserve)" : "");
	return e == EINVAL ? EXIT_USAGE : EXIT_HOST;
}

int machine_create(struct machine *m)
{
	m->vm = kvm_create_vm();
	if (m->vm < 0)
		return fail("cannot create a VM (kvm_create_vm)");
	if (kvm_set_tss_addr(m->vm, TSS_ADDR) < 0)
		return fail("kvm_set_tss_addr");
	if (kvm_set_identity_map_addr(m->vm, IDENTITY_MAP_ADDR) < 0)
		return fail("kvm_set_identity_map_addr");

	m->low_size = m->ram_size < LOW_RAM_MAX ? m->ram_size : LOW_RAM_MAX;
	m->high_size = m->ram_size - m->low_size;
	if (ram_map(m, 0, 0, 0, m->low_size, 0) < 0)
		return fail("guest RAM below 4 GiB");
	if (m->high_size && ram_map(m, 1, 0, HIGH_RAM_BASE, m->high_size, m->low_size) < 0)
		return fail("guest RAM above 4 GiB");

	if (kvm_create_irqchip(m->vm) < 0)
		return fail("kvm_create_irqchip");
	if (kvm_create_pit2(m->vm, KVM_PIT_SPEAKER_DUMMY) < 0)
		return fail("kvm_create_pit2");
	if (set_gsi_routing(m->vm) < 0 || program_pics(m->vm) < 0 || program_pit(m->vm) < 0)
		return -1;
	return 0;
}

/* ---- vcpus ------------------------------------------------------------------------ */

static struct kvm_cpuid2 *supported;

static int get_supported_cpuid(void)
{
	uint32_t room = 64;
	for (;;) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + room * sizeof(c->entries[0]));
		if (!c)
			return fail("CPUID table");
		c->nent = room;
		if (kvm_get_supported_cpuid(c) == 0) {
			supported = c;
			return 0;
		}
		int e = errno;
		free(c);
		errno = e;
		if (e != E2BIG || room >= 4096)
			return fail("kvm_get_supported_cpuid");
		room *= 2;
	}
}

static int bits_for(unsigned n)
{
	int b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

/* The CPUID of vcpu `id`: what KVM supports, with this vcpu's APIC ID in leaf 1 and in
 * the x2APIC topology leaf 0xB (all vcpus cores of one package), and the TSC-deadline
 * timer on where KVM emulates it. */
static int set_cpuid(const struct machine *m, unsigned id)
{
	static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&once);
	int r = supported ? 0 : get_supported_cpuid();
	pthread_mutex_unlock(&once);
	if (r < 0)
		return -1;

	uint32_t max_basic = 0;
	for (uint32_t i = 0; i < supported->nent; i++)
		if (supported->entries[i].function == 0)
			max_basic = supported->entries[i].eax;

	uint32_t room = supported->nent + 3;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + room * sizeof(c->entries[0]));
	if (!c)
		return fail("CPUID table");
	int tsc_deadline = kvm_check_extension(m->vm, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
	uint32_t n = 0;
	for (uint32_t i = 0; i < supported->nent; i++) {
		struct kvm_cpuid_entry2 e = supported->entries[i];
		if (e.function == 0xb || e.function == 0x1f)
			continue; /* rewritten below */
		if (e.function == 1) {
			e.ebx = (e.ebx & 0xffff) | (id << 24) | ((m->ncpus & 0xff) << 16);
			if (m->ncpus > 1)
				e.edx |= 1u << 28; /* HTT: more than one logical processor */
			if (tsc_deadline)
				e.ecx |= 1u << 24;
		}
		c->entries[n++] = e;
	}
	if (max_basic >= 0xb) {
		int shift = bits_for(m->ncpus);
		for (uint32_t level = 0; level < 3; level++) {
			struct kvm_cpuid_entry2 *e = &c->entries[n++];
			memset(e, 0, sizeof(*e));
			e->function = 0xb;
			e->index = level;
			e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
			e->edx = id;
			e->ecx = level;
			if (level == 0) {        /* SMT: one thread per core */
				e->eax = 0;
				e->ebx = 1;
				e->ecx |= 1u << 8;
			} else if (level == 1) { /* core: every vcpu in one package */
				e->eax = (uint32_t)shift;
				e->ebx = m->ncpus;
				e->ecx |= 2u << 8;
			}
		}
	}
	c->nent = n;
	r = kvm_set_cpuid(c);
	free(c);
	return r < 0 ? fail("kvm_set_cpuid") : 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t selector, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = selector;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->db = 1;
	s->g = 1;
}

/* The boot vcpu as multiboot hands over: 32-bit flat protected mode, paging off,
 * interrupts off, EAX = 0x2BADB002, EBX = the multiboot information; and its local APIC
 * as SeaBIOS leaves it on QEMU (see program_pics): enabled, LINT0 ExtINT level-triggered
 * for the PIC (0x8700), LINT1 NMI (0x8400). */
static int setup_boot_vcpu(const struct machine *m)
{
	struct kvm_sregs s;
	if (kvm_get_sregs(&s) < 0)
		return fail("kvm_get_sregs");
	flat_segment(&s.cs, 0x08, 0xb);
	flat_segment(&s.ds, 0x10, 0x3);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.gdt.base = m->gdt;
	s.gdt.limit = 3 * 8 - 1;
	s.cr0 = 0x11; /* PE | ET; caches on, paging off */
	if (kvm_set_sregs(&s) < 0)
		return fail("kvm_set_sregs");

	struct kvm_regs r;
	memset(&r, 0, sizeof(r));
	r.rip = m->entry;
	r.rax = 0x2badb002;
	r.rbx = m->mbi;
	r.rflags = 2;
	if (kvm_set_regs(&r) < 0)
		return fail("kvm_set_regs");

	struct kvm_lapic_state apic;
	if (kvm_get_lapic(&apic) < 0)
		return fail("kvm_get_lapic");
	uint32_t svr, lint0 = 0x8700, lint1 = 0x8400;
	memcpy(&svr, &apic.regs[0xf0], 4);
	svr |= 0x100;
	memcpy(&apic.regs[0xf0], &svr, 4);
	memcpy(&apic.regs[0x350], &lint0, 4);
	memcpy(&apic.regs[0x360], &lint1, 4);
	if (kvm_set_lapic(&apic) < 0)
		return fail("kvm_set_lapic");
	return 0;
}

/* Called on vcpu `id`'s own thread once it has created it. The other vcpus stay as KVM
 * made them: waiting for INIT and SIPI (KVM_MP_STATE_UNINITIALIZED). */
int vcpu_configure(const struct machine *m, unsigned id)
{
	if (set_cpuid(m, id) < 0)
		return -1;
	return id == 0 ? setup_boot_vcpu(m) : 0;
}
