//! The VM's in-kernel interrupt controllers and PIT: their state, the GSI routing and
//! the ways to raise interrupts in them (lines, MSIs, irqfds, ioeventfds).

use super::Vm;
use crate::error::{Errno, Result};
use crate::ioctl;
use crate::system;
use kvm_bindings::{
    kvm_ioeventfd, kvm_irq_level, kvm_irq_routing, kvm_irq_routing_entry, kvm_irqchip, kvm_irqfd,
    kvm_msi, kvm_pit_config, kvm_pit_state2, KVM_CAP_IRQ_ROUTING, KVM_IRQFD_FLAG_DEASSIGN,
    KVM_PIT_SPEAKER_DUMMY,
};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// `struct kvm_irq_routing`'s header (nr, flags) before its entries.
const ROUTING_HEADER: usize = std::mem::size_of::<kvm_irq_routing>();
/// The most entries KVM_SET_GSI_ROUTING takes (the kernel's KVM_MAX_IRQ_ROUTES).
pub(crate) const MAX_ROUTES: u32 = 4096;

/// The size of a struct kvm_irq_routing with `nr` entries.
pub(crate) fn routing_len(nr: u32) -> usize {
    ROUTING_HEADER + nr as usize * std::mem::size_of::<kvm_irq_routing_entry>()
}

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

    /// KVM_SET_GSI_ROUTING on the caller's table (header plus `nr` entries), kept as the
    /// VM's routing for kvm_save_vm. The table is read with process_vm_readv, so memory
    /// the caller cannot read is EFAULT (as the kernel would say), never a crash; the
    /// kernel is given libkvm's copy, so what is kept is exactly what it took.
    pub fn set_gsi_routing(&self, routing: *const kvm_irq_routing) -> Result<()> {
        let mut header = [0u8; ROUTING_HEADER];
        crate::user_copy::read(routing.cast(), &mut header)?;
        let nr = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if nr > MAX_ROUTES {
            return Err(Errno(libc::EINVAL)); // the kernel's answer, without the allocation
        }
        let mut table = Vec::new();
        table
            .try_reserve_exact(routing_len(nr))
            .map_err(crate::error::nomem)?;
        table.resize(routing_len(nr), 0);
        crate::user_copy::read(routing.cast(), &mut table)?;
        self.load_gsi_routing(table)
    }

    /// Issues KVM_SET_GSI_ROUTING with `table` (a whole struct kvm_irq_routing: its length
    /// checked against its `nr`) and keeps it. Under the routing lock, so the table kept
    /// is the one in force whichever of two racing callers won.
    pub(crate) fn load_gsi_routing(&self, table: Vec<u8>) -> Result<()> {
        if table.len() < ROUTING_HEADER
            || table.len()
                != routing_len(u32::from_le_bytes([table[0], table[1], table[2], table[3]]))
        {
            return Err(Errno(libc::EINVAL));
        }
        let mut kept = self.routes.lock();
        // SAFETY: `table` is a struct kvm_irq_routing header followed by its `nr` entries
        // (length checked above), alive across the call; the kernel only reads it.
        unsafe {
            ioctl::ioctl(
                self.raw_fd(),
                ioctl::KVM_SET_GSI_ROUTING,
                table.as_ptr() as libc::c_ulong,
            )
        }?;
        *kept = table;
        Ok(())
    }

    /// A copy of the GSI routing table last set, None while the kernel's default is in
    /// force (kvm_save_vm).
    pub(crate) fn gsi_routing(&self) -> Result<Option<Vec<u8>>> {
        let kept = self.routes.lock();
        if kept.is_empty() {
            return Ok(None);
        }
        let mut copy = Vec::new();
        copy.try_reserve_exact(kept.len())
            .map_err(crate::error::nomem)?;
        copy.extend_from_slice(&kept);
        Ok(Some(copy))
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
