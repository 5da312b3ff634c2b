//! Coalesced MMIO/PIO: zones the kernel records writes to in a ring instead of exiting,
//! and the ring's consumer.

use super::slots::PAGE_SIZE;
use super::Vm;
use crate::error::{Errno, Result};
use crate::ioctl;
use crate::system;
use crate::vcpu::Vcpu;
use kvm_bindings::{kvm_coalesced_mmio, kvm_coalesced_mmio_zone};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const KVM_CAP_COALESCED_MMIO: libc::c_long = kvm_bindings::KVM_CAP_COALESCED_MMIO as _;

/// The ring is single-consumer (userspace owns `first`): consumers of all VMs take turns.
static RING_CONSUMER: Mutex<()> = Mutex::new(());

/// Entries that fit in the one-page ring after its `first`/`last` header.
const RING_ENTRIES: u32 =
    ((PAGE_SIZE as usize - 8) / std::mem::size_of::<kvm_coalesced_mmio>()) as u32;

impl Vm {
    /// KVM_(UN)REGISTER_COALESCED_MMIO.
    pub fn coalesced_zone(&self, zone: &kvm_coalesced_mmio_zone, register: bool) -> Result<()> {
        let req = if register {
            ioctl::KVM_REGISTER_COALESCED_MMIO
        } else {
            ioctl::KVM_UNREGISTER_COALESCED_MMIO
        };
        // SAFETY: both ioctls read one struct kvm_coalesced_mmio_zone.
        unsafe { ioctl::ioctl_with_ref(self.raw_fd(), req, zone) }?;
        Ok(())
    }

    /// Takes the oldest entry from the VM's coalesced MMIO ring, which the kernel maps in
    /// every vcpu's area: `vcpu` is any vcpu of the VM (the registry's choice). `Ok(false)`:
    /// the ring is empty (or the VM has no vcpu yet, so nothing can have been written).
    pub fn coalesced_mmio_next(
        &self,
        vcpu: Option<Arc<Vcpu>>,
        out: &mut kvm_coalesced_mmio,
    ) -> Result<bool> {
        let page = self.check_extension(KVM_CAP_COALESCED_MMIO)?;
        if page <= 0 {
            return Ok(false);
        }
        let Some(vcpu) = vcpu else {
            return Ok(false);
        };
        let offset = page as usize * PAGE_SIZE as usize;
        if offset + PAGE_SIZE as usize > system::vcpu_mmap_size()? as usize {
            return Err(Errno(libc::ENXIO));
        }
        let _consumer = RING_CONSUMER.lock();
        // SAFETY: the vcpu's mapping covers [0, mmap size) and `vcpu` keeps it alive; the
        // ring page lies inside it (checked above).
        let ring = unsafe { vcpu.run_area().cast::<u8>().add(offset) };
        // SAFETY: `first` and `last` are naturally aligned u32 in the shared page; the kernel
        // writes `last` concurrently, so they are accessed only as atomics.
        let (first, last) = unsafe {
            (
                AtomicU32::from_ptr(ring.cast::<u32>()),
                AtomicU32::from_ptr(ring.add(4).cast::<u32>()),
            )
        };
        let f = first.load(Ordering::Relaxed) % RING_ENTRIES;
        // Acquire: the entry the kernel wrote before advancing `last` is visible below.
        if f == last.load(Ordering::Acquire) % RING_ENTRIES {
            return Ok(false);
        }
        // SAFETY: entry `f` is inside the page (f < RING_ENTRIES) and complete (kernel
        // advanced `last` past it); read by value, unaligned-safe.
        *out = unsafe {
            ring.add(8 + f as usize * std::mem::size_of::<kvm_coalesced_mmio>())
                .cast::<kvm_coalesced_mmio>()
                .read_unaligned()
        };
        // Release: our read of the entry happens before the kernel may reuse the slot.
        first.store((f + 1) % RING_ENTRIES, Ordering::Release);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_ring_entries_fill_the_pages() {
        assert_eq!(RING_ENTRIES, 170);
    }
}
