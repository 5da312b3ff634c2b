/* With the in-kernel irqchip, interrupts raised by kvm_irq_line, kvm_irqfd, kvm_signal_msi, kvm_nmi, KVM_SET_VCPU_EVENTS and the PIT of kvm_create_pit2 run the guest's handlers; LAPIC and MP state read and write; the setup calls' errors. */
#define _GNU_SOURCE
#include "harness.h"
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

extern const uint8_t rm_intr_start[], rm_intr_pit[], rm_intr_nmi[], rm_intr_irq0[],
	rm_intr_irq3[], rm_intr_irq5[], rm_intr_msi[], rm_intr_iret[], rm_intr_fault[];
static int vm, vcpu_fd;

#define G(label) (0x1000 + (uint16_t)(label - rm_intr_start))

/* Real-mode interrupt vector `v` to guest address `handler` (segment 0). */
static void set_vector(unsigned v, uint16_t handler)
{
	uint16_t *ivt = kvm_guest_memory(vm, 4 * v, 4);
	CHECK(ivt != NULL);
	ivt[0] = handler;
	ivt[1] = 0;
}


/* Runs to the guest's next "ready" (port 0x66). */
static void ready(void)
{
	run_until_out(0x66);
}

static void pulse_irq3(void)
{
	OK(kvm_irq_line(vm, 3, 1));
	OK(kvm_irq_line(vm, 3, 0));
}

static uint32_t lapic_reg(const struct kvm_lapic_state *s, unsigned off)
{
	uint32_t v;
	memcpy(&v, s->regs + off, 4);
	return v;
}

static void *kick_soon(void *arg)
{
	(void)arg;
	usleep(20000);
	OK(kvm_kick_vcpu(vcpu_fd));
	return NULL;
}

/* Calls on a VM without an in-kernel irqchip, and the setup calls. */
static void without_irqchip(void)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	CHECK(efd >= 0);
	struct kvm_msi msi = { .address_lo = 0xfee00000, .data = 0x50 };
	int plain = vm_with_memory(0x10000);
	CHECK_ERR(kvm_irq_line(plain, 3, 1), ENXIO);
	CHECK_ERR(kvm_signal_msi(plain, &msi), EINVAL);
	CHECK_ERR(kvm_irqfd(plain, efd, 5, 0), EINVAL);
	CHECK_ERR(kvm_create_pit2(plain, 0), ENOENT);

	OK(kvm_set_tss_addr(plain, 0xfffbd000));
	CHECK_ERR(kvm_set_tss_addr(plain, 0xfffff000), EINVAL); /* must end below 4 GiB */
	OK(kvm_set_identity_map_addr(plain, 0xfeffc000));

	load_blob(plain, 0x1000, BLOB(rm_report));
	OK(kvm_create_vcpu(plain, 0));
	CHECK_ERR(kvm_set_identity_map_addr(plain, 0xfeffc000), EINVAL); /* a vcpu exists */
	CHECK_ERR(kvm_create_irqchip(plain), EINVAL);
	struct kvm_lapic_state ls;
	memset(&ls, 0, sizeof(ls));
	CHECK_ERR(kvm_get_lapic(&ls), EINVAL);
	CHECK_ERR(kvm_set_lapic(&ls), EINVAL);
	struct kvm_mp_state mp;
	OK(kvm_get_mp_state(&mp));
	CHECK_EQ(mp.mp_state, KVM_MP_STATE_RUNNABLE);
	mp.mp_state = KVM_MP_STATE_HALTED;
	CHECK_ERR(kvm_set_mp_state(&mp), EINVAL);
	/* The guest runs with the TSS and identity-map addresses set. */
	setup_real_mode(0x1000);
	EDIT_REGS(r, r.rsi = 21);
	CHECK_EQ(run_until_out(0x10), 42);
	end_vm(plain);

	/* Not a VM. */
	CHECK_ERR(kvm_create_irqchip(efd), EBADF);
	CHECK_ERR(kvm_create_pit2(efd, 0), EBADF);
	CHECK_ERR(kvm_irq_line(efd, 3, 1), EBADF);
	CHECK_ERR(kvm_signal_msi(efd, &msi), EBADF);
	CHECK_ERR(kvm_irqfd(efd, efd, 5, 0), EBADF);
	CHECK_ERR(kvm_set_tss_addr(-1, 0xfffbd000), EBADF);
	CHECK_ERR(kvm_set_identity_map_addr(-1, 0xfeffc000), EBADF);
	/* No vcpu on this thread. */
	CHECK_ERR(kvm_get_lapic(&ls), ESRCH);
	CHECK_ERR(kvm_get_mp_state(&mp), ESRCH);
	CHECK_ERR(kvm_nmi(), ESRCH);
	close(efd);
}

