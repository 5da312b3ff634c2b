//! The dirty log of a VM whose dirty logging is the ring (leaf, shared by the VM and its
//! vcpus through an `Arc`): every vcpu's ring, the per-slot bitmaps libkvm keeps in
//! place of the kernel's, and the harvest that moves ring entries into them.
//!
//! The harvest collects every ring's entries in order, then issues KVM_RESET_DIRTY_RINGS
//! before any of those pages can be reported: a page the guest writes after the reset is
//! logged anew (the kernel re-protects it in the reset), so a report never hides a later
//! write. All of this happens under one lock, which the VM takes (under its slot lock:
//! the order is slot table, then this) and a vcpu takes alone, from `kvm_run` when its
//! ring is full, so the run path never needs the VM.

use super::dirty_bitmap::Bitmap;
use super::dirty_ring::RingMap;
use crate::error::{nomem, Errno, Result};
use crate::ioctl;
use parking_lot::Mutex;
use std::os::unix::io::RawFd;
use std::sync::Arc;

/// The VM-wide ring state.
#[derive(Debug)]
pub struct DirtyLog {
    /// A close-on-exec duplicate of the VM fd, for KVM_RESET_DIRTY_RINGS: a vcpu folding
    /// its ring on its way out may outlive the `Vm` (a call on it still running).
    fd: RawFd,
    /// Bytes of each vcpu's ring.
    bytes: u32,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Every vcpu id that ever had a ring, with where its reader stands: the kernel vcpu
    /// (and its ring) outlives a libkvm vcpu object, so the index must too.
    rings: Vec<Ring>,
    /// (KVM slot, bitmap) of every slot that logs dirty pages, by slot number.
    bitmaps: Vec<(u32, Bitmap)>,
    /// Entries were handed back but KVM_RESET_DIRTY_RINGS failed: the next harvest must
    /// reset before anything is reported.
    unreset: bool,
}

#[derive(Debug)]
struct Ring {
    id: u32,
    fetch: u32,
    map: Option<RingMap>,
}

/// A vcpu's hold on its ring: mapped while it lives; on drop its entries are folded into
/// the bitmaps (nothing is lost) and the mapping goes.
#[derive(Debug)]
pub struct VcpuRing {
    log: Arc<DirtyLog>,
    id: u32,
}

/// What a slot change does to the bitmaps (`DirtyLog::prepare`, then `commit` once the
/// kernel took the change, or `abort` if it did not).
#[derive(Debug)]
pub enum SlotChange {
    /// Nothing (the slot keeps its bitmap, or had none and gets none).
    Keep,
    /// The slot stops logging (or goes): its bitmap goes at `commit`.
    Drop,
    /// The slot starts logging (or changes size): its new, empty bitmap went in at
    /// `prepare`, in place of this old one if it had one (back at `abort`).
    New(Option<Bitmap>),
}

impl Inner {
    fn bitmap(&self, slot: u32) -> std::result::Result<usize, usize> {
        self.bitmaps.binary_search_by_key(&slot, |b| b.0)
    }

    /// Collects every ring into the bitmaps; resets them if anything was collected (or a
    /// reset is owed).
    fn harvest(&mut self, fd: RawFd) -> Result<()> {
        self.harvest_to(fd, None)
    }

    /// `harvest`, but the entries of `direct`'s slot go straight into its buffer (the
    /// caller's, in cache after `Bitmap::take` zeroed it, where libkvm's own bitmap would
    /// be cold: a cache miss per entry).
    fn harvest_to(&mut self, fd: RawFd, direct: Option<&Direct>) -> Result<()> {
        let Inner {
            rings,
            bitmaps,
            unreset,
        } = self;
        let mut n = 0;
        // The slot of the last entry: entries come in runs of one slot.
        let mut last: Option<(u32, usize)> = None;
        for r in rings.iter_mut() {
            let Some(map) = &r.map else { continue };
            n += map.collect(&mut r.fetch, |slot, offset| {
                if let Some(d) = direct.filter(|d| d.slot == slot) {
                    if offset < d.pages {
                        // SAFETY: `d.out` holds `d.pages` bits (`Direct`), written as
                        // bytes (bit i is bit i % 8 of byte i / 8, as in the kernel's).
                        unsafe { *d.out.add((offset / 8) as usize) |= 1 << (offset % 8) };
                    }
                    return;
                }
                let i = match last {
                    Some((s, i)) if s == slot => Some(i),
                    _ => bitmaps.binary_search_by_key(&slot, |b| b.0).ok(),
                };
                let Some(i) = i else {
                    // A slot that no longer logs (address space 1 never does here).
                    return;
                };
                last = Some((slot, i));
                bitmaps[i].1.mark(offset);
            });
        }
        if n > 0 || *unreset {
            *unreset = true;
            // SAFETY: KVM_RESET_DIRTY_RINGS takes no argument.
            unsafe { ioctl::ioctl(fd, ioctl::KVM_RESET_DIRTY_RINGS, 0) }?;
            *unreset = false;
        }
        Ok(())
    }
}

