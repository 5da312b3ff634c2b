//! `kvm_enable_dirty_ring`: the VM's dirty logging becomes the KVM dirty ring, behind the
//! same `kvm_get_dirty_log` / `kvm_clear_dirty_log`. The ring state itself (rings,
//! bitmaps, the harvest) is the leaf src/vcpu/dirty_log.rs, shared with the vcpus; this
//! file is the VM's side: enabling it, keeping a bitmap per logging slot as slots change,
//! and answering the dirty-log calls from it.

use super::Vm;
use crate::error::{Errno, Result};
use crate::ioctl;
use crate::vcpu::dirty_log::{DirtyLog, SlotChange};
use kvm_bindings::{
    kvm_clear_dirty_log, kvm_enable_cap, KVM_CAP_DIRTY_LOG_RING, KVM_CAP_DIRTY_LOG_RING_ACQ_REL,
    KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_MEM_LOG_DIRTY_PAGES,
};
use std::sync::atomic::Ordering;

/// KVM_DIRTY_LOG_INITIALLY_SET of KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: the kernel then
/// never write-protects a new slot, so no ring entry would ever tell of its pages.
const INITIALLY_SET: u64 = 2;

/// The ring's smallest size: one page.
const MIN_BYTES: u32 = 4096;

impl Vm {
    /// `kvm_enable_dirty_ring`: `bytes` per vcpu. EBUSY once a vcpu exists or the ring is
    /// on already; EOPNOTSUPP without the capability; EINVAL for a size that is not a
    /// power of two from one page to the kernel's maximum (or that the kernel refuses),
    /// and with KVM_DIRTY_LOG_INITIALLY_SET in force.
    pub fn enable_dirty_ring(&self, bytes: u32) -> Result<()> {
        // The lock that vcpu creation holds: no vcpu appears meanwhile.
        let _kept = self.kept.lock();
        if self.ring.get().is_some() || self.vcpus_made.load(Ordering::Acquire) {
            return Err(Errno(libc::EBUSY));
        }
        let (cap, max) = match self.check_extension(KVM_CAP_DIRTY_LOG_RING_ACQ_REL.into())? {
            0 => (
                KVM_CAP_DIRTY_LOG_RING,
                self.check_extension(KVM_CAP_DIRTY_LOG_RING.into())?,
            ),
            max => (KVM_CAP_DIRTY_LOG_RING_ACQ_REL, max),
        };
        if max <= 0 {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        if !bytes.is_power_of_two()
            || bytes < MIN_BYTES
            || bytes > max as u32
            || self.manual_protect.load(Ordering::Acquire) & INITIALLY_SET != 0
        {
            return Err(Errno(libc::EINVAL));
        }
        // The fault-checked copies the dirty-log calls use on the ring, ready before it is.
        crate::user_copy::ready()?;
        let log = crate::error::try_arc(DirtyLog::new(self.raw_fd(), bytes)?)?;
        // Slots that log already get their bitmaps before the kernel switches: the change
        // cannot fail half-way.
        // (`log` is not published yet: nothing to undo if the kernel refuses.)
        let mem = self.memory.lock();
        for (slot, flags, size) in mem.entries() {
            if flags & KVM_MEM_LOG_DIRTY_PAGES != 0 {
                log.prepare(slot, Some(size / super::slots::PAGE_SIZE))?;
            }
        }
        let mut arg = kvm_enable_cap {
            cap,
            ..Default::default()
        };
        arg.args[0] = u64::from(bytes);
        // SAFETY: KVM_ENABLE_CAP reads one struct kvm_enable_cap, alive across the call.
        unsafe { ioctl::ioctl_with_ref(self.raw_fd(), ioctl::KVM_ENABLE_CAP, &arg) }?;
        // Published before the slot lock goes: every slot change and dirty-log call
        // takes that lock before it looks at the cell, so none sees the kernel on the
        // ring without libkvm's bitmaps (a new slot without one, KVM_GET_DIRTY_LOG
        // failing with ENXIO). Cannot fail: the cell was empty under the lock.
        let _ = self.ring.set(log);
        drop(mem);
        Ok(())
    }

    /// Bytes of each vcpu's ring; 0 while the VM logs into the kernel's bitmaps.
    pub fn dirty_ring_bytes(&self) -> u32 {
        self.ring.get().map_or(0, |l| l.bytes())
    }

    /// Remembers KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2's options (`kvm_enable_cap`, under
    /// the lock `enable_dirty_ring` holds); with the ring, INITIALLY_SET is refused.
    pub(super) fn enable_manual_protect(&self, cap: &kvm_enable_cap) -> Result<()> {
        let _kept = self.kept.lock();
        if self.ring.get().is_some() && cap.args[0] & INITIALLY_SET != 0 {
            return Err(Errno(libc::EINVAL));
        }
        // SAFETY: KVM_ENABLE_CAP reads one struct kvm_enable_cap, alive across the call.
        unsafe { ioctl::ioctl_with_ref(self.raw_fd(), ioctl::KVM_ENABLE_CAP, cap) }?;
        self.manual_protect.store(cap.args[0], Ordering::Release);
        Ok(())
    }

    /// Before the kernel changes KVM slot `slot` to `flags` and `size` (0: deleted): what
    /// the ring's bitmaps must do, allocated (None without the ring).
    pub(super) fn ring_prepare(
        &self,
        slot: u32,
        flags: u32,
        size: u64,
    ) -> Result<Option<SlotChange>> {
        let Some(log) = self.ring.get() else {
            return Ok(None);
        };
        let logs = size != 0 && flags & KVM_MEM_LOG_DIRTY_PAGES != 0;
        log.prepare(slot, logs.then_some(size / super::slots::PAGE_SIZE))
            .map(Some)
    }

    /// After the kernel made the change `ring_prepare` prepared (`done`), or refused it.
    pub(super) fn ring_commit(&self, slot: u32, change: Option<SlotChange>, done: bool) {
        if let (Some(log), Some(c)) = (self.ring.get(), change) {
            if done {
                log.commit(slot, c);
            } else {
                log.abort(slot, c);
            }
        }
    }

    /// With the ring: `kvm_get_dirty_log` of KVM slot `slot` into `bitmap` (harvested
    /// first; cleared unless manual protection keeps it). Some(result), or None without
    /// the ring.
    pub(super) fn ring_dirty_log(&self, slot: u32, bitmap: *mut u8) -> Option<Result<()>> {
        let log = self.ring.get()?;
        let keep = self.manual_protect.load(Ordering::Acquire) & 1 != 0;
        Some(log.take(slot, bitmap, keep))
    }

    /// With the ring: `kvm_clear_dirty_log` on libkvm's bitmap (None without the ring).
    pub(super) fn ring_clear_dirty_log(&self, log: &kvm_clear_dirty_log) -> Option<Result<()>> {
        let ring = self.ring.get()?;
        // SAFETY: reading the union member the caller filled in (a pointer either way).
        let bits = unsafe { log.__bindgen_anon_1.dirty_bitmap };
        Some(ring.clear(
            log.slot,
            log.first_page,
            u64::from(log.num_pages),
            bits.cast::<u8>(),
        ))
    }
}

/// Whether `cap` is KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, which `enable_cap` hands to
/// `enable_manual_protect`.
pub(super) fn is_manual_protect(cap: u32) -> bool {
    cap == KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcpu::Vcpu;

    /// Runs real-mode code at 0 on `v` until it halts: it writes pages 1 and 2.
    fn write_pages_1_and_2(v: &Vcpu) {
        let mut s = v.get_sregs().unwrap();
        s.cs.base = 0;
        s.cs.selector = 0;
        s.ds.base = 0;
        s.ds.selector = 0;
        v.set_sregs(&s).unwrap();
        let mut r = v.get_regs().unwrap();
        r.rip = 0;
        v.set_regs(&r).unwrap();
        assert_eq!(v.run(), Ok(kvm_bindings::KVM_EXIT_HLT as i32));
    }

    /// A VM with a one-page ring, or None without KVM or the ring.
    fn vm_with_ring() -> Option<Vm> {
        let vm = Vm::create().ok()?;
        match vm.enable_dirty_ring(4096) {
            Err(Errno(libc::EOPNOTSUPP)) => None,
            r => {
                r.unwrap();
                Some(vm)
            }
        }
    }

    /// Puts the code `write_pages_1_and_2` runs at 0 of slot 0; its host address.
    fn load_writer(vm: &Vm) -> *mut u8 {
        // mov [0x1000], al; mov [0x2000], al; hlt
        let code = [0xa2, 0x00, 0x10, 0xa2, 0x00, 0x20, 0xf4];
        let p = vm.guest_memory(0, 0x10000).unwrap();
        // SAFETY: the slot's first bytes, mapped while the VM lives.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), p, code.len()) };
        p
    }

    fn dirty_words(vm: &Vm) -> u64 {
        let mut words = [0u64; 1];
        vm.get_dirty_log(0, words.as_mut_ptr().cast()).unwrap();
        words[0]
    }

    /// A vcpu object that goes with entries still in its ring folds them into the
    /// bitmaps first; the kernel vcpu (and its ring) lives on, and the next object for it
    /// reads on where the last one stopped.
    #[test]
    fn a_vcpu_that_goes_loses_no_entry() {
        let Some(vm) = vm_with_ring() else {
            return; // no usable /dev/kvm or no ring: nothing to test
        };
        vm.set_memory_region(
            0,
            KVM_MEM_LOG_DIRTY_PAGES,
            0,
            0x10000,
            crate::vm::fd_backing::Source::Anonymous,
        )
        .unwrap();
        load_writer(&vm);
        assert_eq!(dirty_words(&vm), 0);
        for round in 0..3 {
            let v = vm.create_vcpu(1).unwrap();
            write_pages_1_and_2(&v);
            vm.keep_for_retry(1, &v);
            drop(v);
            assert_eq!(dirty_words(&vm), 0b110, "round {round}");
            assert_eq!(dirty_words(&vm), 0, "round {round}");
        }
    }

    /// A harvest between the kernel's slot change and libkvm's bookkeeping (a full ring
    /// in another thread's `kvm_run`, a dirty-log call on another slot) finds the bitmap
    /// of a slot that starts logging: its pages are reported, not dropped.
    #[test]
    fn a_harvest_during_a_slot_change_loses_no_entry() {
        let Some(vm) = vm_with_ring() else {
            return; // no usable /dev/kvm or no ring: nothing to test
        };
        let source = crate::vm::fd_backing::Source::Anonymous;
        vm.set_memory_region(0, 0, 0, 0x10000, source).unwrap();
        let host = load_writer(&vm);
        let v = vm.create_vcpu(0).unwrap();
        // Logging switched on as `kvm_set_slot` does it, with the guest writing and
        // a harvest between the kernel's change and the commit.
        let change = vm
            .ring_prepare(0, KVM_MEM_LOG_DIRTY_PAGES, 0x10000)
            .unwrap();
        let region = kvm_bindings::kvm_userspace_memory_region {
            slot: 0,
            flags: KVM_MEM_LOG_DIRTY_PAGES,
            guest_phys_addr: 0,
            memory_size: 0x10000,
            userspace_addr: host as u64,
        };
        // SAFETY: the slot's own memory, mapped while the VM lives.
        unsafe { vm.fd.set_user_memory_region(region) }.unwrap();
        write_pages_1_and_2(&v);
        vm.ring.get().unwrap().harvest().unwrap();
        vm.ring_commit(0, change, true);
        vm.memory.lock().get_mut(0).unwrap().flags = KVM_MEM_LOG_DIRTY_PAGES;
        assert_eq!(dirty_words(&vm), 0b110);
        assert_eq!(dirty_words(&vm), 0);
    }
}
