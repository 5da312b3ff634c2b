//! The VM's guest memory: slots (libkvm's or the caller's memory), aliases, the dirty
//! log, and reads of guest memory for libkvm's own use. The slot table itself is
//! src/vm/slots.rs.

use super::fd_backing::Source;
use super::slots::{self, Backing, MemoryMap, Slot};
use super::{Vm, ALIAS_SLOTS};
use crate::error::{Errno, Result};
use crate::ioctl;
use crate::memory::kvm_memory_alias;
use kvm_bindings::{
    kvm_clear_dirty_log, kvm_dirty_log, kvm_userspace_memory_region, KVM_MEM_LOG_DIRTY_PAGES,
};

impl Vm {
    fn kvm_set_slot(
        &self,
        slot: u32,
        flags: u32,
        gpa: u64,
        size: u64,
        host: *mut u8,
        guest_memfd: Option<(i32, u64)>,
    ) -> Result<()> {
        let region = kvm_userspace_memory_region {
            slot,
            flags,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: host as u64,
        };
        // The dirty ring's bitmap of the slot follows every change (vm/dirty_ring.rs).
        let ring = self.ring_prepare(slot, flags, size)?;
        let r = if let Some(g) = guest_memfd {
            self.kvm_set_guest_memfd_slot(&region, g)
        } else {
            // SAFETY: `host` is either memory libkvm mapped for this slot or memory the
            // caller handed over for it (the caller's promise, as with the raw ioctl); the
            // kernel checks that the range is accessible.
            unsafe { self.fd.set_user_memory_region(region) }.map_err(Errno::from)
        };
        self.ring_commit(slot, ring, r.is_ok());
        r
    }

    /// `kvm_set_memory_region` (`Source::Anonymous`: libkvm allocates),
    /// `kvm_set_user_memory_region` (`Source::User`: the caller's memory) and
    /// `kvm_set_memory_region_fd` (`Source::File`). Size 0 deletes (`gpa` and the source
    /// are then ignored).
    pub fn set_memory_region(
        &self,
        slot: u32,
        flags: u32,
        gpa: u64,
        size: u64,
        source: Source,
    ) -> Result<()> {
        if slot >= self.user_slots || flags & !slots::VALID_FLAGS != 0 {
            return Err(Errno(libc::EINVAL));
        }
        let mut mem = self.memory.lock();
        if size == 0 {
            if mem.get(slot).is_none() {
                return Err(Errno(libc::ENOENT));
            }
            if mem.has_aliases(slot) {
                return Err(Errno(libc::EBUSY));
            }
            // The caller's `gpa` is ignored: the kernel checks the one it is given.
            let own = mem.get(slot).expect("checked above").gpa;
            self.kvm_set_slot(slot, 0, own, 0, std::ptr::null_mut(), None)?;
            let old = mem.remove(slot).expect("checked above");
            let Err((backing, e)) = old.backing.unmap() else {
                return Ok(());
            };
            // The kernel could not unmap the memory (ENOMEM: at vm.max_map_count, a split
            // needs a VMA). It is still mapped and intact: put the slot back as it was and
            // report the failure, so the caller can free mappings and delete again.
            let gmem = backing.guest_memfd();
            if self
                .kvm_set_slot(slot, old.flags, old.gpa, old.size, old.host, gmem)
                .is_ok()
            {
                mem.insert(slot, Slot { backing, ..old });
                return Err(e);
            }
            // KVM would not take the slot back: it is deleted, and its memory, no longer
            // the guest's, is released as soon as the kernel allows (`Mapping`'s drop).
            drop(backing);
            return Ok(());
        }
        slots::check_range(gpa, size)?;
        let source = source.check(size, |file, len| self.guest_memfd_flags(file, len))?;
        if mem.overlapping(gpa, size, slot).is_some() {
            return Err(Errno(libc::EEXIST));
        }
        if let Some(old) = mem.get(slot) {
            // Changing an existing slot: KVM allows new flags or a new guest address, on
            // the same memory.
            if old.size != size || !source.same_memory(old) {
                return Err(Errno(libc::EINVAL));
            }
            let aliases = mem.aliases_of(slot)?;
            if !aliases.is_empty() && gpa != old.gpa {
                return Err(Errno(libc::EBUSY));
            }
            let (host, old_flags, gmem) = (old.host, old.flags, old.backing.guest_memfd());
            self.kvm_set_slot(slot, flags, gpa, size, host, gmem)?;
            if flags != old_flags {
                if let Err(e) = self.set_alias_flags(&mut mem, &aliases, flags) {
                    // Undo: the aliases that changed already, then the slot itself.
                    let _ = self.set_alias_flags(&mut mem, &aliases, old_flags);
                    let _ = self.kvm_set_slot(slot, old_flags, gpa, size, host, gmem);
                    return Err(e);
                }
            }
            // Same memory and size: only the guest address and flags change, in place.
            if let Some(s) = mem.get_mut(slot) {
                s.gpa = gpa;
                s.flags = flags;
            }
            return Ok(());
        }
        // Room in the table first: once KVM has the slot, recording it cannot fail.
        mem.reserve()?;
        let (host, backing) = source.back(size)?;
        // On failure `backing` is dropped here, unmapping what we allocated.
        self.kvm_set_slot(slot, flags, gpa, size, host, backing.guest_memfd())?;
        mem.insert(
            slot,
            Slot {
                gpa,
                size,
                flags,
                host,
                backing,
            },
        );
        Ok(())
    }

