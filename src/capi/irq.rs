//! The in-kernel interrupt controllers and the ways to raise interrupts in them.

use super::input;
use crate::error::{c_int, Errno};
use crate::ioctl;
use crate::registry;
use kvm_bindings::{kvm_ioeventfd, kvm_irqfd, kvm_msi, kvm_pit_config};
use libc::c_int;

/// Creates the in-kernel interrupt controllers of VM `vm`: a PIC pair, an IOAPIC and a
/// local APIC per vcpu (vcpus created afterwards). Call it before creating vcpus. From then
/// on kvm_interrupt() takes the in-kernel path. Errors: EBADF (not a VM), EEXIST (already
/// created), EINVAL (vcpus exist already), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_create_irqchip(vm: c_int) -> c_int {
    c_int(|| registry::vm(vm)?.create_irqchip().map(|()| 0))
}

/// Creates the in-kernel i8254 PIT of VM `vm` (after kvm_create_irqchip()). `flags`: 0 or
/// KVM_PIT_SPEAKER_DUMMY. Errors: EBADF (not a VM), EEXIST (already created), ENOENT (no
/// irqchip yet), EINVAL (unknown flags), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_create_pit2(vm: c_int, flags: u32) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        let config = kvm_pit_config {
            flags,
            ..Default::default()
        };
        vm.fd().create_pit2(config).map_err(Errno::from)?;
        Ok(0)
    })
}

/// Drives interrupt line `irq` of the in-kernel irqchip to `level` (1 asserted, 0 not):
/// GSIs 0-15 reach the PIC and IOAPIC, 16-23 the IOAPIC. Errors: EBADF (not a VM), ENXIO
/// (no in-kernel irqchip), EINVAL (`irq` out of range).
#[no_mangle]
pub extern "C" fn kvm_irq_line(vm: c_int, irq: u32, level: c_int) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        vm.fd().set_irq_line(irq, level != 0).map_err(Errno::from)?;
        Ok(0)
    })
}

/// Injects the message-signalled interrupt `*msi` (address and data as a device would
/// write them). Returns 1 if it was delivered, 0 if the guest blocked it. Errors: EBADF
/// (not a VM), EFAULT (`msi` NULL), EINVAL (nonzero flags or padding), ENXIO (no
/// in-kernel irqchip).
#[no_mangle]
pub extern "C" fn kvm_signal_msi(vm: c_int, msi: *const kvm_msi) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        let msi = *input(msi)?;
        vm.fd().signal_msi(msi).map_err(Errno::from)
    })
}

/// Connects eventfd `eventfd` to interrupt `gsi`: each write to the eventfd raises the
/// interrupt in the kernel, with no exit to userspace. `flags`: 0 to connect,
/// KVM_IRQFD_FLAG_DEASSIGN to disconnect. Errors: EBADF (not a VM, or `eventfd` not an
/// eventfd), EBUSY (already connected), ENOENT (deassigning a connection that does not
/// exist), EINVAL (unknown flags, or `gsi` out of range).
#[no_mangle]
pub extern "C" fn kvm_irqfd(vm: c_int, eventfd: c_int, gsi: u32, flags: u32) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
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
                ioctl::iow::<kvm_irqfd>(0x76),
                &irqfd as *const _ as libc::c_ulong,
            )
        }?;
        Ok(0)
    })
}

/// Registers (or, with KVM_IOEVENTFD_FLAG_DEASSIGN, removes) an ioeventfd: a guest write
/// to the port or MMIO address in `*ioeventfd` (optionally only of a given value) signals
/// its eventfd in the kernel instead of exiting to userspace. Errors: EBADF (not a VM, or
/// not an eventfd), EFAULT (`ioeventfd` NULL), EEXIST (already registered), ENOENT
/// (removing one that does not exist), EINVAL (bad length or flags), ENOSPC (too many).
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
                ioctl::iow::<kvm_ioeventfd>(0x79),
                io as *const _ as libc::c_ulong,
            )
        }?;
        Ok(0)
    })
}
