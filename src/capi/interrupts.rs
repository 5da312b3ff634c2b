//! Interrupts: into the calling thread's vcpu (kvm_interrupt, kvm_nmi), and the VM's
//! in-kernel interrupt controllers, PIT, routing and the ways to raise interrupts in them.

use crate::capi::input;
use crate::capi::{vcpu_do, vm_do, vm_get, vm_set, vm_update};
use crate::error::c_int;
use crate::registry;
use kvm_bindings::kvm_ioeventfd;
use kvm_bindings::kvm_irq_level;
use kvm_bindings::kvm_irq_routing;
use kvm_bindings::kvm_irqchip;
use kvm_bindings::kvm_msi;
use kvm_bindings::kvm_pit_state2;
use libc::c_int;

/// Raises interrupt vector `irq` (0-255) on the calling thread's vcpu. Without
/// in-kernel local APICs the vector is injected with KVM_INTERRUPT as soon as the guest can
/// take it (interrupts enabled, no interrupt shadow): at once, or, if it cannot yet,
/// libkvm keeps it pending and injects it when the guest opens an interrupt window
/// during a later kvm_run(), without returning from kvm_run() for that (several pending
/// vectors go highest first; raising a pending vector again has no further effect). With
/// in-kernel local APICs (kvm_create_irqchip(), or a split irqchip: KVM_CAP_SPLIT_IRQCHIP
/// with kvm_enable_cap()) it is sent to the vcpu's local APIC as a
/// fixed-delivery message-signalled interrupt to its APIC ID (the full 32-bit x2APIC ID
/// when KVM_CAP_X2APIC_API was enabled with 32-bit IDs and the guest's APIC is in x2APIC
/// mode); the guest must have enabled its APIC.
/// Errors: ESRCH (no vcpu), EINVAL (`irq` above 255), EAGAIN (in-kernel APICs: the
/// vcpu's local APIC did not accept it, e.g. because the guest has not enabled it).
#[no_mangle]
pub extern "C" fn kvm_interrupt(irq: u32) -> c_int {
    vcpu_do(|v| v.interrupt(irq))
}

/// Queues a non-maskable interrupt on the calling thread's vcpu (KVM_NMI), delivered by
/// the next kvm_run() as soon as the guest is not already handling one. Works with and
/// without an in-kernel irqchip. Errors: ESRCH (no vcpu).
#[no_mangle]
pub extern "C" fn kvm_nmi() -> c_int {
    vcpu_do(|v| v.nmi())
}

/// Creates the in-kernel interrupt controllers of VM `vm`: a PIC pair, an IOAPIC and a
/// local APIC per vcpu (vcpus created afterwards). Call it before creating vcpus. From then
/// on kvm_interrupt() takes the in-kernel path. Errors: EBADF (not a VM), EEXIST (already
/// created), EINVAL (vcpus exist already), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_create_irqchip(vm: c_int) -> c_int {
    c_int(|| registry::vm(vm)?.create_irqchip().map(|()| 0))
}

/// Reads the registers of one in-kernel interrupt controller of VM `vm`: set
/// `chip->chip_id` to KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE or KVM_IRQCHIP_IOAPIC
/// and the function fills `chip->chip`. Errors: EBADF (not a VM), EFAULT (`chip` NULL),
/// ENXIO (no in-kernel irqchip), EINVAL (unknown `chip_id`).
#[no_mangle]
pub extern "C" fn kvm_get_irqchip(vm: c_int, chip: *mut kvm_irqchip) -> c_int {
    vm_update(vm, chip, |vm, a| vm.get_irqchip(a))
}

/// Sets the registers of the in-kernel interrupt controller `chip->chip_id` of VM `vm`
/// from `chip->chip`. Errors: EBADF (not a VM), EFAULT (`chip` NULL), ENXIO (no in-kernel
/// irqchip), EINVAL (unknown `chip_id`).
#[no_mangle]
pub extern "C" fn kvm_set_irqchip(vm: c_int, chip: *const kvm_irqchip) -> c_int {
    vm_set(vm, chip, |vm, a| vm.set_irqchip(a))
}

/// Creates the in-kernel i8254 PIT of VM `vm` (after kvm_create_irqchip()): guest
/// accesses to ports 0x40-0x43 are handled in the kernel, and channel 0 raises IRQ 0.
/// `flags`: 0, or KVM_PIT_SPEAKER_DUMMY to have port 0x61 handled in the kernel too.
/// Errors: EBADF (not a VM), EINVAL (unknown flags), ENOENT (no in-kernel irqchip yet),
/// EEXIST (already created), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_create_pit2(vm: c_int, flags: u32) -> c_int {
    vm_do(vm, |vm| vm.create_pit2(flags))
}

/// Reads the state of VM `vm`'s in-kernel PIT (its three channels and flags). Errors:
/// EBADF (not a VM), EFAULT (`pit` NULL), ENXIO (no in-kernel PIT: kvm_create_pit2()).
#[no_mangle]
pub extern "C" fn kvm_get_pit2(vm: c_int, pit: *mut kvm_pit_state2) -> c_int {
    vm_get(vm, pit, |vm| vm.get_pit2())
}