    /// (slot, guest-physical start, size) of the caller's memory slots, by slot number.
    pub fn memory_layout(&self) -> Result<Vec<(u32, u64, u64)>> {
        self.memory.lock().layout(self.user_slots)
    }

    /// The host address of guest-physical `[gpa, gpa + len)`, which must lie in one slot.
    pub fn guest_memory(&self, gpa: u64, len: u64) -> Result<*mut u8> {
        self.memory.lock().host_address(gpa, len)
    }

    /// Reads a little-endian value of `len` bytes (1 to 8) of guest memory at `gpa`
    /// (EFAULT if they are not inside one slot), under the slot lock so that the slot
    /// cannot go away during the read.
    pub fn read_guest(&self, gpa: u64, len: usize) -> Result<u64> {
        let len = len.clamp(1, 8);
        let mem = self.memory.lock();
        let p = mem.host_address(gpa, len as u64)?;
        let mut bytes = [0u8; 8];
        for (i, b) in bytes.iter_mut().take(len).enumerate() {
            // SAFETY: the `len` bytes lie inside a slot's host memory, which stays mapped
            // while the lock is held; the guest may write them concurrently, hence the
            // volatile read.
            *b = unsafe { std::ptr::read_volatile(p.add(i)) };
        }
        Ok(u64::from_le_bytes(bytes))
    }

    /// Gives every alias in `aliases` (KVM slot, target) the slot flags `flags`.
    fn set_alias_flags(
        &self,
        mem: &mut MemoryMap,
        aliases: &[(u32, u64)],
        flags: u32,
    ) -> Result<()> {
        for &(n, _) in aliases {
            let a = mem.get(n).expect("aliases_of returns existing slots");
            if a.flags != flags {
                self.kvm_set_slot(n, flags, a.gpa, a.size, a.host, None)?;
                mem.get_mut(n).expect("checked above").flags = flags;
            }
        }
        Ok(())
    }

    /// `kvm_set_memory_alias`: maps guest-physical `[guest_phys_addr, + memory_size)` onto
    /// the host memory of `[target_phys_addr, + memory_size)`, which must lie inside one
    /// memory slot, as a KVM slot of its own (`user_slots + alias slot`) with the target's
    /// flags. Size 0 deletes the alias; an existing alias slot is replaced.
    pub fn set_memory_alias(&self, a: &kvm_memory_alias) -> Result<()> {
        if a.slot >= ALIAS_SLOTS || a.flags != 0 {
            return Err(Errno(libc::EINVAL));
        }
        let kslot = self.user_slots + a.slot;
        let mut mem = self.memory.lock();
        if a.memory_size == 0 {
            if mem.get(kslot).is_none() {
                return Err(Errno(libc::ENOENT));
            }
            self.kvm_set_slot(kslot, 0, 0, 0, std::ptr::null_mut(), None)?;
            mem.remove(kslot);
            return Ok(());
        }
        let (gpa, size, target) = (a.guest_phys_addr, a.memory_size, a.target_phys_addr);
        slots::check_range(gpa, size)?;
        slots::check_range(target, size)?;
        let (tslot, t) = mem.containing(target, size)?;
        if tslot >= self.user_slots {
            // Inside another alias: only memory slots can be targets.
            return Err(Errno(libc::EFAULT));
        }
        if mem.overlapping(gpa, size, kslot).is_some() {
            return Err(Errno(libc::EEXIST));
        }
        // The offset is below t.size, which fits the host mapping of the target slot.
        let host = t.host.wrapping_add((target - t.gpa) as usize);
        let flags = t.flags;
        let new = Slot {
            gpa,
            size,
            flags,
            host,
            backing: Backing::Alias {
                slot: tslot,
                target,
            },
        };
        if let Some(old) = mem.get(kslot) {
            if (old.gpa, old.size, old.host) == (gpa, size, host) {
                return Ok(());
            }
            // KVM cannot give a slot other host memory: delete it, then create it anew,
            // putting the old one back if that fails.
            self.kvm_set_slot(kslot, 0, 0, 0, std::ptr::null_mut(), None)?;
            let old = mem.remove(kslot).expect("checked above");
            if let Err(e) = self.kvm_set_slot(kslot, flags, gpa, size, host, None) {
                if self
                    .kvm_set_slot(kslot, old.flags, old.gpa, old.size, old.host, None)
                    .is_ok()
                {
                    mem.insert(kslot, old);
                }
                return Err(e);
            }
        } else {
            // Room in the table first: once KVM has the slot, recording it cannot fail.
            mem.reserve()?;
            self.kvm_set_slot(kslot, flags, gpa, size, host, None)?;
        }
        mem.insert(kslot, new);
        Ok(())
    }