/* KVM_PIT_SPEAKER_DUMMY: the in-kernel PIT answers the speaker port 0x61 itself, so the
 * guest's read of it is no exit; without the flag the read comes to userspace. */
static void pit_speaker(void)
{
	for (int dummy = 0; dummy < 2; dummy++) {
		int v = vm_with_memory(0x10000);
		OK(kvm_create_irqchip(v));
		OK(kvm_create_pit2(v, dummy ? KVM_PIT_SPEAKER_DUMMY : 0));
		real_mode_vcpu(v, 0, 0x1000, BLOB(rm_speaker));
		if (!dummy) {
			run_expect(KVM_EXIT_IO);
			struct kvm_run *run = kvm_run_area();
			CHECK_EQ(run->io.direction, KVM_EXIT_IO_IN);
			CHECK_EQ(run->io.port, 0x61);
		}
		run_until_out(0x12); /* (its hlt would wait in the kernel: not run) */
		end_vm(v);
	}
}

int main(void)
{
	require_kvm();
	without_irqchip();
	pit_speaker();

	vm = vm_with_memory(1 << 20);
	OK(kvm_create_irqchip(vm));
	CHECK_ERR(kvm_create_irqchip(vm), EEXIST);
	CHECK_ERR(kvm_create_pit2(vm, 2), EINVAL);
	OK(kvm_create_pit2(vm, KVM_PIT_SPEAKER_DUMMY));
	CHECK_ERR(kvm_create_pit2(vm, 0), EEXIST);

	load_blob(vm, 0x1000, BLOB(rm_intr));
	vcpu_fd = OK(kvm_create_vcpu(vm, 0));
	setup_unreal_mode(0x1000); /* addr32 reaches the local APIC */
	for (unsigned v = 0; v < 256; v++) /* exceptions: an IRET would retry them forever */
		set_vector(v, v < 0x20 ? G(rm_intr_fault) : G(rm_intr_iret));
	set_vector(2, G(rm_intr_nmi));
	set_vector(0x20, G(rm_intr_irq0));
	set_vector(0x23, G(rm_intr_irq3));
	set_vector(0x25, G(rm_intr_irq5));
	set_vector(0x50, G(rm_intr_msi));
	EDIT_REGS(r, r.rsp = 0x9000);

	/* LAPIC: the guest reads the LVT timer the host set, the host reads the SVR the
	 * guest wrote. */
	struct kvm_lapic_state ls;
	OK(kvm_get_lapic(&ls));
	CHECK_EQ(lapic_reg(&ls, 0x20) >> 24, 0); /* APIC ID = vcpu id */
	uint32_t lvt = 0x10040;                  /* masked, vector 0x40 */
	memcpy(ls.regs + 0x320, &lvt, 4);
	OK(kvm_set_lapic(&ls));
	CHECK_EQ(run_until_out(0x67), 0x10040);
	ready();
	OK(kvm_get_lapic(&ls));
	CHECK_EQ(lapic_reg(&ls, 0xf0), 0x1ff);

	/* kvm_irq_line: an edge on IRQ 3 of the PIC the guest programmed. */
	pulse_irq3();
	CHECK_EQ(run_until_out(0x60), 0x23);
	ready();
	CHECK_ERR(kvm_irq_line(vm, 4096, 1), EINVAL);

	/* kvm_irqfd: a write to the eventfd raises IRQ 5, with no exit on the way. */
	int efd = eventfd(0, EFD_CLOEXEC);
	CHECK(efd >= 0);
	OK(kvm_irqfd(vm, efd, 5, 0));
	CHECK_ERR(kvm_irqfd(vm, efd, 5, 0), EBUSY);
	uint64_t one = 1;
	CHECK(write(efd, &one, 8) == 8);
	CHECK_EQ(run_until_out(0x60), 0x25);
	ready();
	OK(kvm_irqfd(vm, efd, 5, KVM_IRQFD_FLAG_DEASSIGN));
	OK(kvm_irqfd(vm, efd, 5, KVM_IRQFD_FLAG_DEASSIGN)); /* not connected: nothing to do */
	CHECK_ERR(kvm_irqfd(vm, efd, 5, KVM_IRQFD_FLAG_RESAMPLE), EINVAL);
	CHECK_ERR(kvm_irqfd(vm, efd, 4096, 0), EINVAL);
	CHECK_ERR(kvm_irqfd(vm, -1, 5, 0), EBADF);
	CHECK_ERR(kvm_irqfd(vm, vm, 5, 0), EINVAL); /* not an eventfd */

	/* kvm_signal_msi: vector 0x50 to APIC ID 0; nobody at APIC ID 7. */
	struct kvm_msi msi = { .address_lo = 0xfee00000, .data = 0x50 };
	CHECK_EQ(OK(kvm_signal_msi(vm, &msi)), 1);
	CHECK_EQ(run_until_out(0x60), 0x50);
	ready();
	msi.address_lo = 0xfee00000 | (7 << 12);
	CHECK_EQ(OK(kvm_signal_msi(vm, &msi)), 0);
	msi.flags = 2;
	CHECK_ERR(kvm_signal_msi(vm, &msi), EINVAL);
	CHECK_ERR(kvm_signal_msi(vm, NULL), EFAULT);

	/* kvm_nmi: taken although the guest has interrupts off; NMIs are masked in the
	 * handler (kvm_get_vcpu_events) and not after its iret. */
	struct kvm_vcpu_events ev;
	OK(kvm_nmi());
	CHECK_EQ(run_until_out(0x60), 2);
	OK(kvm_get_vcpu_events(&ev));
	CHECK_EQ(ev.nmi.masked, 1);
	pulse_irq3(); /* wakes the hlt the handler returns to */
	CHECK_EQ(run_until_out(0x60), 0x23);
	ready();
	OK(kvm_get_vcpu_events(&ev));
	CHECK_EQ(ev.nmi.masked, 0);

	/* kvm_set_vcpu_events: an NMI made pending through the events. */
	ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING;
	ev.nmi.pending = 1;
	OK(kvm_set_vcpu_events(&ev));
	CHECK_EQ(run_until_out(0x60), 2);
	pulse_irq3();
	CHECK_EQ(run_until_out(0x60), 0x23);
	ready();
	CHECK_ERR(kvm_set_vcpu_events(NULL), EFAULT);

	/* kvm_set_mp_state: a halted vcpu does not run on (a kick ends its kvm_run with
	 * the guest where it was); made runnable again it continues. */
	struct kvm_mp_state mp;
	OK(kvm_get_mp_state(&mp));
	CHECK_EQ(mp.mp_state, KVM_MP_STATE_RUNNABLE);
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	uint64_t ip = r.rip;
	mp.mp_state = KVM_MP_STATE_HALTED;
	OK(kvm_set_mp_state(&mp));
	run_interrupted_by(kick_soon, NULL);
	OK(kvm_get_regs(&r));
	CHECK_EQ(r.rip, ip);
	OK(kvm_get_mp_state(&mp));
	CHECK_EQ(mp.mp_state, KVM_MP_STATE_HALTED);
	mp.mp_state = KVM_MP_STATE_RUNNABLE;
	OK(kvm_set_mp_state(&mp));
	pulse_irq3();
	CHECK_EQ(run_until_out(0x60), 0x23);
	ready();
	mp.mp_state = 99;
	CHECK_ERR(kvm_set_mp_state(&mp), EINVAL);
	CHECK_ERR(kvm_get_mp_state(NULL), EFAULT);
	CHECK_ERR(kvm_get_lapic(NULL), EFAULT);

	/* The PIT: the guest programs channel 0 (ports 0x43 and 0x40 stay in the kernel)
	 * and takes its IRQ 0. */
	OK(kvm_get_regs(&r));
	r.rip = G(rm_intr_pit);
	OK(kvm_set_regs(&r));
	ready();
	CHECK_EQ(run_until_out(0x60), 0x20);

	close(efd);
	end_vm(vm);
	return 0;
}
