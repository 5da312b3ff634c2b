//! One vcpu's dirty ring (leaf): the mapping of its entries (KVM_DIRTY_LOG_PAGE_OFFSET
//! on the vcpu fd) and the reader that collects them in order.
//!
//! The kernel publishes an entry by setting KVM_DIRTY_GFN_F_DIRTY in its `flags` last
//! (a release store); the reader loads `flags` with acquire before it reads `slot` and
//! `offset`, and hands the entry back by storing KVM_DIRTY_GFN_F_RESET with release, so
//! that KVM_RESET_DIRTY_RINGS (which walks the entries in order, stopping at the first
//! one not handed back) sees the slot and offset it is to re-protect.

use crate::error::{Errno, Result};
use kvm_bindings::kvm_dirty_gfn;
use std::os::unix::io::RawFd;
use std::ptr::{addr_of, addr_of_mut, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};

/// KVM_DIRTY_GFN_F_DIRTY: the kernel filled the entry.
const F_DIRTY: u32 = 1;
/// KVM_DIRTY_GFN_F_RESET: user space collected it; the next reset re-protects its page.
const F_RESET: u32 = 2;
/// The page size the ring's offset is counted in (x86).
const PAGE: usize = 4096;

/// A vcpu's ring entries, mapped shared from its fd; unmapped on drop.
#[derive(Debug)]
pub struct RingMap {
    entries: NonNull<kvm_dirty_gfn>,
    /// Number of entries: a power of two.
    count: u32,
}

// SAFETY: the mapping is shared memory with no thread affinity; its entries are only
// accessed through raw pointers (flags atomically), and the owner of the `RingMap`
// serializes readers (`DirtyLog`'s lock).
unsafe impl Send for RingMap {}
// SAFETY: as above.
unsafe impl Sync for RingMap {}

impl RingMap {
    /// Maps the `bytes`-byte ring of vcpu `vcpu_fd` (not inherited by fork()).
    pub fn map(vcpu_fd: RawFd, bytes: u32) -> Result<RingMap> {
        let len = bytes as usize;
        let offset = kvm_bindings::KVM_DIRTY_LOG_PAGE_OFFSET as libc::off_t * PAGE as libc::off_t;
        // SAFETY: a new shared mapping of the vcpu's ring pages, which the kernel offers at
        // this offset with exactly the size the VM's ring was enabled with.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                vcpu_fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let ring = RingMap {
            entries: NonNull::new(p.cast()).ok_or(Errno(libc::ENOMEM))?,
            count: bytes / std::mem::size_of::<kvm_dirty_gfn>() as u32,
        };
        // SAFETY: advising our own fresh mapping; on failure `ring` is dropped, unmapping it.
        crate::error::check(unsafe { libc::madvise(p, len, libc::MADV_DONTFORK) })?;
        Ok(ring)
    }

    /// Collects the entries the kernel filled, from index `*fetch` on, in order: calls
    /// `f(slot, offset)` for each, hands it back (F_RESET) and advances `*fetch`. Returns
    /// how many it collected.
    pub fn collect(&self, fetch: &mut u32, mut f: impl FnMut(u32, u64)) -> u32 {
        let mut n = 0;
        loop {
            let e = self.entry(*fetch);
            // SAFETY: `e` points to an entry inside the live mapping; `flags` is a u32
            // at offset 0 of a 16-byte aligned entry, shared with the kernel, and only
            // ever accessed atomically here.
            let flags = unsafe { AtomicU32::from_ptr(addr_of_mut!((*e).flags)) };
            if flags.load(Ordering::Acquire) & F_DIRTY == 0 {
                return n;
            }
            // SAFETY: as above; the acquire load makes the kernel's slot and offset
            // visible, and the kernel does not touch the entry until it is reset.
            let (slot, offset) =
                unsafe { (addr_of!((*e).slot).read(), addr_of!((*e).offset).read()) };
            f(slot, offset);
            flags.store(F_RESET, Ordering::Release);
            *fetch = fetch.wrapping_add(1);
            n += 1;
        }
    }

    fn entry(&self, index: u32) -> *mut kvm_dirty_gfn {
        // The count is a power of two: the mask keeps the index inside the mapping.
        self.entries
            .as_ptr()
            .wrapping_add((index & (self.count - 1)) as usize)
    }
}

impl Drop for RingMap {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping `map` made, no longer used (its owner is going).
        unsafe {
            libc::munmap(
                self.entries.as_ptr().cast(),
                self.count as usize * std::mem::size_of::<kvm_dirty_gfn>(),
            )
        };
    }
}
