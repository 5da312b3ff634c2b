//! The register calls of the calling thread's vcpu (general, special, events), served
//! from the KVM_CAP_SYNC_REGS area when it is current (src/vcpu/sync_regs.rs).

use super::sync_regs;
use super::Vcpu;
use crate::error::{Errno, Result};
use kvm_bindings::{kvm_regs, kvm_sregs, kvm_vcpu_events};
use kvm_ioctls::VcpuFd;
use std::ptr::{addr_of, addr_of_mut};

impl Vcpu {
    /// A get of one sync kind: from the area when it is current, else by ioctl (whose
    /// result then refreshes the area and teaches `want`).
    fn get_synced<T: Copy>(
        &self,
        kind: u64,
        area: *mut T,
        get: impl FnOnce(&VcpuFd) -> std::result::Result<T, kvm_ioctls::Error>,
    ) -> Result<T> {
        if self.sync.read_synced(kind) {
            // SAFETY: `area` points at the member of the live run area that holds `kind`,
            // which the kernel filled on the last exit.
            return Ok(unsafe { area.read() });
        }
        let v = self.reading(|fd| get(fd).map_err(Errno::from))?;
        if self.sync.supports(kind) {
            // SAFETY: as above; the kernel reads this member only when its dirty bit is
            // set, which it is not after `reading` flushed.
            unsafe { area.write(v) };
            self.sync.learned(kind);
        }
        Ok(v)
    }

    /// KVM_GET_REGS, served from the sync area when it is current.
    pub fn get_regs(&self) -> Result<kvm_regs> {
        // SAFETY: computing a field address of the live run area.
        let area = unsafe { addr_of_mut!((*self.run.0.as_ptr()).s.regs.regs) };
        self.get_synced(sync_regs::REGS, area, |fd| fd.get_regs())
    }

    /// KVM_SET_REGS, deferred to the next entry through the sync area when possible.
    pub fn set_regs(&self, r: &kvm_regs) -> Result<()> {
        if !self.sync.supports(sync_regs::REGS) {
            return self.writing(|fd| fd.set_regs(r).map_err(Errno::from));
        }
        let run = self.run.0.as_ptr();
        // SAFETY: owner-only members of the live run area; the kernel reads them on the
        // next KVM_RUN because of the dirty bit.
        unsafe {
            addr_of_mut!((*run).s.regs.regs).write(*r);
            let dirty = addr_of!((*run).kvm_dirty_regs).read();
            addr_of_mut!((*run).kvm_dirty_regs).write(dirty | sync_regs::REGS);
        }
        self.sync.forget(sync_regs::REGS);
        // KVM_SET_REGS drops a pending exception: cached events that show one are stale.
        if self.sync.is_synced(sync_regs::EVENTS)
            // SAFETY: a field of the live run area; read only if the kernel filled it.
            && unsafe { sync_regs::shows_exception(addr_of!((*run).s.regs.events)) }
        {
            self.sync.forget(sync_regs::EVENTS);
        }
        Ok(())
    }

    /// KVM_GET_SREGS, served from the sync area when it is current.
    pub fn get_sregs(&self) -> Result<kvm_sregs> {
        // SAFETY: computing a field address of the live run area.
        let area = unsafe { addr_of_mut!((*self.run.0.as_ptr()).s.regs.sregs) };
        self.get_synced(sync_regs::SREGS, area, |fd| fd.get_sregs())
    }

    /// KVM_SET_SREGS (an ioctl: the kernel may refuse the values).
    pub fn set_sregs(&self, s: &kvm_sregs) -> Result<()> {
        self.writing(|fd| fd.set_sregs(s).map_err(Errno::from))
    }

    /// KVM_GET_VCPU_EVENTS, served from the sync area when it is current.
    pub fn get_events(&self) -> Result<kvm_vcpu_events> {
        // SAFETY: computing a field address of the live run area.
        let area = unsafe { addr_of_mut!((*self.run.0.as_ptr()).s.regs.events) };
        let e = self.get_synced(sync_regs::EVENTS, area, |fd| fd.get_vcpu_events())?;
        // Reading events with an exception may have delivered its payload into CR2.
        // SAFETY: `e` is a local value.
        if unsafe { sync_regs::shows_exception(&e) } {
            self.sync.forget(sync_regs::SREGS);
        }
        Ok(e)
    }

    /// KVM_SET_VCPU_EVENTS (an ioctl: the kernel may refuse the values).
    pub fn set_events(&self, e: &kvm_vcpu_events) -> Result<()> {
        self.writing(|fd| fd.set_vcpu_events(e).map_err(Errno::from))
    }
}