/// The buffer of a `kvm_get_dirty_log` of KVM slot `slot`: valid for writes of `pages`
/// bits rounded up to 64-bit words.
struct Direct {
    slot: u32,
    pages: u64,
    out: *mut u8,
}

impl DirtyLog {
    /// The ring state of VM `vm_fd`, whose rings are `bytes` long each.
    pub fn new(vm_fd: RawFd, bytes: u32) -> Result<DirtyLog> {
        let fd = crate::cancel::dup_cloexec(vm_fd)?;
        Ok(DirtyLog {
            fd,
            bytes,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Bytes of each vcpu's ring.
    pub fn bytes(&self) -> u32 {
        self.bytes
    }

    /// The duplicate of the VM fd (a fork() child closes its copy).
    pub fn raw_fd(&self) -> RawFd {
        self.fd
    }

    /// Maps the ring of vcpu `id` (fd `vcpu_fd`), reading on where its last holder
    /// stopped.
    pub fn attach(self: &Arc<Self>, vcpu_fd: RawFd, id: u32) -> Result<VcpuRing> {
        let map = RingMap::map(vcpu_fd, self.bytes)?;
        let mut inner = self.inner.lock();
        match inner.rings.iter_mut().find(|r| r.id == id) {
            Some(r) => r.map = Some(map),
            None => {
                inner.rings.try_reserve(1).map_err(nomem)?;
                inner.rings.push(Ring {
                    id,
                    fetch: 0,
                    map: Some(map),
                });
            }
        }
        Ok(VcpuRing {
            log: self.clone(),
            id,
        })
    }

    /// Moves every ring's entries into the bitmaps and resets the rings.
    pub fn harvest(&self) -> Result<()> {
        self.inner.lock().harvest(self.fd)
    }

    /// `kvm_get_dirty_log` of KVM slot `slot`: harvests, then copies its bitmap to `out`
    /// (pages rounded up to 64-bit words) and, unless `keep`, clears it. ENOENT if the
    /// slot does not log; EFAULT (nothing reported, nothing lost) unless `out` is
    /// writable, as the kernel checks it (`user_copy`).
    pub fn take(&self, slot: u32, out: *mut u8, keep: bool) -> Result<()> {
        let mut inner = self.inner.lock();
        let i = inner.bitmap(slot).map_err(|_| Errno(libc::ENOENT))?;
        if keep {
            inner.harvest(self.fd)?;
            // SAFETY: the caller's buffer, which stays mapped during the call (the
            // documented contract of kvm_get_dirty_log).
            return unsafe { inner.bitmaps[i].1.take(out, true) };
        }
        // What earlier harvests gathered first (the buffer zeroed, found writable), then
        // the rings straight into the buffer.
        // SAFETY: as above.
        unsafe { inner.bitmaps[i].1.take(out, false) }?;
        let direct = Direct {
            slot,
            pages: inner.bitmaps[i].1.pages(),
            out,
        };
        inner.harvest_to(self.fd, Some(&direct)).inspect_err(|_| {
            // Not reported: the pages go back for the next call.
            // SAFETY: as above; `take` found the buffer mapped and wrote it just now.
            unsafe { inner.bitmaps[i].1.absorb(out) };
        })
    }

    /// `kvm_clear_dirty_log` of KVM slot `slot`: clears the bits of pages `first ..
    /// first + num` set in the caller's `bits` (bit 0 = `first`), with the kernel's rules
    /// (ENOENT: the slot does not log; EINVAL: `first` not a multiple of 64, `num` not
    /// one short of the slot's end, or the range outside the slot; EFAULT: `bits` not
    /// readable, read as the kernel reads it, through `user_copy`).
    pub fn clear(&self, slot: u32, first: u64, num: u64, bits: *const u8) -> Result<()> {
        let mut inner = self.inner.lock();
        let i = inner.bitmap(slot).map_err(|_| Errno(libc::ENOENT))?;
        inner.bitmaps[i].1.check_range(first, num)?;
        let mut copy = crate::error::try_vec(num.div_ceil(64) as usize * 8, 0u8)?;
        crate::user_copy::read(bits, &mut copy)?;
        inner.bitmaps[i].1.clear(first, num, &copy)
    }

    /// Step one of a change of KVM slot `slot`, before the kernel makes it: `pages` is
    /// the slot's page count if it logs dirty pages afterwards. A slot that starts
    /// logging gets its empty bitmap now, before the kernel can log a page of it: a
    /// harvest between the kernel's change and `commit` (a full ring in another
    /// thread's `kvm_run`, a dirty-log call on another slot) must find it. ENOMEM before
    /// anything changed.
    pub fn prepare(&self, slot: u32, pages: Option<u64>) -> Result<SlotChange> {
        let mut inner = self.inner.lock();
        let have = inner.bitmap(slot);
        let have_pages = have.ok().map(|i| inner.bitmaps[i].1.pages());
        Ok(match (have_pages, pages) {
            (Some(h), Some(p)) if h == p => SlotChange::Keep,
            (None, None) => SlotChange::Keep,
            (Some(_), None) => SlotChange::Drop,
            (_, Some(p)) => {
                let b = Bitmap::new(p)?;
                match have {
                    Ok(i) => SlotChange::New(Some(std::mem::replace(&mut inner.bitmaps[i].1, b))),
                    Err(i) => {
                        inner.bitmaps.try_reserve(1).map_err(nomem)?;
                        inner.bitmaps.insert(i, (slot, b));
                        SlotChange::New(None)
                    }
                }
            }
        })
    }

    /// Step two, once the kernel made the change. A slot that stops logging has its
    /// bitmap removed and its entries still in the rings dropped now, so that none can
    /// land in a later slot of the same number.
    pub fn commit(&self, slot: u32, change: SlotChange) {
        if let SlotChange::Drop = change {
            let mut inner = self.inner.lock();
            if let Ok(i) = inner.bitmap(slot) {
                inner.bitmaps.remove(i);
            }
            // A failed reset is owed to the next harvest (`unreset`).
            let _ = inner.harvest(self.fd);
        }
    }

    /// Step two when the kernel refused the change: the bitmaps are as before `prepare`
    /// (pages logged meanwhile were the old slot's, and stay logged).
    pub fn abort(&self, slot: u32, change: SlotChange) {
        let SlotChange::New(old) = change else {
            return;
        };
        let mut inner = self.inner.lock();
        let Ok(i) = inner.bitmap(slot) else {
            return;
        };
        match old {
            Some(mut old) => {
                old.fold(&inner.bitmaps[i].1);
                inner.bitmaps[i].1 = old;
            }
            None => {
                inner.bitmaps.remove(i);
            }
        }
    }
}

impl Drop for DirtyLog {
    fn drop(&mut self) {
        // SAFETY: the duplicate is this object's alone.
        unsafe { crate::cancel::close(self.fd) };
    }
}

impl VcpuRing {
    /// The VM-wide state this ring belongs to (the run path harvests it when full).
    pub fn log(&self) -> &DirtyLog {
        &self.log
    }
}

impl Drop for VcpuRing {
    fn drop(&mut self) {
        let mut inner = self.log.inner.lock();
        // Nothing is lost: the entries go into the bitmaps before the mapping does (a
        // failed reset is owed to the next harvest).
        let _ = inner.harvest(self.log.fd);
        if let Some(r) = inner.rings.iter_mut().find(|r| r.id == self.id) {
            r.map = None;
        }
    }
}
