//! The VM's in-kernel interrupt controllers and PIT: their state, the GSI routing and
//! the ways to raise interrupts in them (lines, MSIs, irqfds, ioeventfds).

use super::Vm;
use crate::error::{Errno, Result};
use crate::ioctl;
use crate::system;
use kvm_bindings::{
    kvm_ioeventfd, kvm_irq_level, kvm_irq_routing, kvm_irqchip, kvm_irqfd, kvm_msi, kvm_pit_config,
    kvm_pit_state2, KVM_CAP_IRQ_ROUTING, KVM_IRQFD_FLAG_DEASSIGN, KVM_PIT_SPEAKER_DUMMY,
};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

impl Vm {
    /// KVM_GET_IRQCHIP: `chip.chip_id` selects the PIC master (0), slave (1) or IOAPIC (2).
    pub fn get_irqchip(&self, chip: &mut kvm_irqchip) -> Result<()> {
        self.fd().get_irqchip(chip).map_err(Errno::from)
    }

    /// KVM_SET_IRQCHIP.
    pub fn set_irqchip(&self, chip: &kvm_irqchip) -> Result<()> {
        self.fd().set_irqchip(chip).map_err(Errno::from)
    }

    /// KVM_GET_PIT2.
    pub fn get_pit2(&self) -> Result<kvm_pit_state2> {
        self.fd().get_pit2().map_err(Errno::from)
    }

    /// KVM_SET_PIT2.
    pub fn set_pit2(&self, pit: &kvm_pit_state2) -> Result<()> {
        self.fd().set_pit2(pit).map_err(Errno::from)
    }

    /// KVM_IRQ_LINE_STATUS: in `irq` and `level`, out the delivery status (in the union's
    /// `status` member).
    /// EINVAL for a GSI no routing table can name.
    pub fn irq_line_status(&self, line: &mut kvm_irq_level) -> Result<()> {
        // SAFETY: `irq` is the union member the caller sets on input.
        check_gsi(unsafe { line.__bindgen_anon_1.irq })?;
        // SAFETY: KVM_IRQ_LINE_STATUS reads and writes one struct kvm_irq_level.
        unsafe { ioctl::ioctl_with_mut(self.raw_fd(), ioctl::KVM_IRQ_LINE_STATUS, line) }?;
        Ok(())
    }

    /// KVM_SET_GSI_ROUTING on the caller's table (header plus `nr` entries).
    ///
    /// # Safety
    /// `routing` must point at a readable struct kvm_irq_routing followed by `nr` entries.
    pub unsafe fn set_gsi_routing(&self, routing: *const kvm_irq_routing) -> Result<()> {
        // SAFETY: the caller vouches for the table; the kernel reads the header, checks `nr`
        // against its limit and copies exactly `nr` entries (EFAULT if they are not there).
        unsafe {
            ioctl::ioctl(
                self.raw_fd(),
                ioctl::KVM_SET_GSI_ROUTING,
                routing as libc::c_ulong,
            )
        }?;
        Ok(())
    }

    /// KVM_CREATE_PIT2 with `flags` (0 or KVM_PIT_SPEAKER_DUMMY; EINVAL for others, which
    /// the kernel would ignore).
    pub fn create_pit2(&self, flags: u32) -> Result<()> {
        if flags & !KVM_PIT_SPEAKER_DUMMY != 0 {
            return Err(Errno(libc::EINVAL));
        }
        let config = kvm_pit_config {
            flags,
            ..Default::default()
        };
        self.fd().create_pit2(config).map_err(Errno::from)
    }

    /// KVM_IRQ_LINE: GSI `irq` to `level`; EINVAL for a GSI no routing table can name.
    pub fn irq_line(&self, irq: u32, level: bool) -> Result<()> {
        check_gsi(irq)?;
        self.fd().set_irq_line(irq, level).map_err(Errno::from)
    }

    /// KVM_SIGNAL_MSI: how many vcpus accepted `msi` (0: none).
    pub fn signal_msi(&self, msi: &kvm_msi) -> Result<libc::c_int> {
        match self.fd().signal_msi(*msi).map_err(Errno::from) {
            // The kernel returns a bare -1 when no vcpu is addressed, which reads as EPERM.
            Err(Errno(libc::EPERM)) => Ok(0),
            r => r,
        }
    }

    /// KVM_IRQFD: connects (flags 0) or disconnects (KVM_IRQFD_FLAG_DEASSIGN) eventfd
    /// `eventfd` and GSI `gsi`.
    pub fn irqfd(&self, eventfd: libc::c_int, gsi: u32, flags: u32) -> Result<()> {
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
        unsafe { ioctl::ioctl_with_ref(self.raw_fd(), ioctl::KVM_IRQFD, &irqfd) }?;
        Ok(())
    }

    /// KVM_IOEVENTFD on the caller's struct.
    pub fn ioeventfd(&self, io: &kvm_ioeventfd) -> Result<()> {
        // SAFETY: KVM_IOEVENTFD reads one struct kvm_ioeventfd, which lives across the
        // call.
        unsafe { ioctl::ioctl_with_ref(self.raw_fd(), ioctl::KVM_IOEVENTFD, io) }?;
        Ok(())
    }
}

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
fn check_gsi(gsi: u32) -> Result<()> {
    if gsi >= gsi_limit()? {
        return Err(Errno(libc::EINVAL));
    }
    Ok(())
}