    /// `kvm_get_memory_alias`: the alias in alias slot `slot`; ENOENT if there is none.
    pub fn get_memory_alias(&self, slot: u32) -> Result<kvm_memory_alias> {
        if slot >= ALIAS_SLOTS {
            return Err(Errno(libc::EINVAL));
        }
        let mem = self.memory.lock();
        let a = mem.get(self.user_slots + slot).ok_or(Errno(libc::ENOENT))?;
        let Backing::Alias { target, .. } = a.backing else {
            return Err(Errno(libc::ENOENT));
        };
        Ok(kvm_memory_alias {
            slot,
            flags: 0,
            guest_phys_addr: a.gpa,
            memory_size: a.size,
            target_phys_addr: target,
        })
    }

    /// KVM_GET_DIRTY_LOG of KVM slot `slot` into `bitmap`.
    fn kvm_dirty_log(&self, slot: u32, bitmap: *mut libc::c_void) -> Result<()> {
        if let Some(r) = self.ring_dirty_log(slot, bitmap.cast()) {
            return r;
        }
        let mut log = kvm_dirty_log {
            slot,
            ..Default::default()
        };
        log.__bindgen_anon_1.dirty_bitmap = bitmap;
        // SAFETY: KVM_GET_DIRTY_LOG reads one struct kvm_dirty_log, which lives across the
        // call, and writes the slot's bitmap (one bit per page, rounded up to 64 bits) to
        // `bitmap`, which the caller guarantees is that large.
        unsafe { ioctl::ioctl_with_ref(self.raw_fd(), ioctl::KVM_GET_DIRTY_LOG, &log) }?;
        Ok(())
    }

    /// `kvm_get_dirty_log`: the pages of memory slot `slot` written since the last call,
    /// one bit per page into `bitmap` (which must hold the slot's page count rounded up
    /// to a multiple of 64 bits). Writes through an alias into the slot count as writes
    /// to the slot, as they did when the kernel resolved aliases itself.
    pub fn get_dirty_log(&self, slot: u32, bitmap: *mut u8) -> Result<()> {
        let mem = self.memory.lock();
        let s = if slot < self.user_slots {
            mem.get(slot)
        } else {
            None
        }
        .ok_or(Errno(libc::ENOENT))?;
        if s.flags & KVM_MEM_LOG_DIRTY_PAGES == 0 {
            return Err(Errno(libc::EINVAL));
        }
        let base = s.gpa;
        self.kvm_dirty_log(slot, bitmap.cast())?;
        for (n, target) in mem.aliases_of(slot)? {
            let a = mem.get(n).expect("aliases_of returns existing slots");
            let pages = a.size / slots::PAGE_SIZE;
            let mut words = crate::error::try_vec(pages.div_ceil(64) as usize, 0u64)?;
            self.kvm_dirty_log(n, words.as_mut_ptr().cast())?;
            let first = (target - base) / slots::PAGE_SIZE;
            for (w, &word) in words.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let page = first + w as u64 * 64 + u64::from(bits.trailing_zeros());
                    bits &= bits - 1;
                    // SAFETY: the alias lies inside the slot, so `page` is a page of the
                    // slot, whose bit is inside the caller's bitmap.
                    unsafe { *bitmap.add((page / 8) as usize) |= 1 << (page % 8) };
                }
            }
        }
        Ok(())
    }

    /// KVM_CLEAR_DIRTY_LOG. Only the caller's slots (`0..user_slots`, address space 0) are
    /// accepted: slots above are libkvm's own (memory aliases).
    pub fn clear_dirty_log(&self, log: &kvm_clear_dirty_log) -> Result<()> {
        if log.slot >= self.user_slots() {
            return Err(Errno(libc::ENOENT));
        }
        // The slot lock, as for every look at the ring's cell: `enable_dirty_ring` sets
        // it under that lock, so the kernel's mode and the cell agree here.
        let _mem = self.memory.lock();
        if let Some(r) = self.ring_clear_dirty_log(log) {
            return r;
        }
        // SAFETY: KVM_CLEAR_DIRTY_LOG reads one struct kvm_clear_dirty_log; the bitmap it
        // points to is the caller's (EFAULT from the kernel if it is not readable).
        unsafe { ioctl::ioctl_with_ref(self.raw_fd(), ioctl::KVM_CLEAR_DIRTY_LOG, log) }?;
        Ok(())
    }
}