/// Sets the state of VM `vm`'s in-kernel PIT. Errors: EBADF (not a VM), EFAULT (`pit`
/// NULL), ENXIO (no in-kernel PIT).
#[no_mangle]
pub extern "C" fn kvm_set_pit2(vm: c_int, pit: *const kvm_pit_state2) -> c_int {
    vm_set(vm, pit, |vm, a| vm.set_pit2(a))
}

/// Drives interrupt line (GSI) `irq` of the in-kernel irqchip to `level` (nonzero
/// asserted, 0 deasserted); an edge-triggered input takes an interrupt on 0 -> 1. With the
/// default routing GSIs 0-15 reach the PIC and the IOAPIC, 16-23 the IOAPIC; a GSI with no
/// route is accepted and does nothing. Errors: EBADF (not a VM), ENXIO (no in-kernel
/// irqchip), EINVAL (`irq` at or above the number of routable GSIs, 4096).
#[no_mangle]
pub extern "C" fn kvm_irq_line(vm: c_int, irq: u32, level: c_int) -> c_int {
    vm_do(vm, |vm| vm.irq_line(irq, level != 0))
}

/// Like kvm_irq_line(), and reports what happened: set `line->irq` and `line->level`; on
/// return `line->status` (the same union member as `irq`) is positive when the interrupt
/// was delivered (the number of vcpus it reached), 0 when it was coalesced with one still
/// pending, negative when it was masked or ignored. Errors: EBADF (not a VM), EFAULT
/// (`line` NULL), ENXIO (no in-kernel irqchip), EINVAL (`line->irq` at or above the number
/// of routable GSIs, 4096).
#[no_mangle]
pub extern "C" fn kvm_irq_line_status(vm: c_int, line: *mut kvm_irq_level) -> c_int {
    vm_update(vm, line, |vm, a| vm.irq_line_status(a))
}

/// Replaces VM `vm`'s whole GSI routing table with `routing` (`nr` entries after the
/// header): each entry routes a GSI to an irqchip pin, an MSI message, or another kind the
/// kernel knows. kvm_irq_line(), kvm_irqfd() and kvm_signal_msi() use the table. Errors:
/// EBADF (not a VM), EFAULT (`routing` NULL or its entries unreadable), ENOMEM (no memory
/// for libkvm's copy, which kvm_save_vm() saves), EINVAL (nonzero flags, too many entries,
/// a GSI out of range, an entry the kernel refuses, or no in-kernel irqchip).
#[no_mangle]
pub extern "C" fn kvm_set_gsi_routing(vm: c_int, routing: *const kvm_irq_routing) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        input(routing)?;
        vm.set_gsi_routing(routing)?;
        Ok(0)
    })
}

/// Injects the message-signalled interrupt `*msi` (address and data as a device would
/// write them) into the in-kernel local APICs. Returns how many vcpus accepted it (> 0), or
/// 0 if none did (no vcpu has that destination, or its local APIC is disabled). Errors:
/// EBADF (not a VM), EFAULT (`msi` NULL), EINVAL (no in-kernel irqchip, or flags other
/// than 0 and KVM_MSI_VALID_DEVID).
#[no_mangle]
pub extern "C" fn kvm_signal_msi(vm: c_int, msi: *const kvm_msi) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        vm.signal_msi(input(msi)?)
    })
}

/// Connects eventfd `eventfd` to interrupt `gsi` of the in-kernel irqchip: each write to
/// the eventfd raises an edge on that GSI in the kernel (asynchronously, soon after the
/// write), with no exit to userspace. `flags`: 0 to connect, KVM_IRQFD_FLAG_DEASSIGN to
/// disconnect (disconnecting a pair that is not connected succeeds and does nothing).
/// Errors: EBADF (not a VM, or `eventfd` not an open fd), EINVAL (`eventfd` not an
/// eventfd, other flags, `gsi` at or above 4096, or no in-kernel irqchip), EBUSY (this
/// eventfd is already connected).
#[no_mangle]
pub extern "C" fn kvm_irqfd(vm: c_int, eventfd: c_int, gsi: u32, flags: u32) -> c_int {
    vm_do(vm, |vm| vm.irqfd(eventfd, gsi, flags))
}

/// Registers (or, with KVM_IOEVENTFD_FLAG_DEASSIGN, removes) an ioeventfd: a guest write
/// of `len` bytes to the port (KVM_IOEVENTFD_FLAG_PIO) or MMIO address `addr` in
/// `*ioeventfd` (with KVM_IOEVENTFD_FLAG_DATAMATCH only of the value `datamatch`) signals
/// eventfd `fd` in the kernel instead of exiting to userspace. Errors: EBADF (not a VM, or
/// `fd` not an open fd), EFAULT (`ioeventfd` NULL), EINVAL (`fd` not an eventfd, `len`
/// not 0, 1, 2, 4 or 8, unknown flags, range wrapping), EEXIST (already registered),
/// ENOENT (removing one that is not registered), ENOSPC (too many on the bus).
#[no_mangle]
pub extern "C" fn kvm_ioeventfd(vm: c_int, ioeventfd: *const kvm_ioeventfd) -> c_int {
    vm_set(vm, ioeventfd, |vm, a| vm.ioeventfd(a))
}
