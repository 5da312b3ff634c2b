//! The in-kernel interrupt controllers and the ways to raise interrupts in them.

use super::input;
use crate::error::{c_int, Errno, Result};
use crate::ioctl;
use crate::registry;
use crate::system;
use kvm_bindings::{
    kvm_ioeventfd, kvm_irqfd, kvm_msi, kvm_pit_config, KVM_CAP_IRQ_ROUTING,
    KVM_IRQFD_FLAG_DEASSIGN, KVM_PIT_SPEAKER_DUMMY,
};
use libc::c_int;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// How many GSIs KVM can route (KVM_CAP_IRQ_ROUTING, 4096 on x86); asked once.
fn gsi_limit() -> Result<u32> {
    static LIMIT: AtomicU32 = AtomicU32::new(0);
    match LIMIT.load(Relaxed) {
        0 => {
            let n = system::check_extension(KVM_CAP_IRQ_ROUTING as libc::c_long)?.max(1) as u32;
            LIMIT.store(n, Relaxed);
            Ok(n)
        }
        n => Ok(n),
    }
}

/// EINVAL for a GSI that no routing table can name.
pub(crate) fn check_gsi(gsi: u32) -> Result<()> {
    if gsi >= gsi_limit()? {
        return Err(Errno(libc::EINVAL));
    }
    Ok(())
}

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
        let vm = registry::vm(vm)?;
        // The kernel ignores flags it does not know.
        if flags & !KVM_PIT_SPEAKER_DUMMY != 0 {
            return Err(Errno(libc::EINVAL));
        }
        let config = kvm_pit_config {
            flags,
            ..Default::default()
        };
        vm.fd().create_pit2(config).map_err(Errno::from)?;
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
        let vm = registry::vm(vm)?;
        check_gsi(irq)?;
        vm.fd().set_irq_line(irq, level != 0).map_err(Errno::from)?;
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
        let msi = *input(msi)?;
        match vm.fd().signal_msi(msi).map_err(Errno::from) {
            // The kernel returns a bare -1 when no vcpu is addressed, which reads as EPERM.
            Err(Errno(libc::EPERM)) => Ok(0),
            r => r,
        }
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
        let vm = registry::vm(vm)?;
        // KVM_IRQFD_FLAG_RESAMPLE would need a resample fd, which this call has no room for.
        if flags & !KVM_IRQFD_FLAG_DEASSIGN != 0 {
            return Err(Errno(libc::EINVAL));
        }
        check_gsi(gsi)?;
        let fd = u32::try_from(eventfd).map_err(|_| Errno(libc::EBADF))?;
        let irqfd = kvm_irqfd {
            fd,
            gsi,
            flags,
            ..Default::default()
        };
        // SAFETY: KVM_IRQFD reads one struct kvm_irqfd, which lives across the call.
        unsafe {
            ioctl::ioctl(
                vm.raw_fd(),
                ioctl::KVM_IRQFD,
                &irqfd as *const _ as libc::c_ulong,
            )
        }?;
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
        let io = input(ioeventfd)?;
        // SAFETY: KVM_IOEVENTFD reads one struct kvm_ioeventfd, which lives across the
        // call.
        unsafe {
            ioctl::ioctl(
                vm.raw_fd(),
                ioctl::KVM_IOEVENTFD,
                io as *const _ as libc::c_ulong,
            )
        }?;
        Ok(0)
    })
}
