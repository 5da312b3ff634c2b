//! The in-kernel interrupt controllers and the ways to raise interrupts in them.

use super::input;
use crate::error::c_int;
use crate::registry;
use kvm_bindings::{kvm_ioeventfd, kvm_msi};
use libc::c_int;

/// Creates the in-kernel interrupt controllers of VM `vm`: a PIC pair, an IOAPIC and a
/// local APIC per vcpu (vcpus created afterwards). Call it before creating vcpus. From then
/// on kvm_interrupt() takes the in-kernel path. Errors: EBADF (not a VM), EEXIST (already
/// created), EINVAL (vcpus exist already), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_create_irqchip(vm: c_int) -> c_int {
    c_int(|| registry::vm(vm)?.create_irqchip().map(|()| 0))
}

/// Creates the in-kernel i8254 PIT of VM `vm` (after kvm_create_irqchip()): guest
/// accesses to ports 0x40-0x43 are handled in the kernel, and channel 0 raises IRQ 0.
/// `flags`: 0, or KVM_PIT_SPEAKER_DUMMY to have port 0x61 handled in the kernel too.
/// Errors: EBADF (not a VM), EINVAL (unknown flags), ENOENT (no in-kernel irqchip yet),
/// EEXIST (already created), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_create_pit2(vm: c_int, flags: u32) -> c_int {
    c_int(|| {
        registry::vm(vm)?.create_pit2(flags)?;
        Ok(0)
    })
}

/// Drives interrupt line (GSI) `irq` of the in-kernel irqchip to `level` (nonzero
/// asserted, 0 deasserted); an edge-triggered input takes an interrupt on 0 -> 1. With the
/// default routing GSIs 0-15 reach the PIC and the IOAPIC, 16-23 the IOAPIC; a GSI with no
/// route is accepted and does nothing. Errors: EBADF (not a VM), ENXIO (no in-kernel
/// irqchip), EINVAL (`irq` at or above the number of routable GSIs, 4096).
#[no_mangle]
pub extern "C" fn kvm_irq_line(vm: c_int, irq: u32, level: c_int) -> c_int {
    c_int(|| {
        registry::vm(vm)?.irq_line(irq, level != 0)?;
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
    c_int(|| {
        registry::vm(vm)?.irqfd(eventfd, gsi, flags)?;
        Ok(0)
    })
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
    c_int(|| {
        let vm = registry::vm(vm)?;
        vm.ioeventfd(input(ioeventfd)?)?;
        Ok(0)
    })
}
