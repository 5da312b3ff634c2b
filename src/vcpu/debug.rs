//! Debugging the guest on the calling thread's vcpu: guest debug controls, debug
//! registers, and address translation (with the page-table walk of src/vcpu/walk.rs).

use super::walk::walk;
use super::Vcpu;
use crate::error::{Errno, Result};
use kvm_bindings::{kvm_debugregs, kvm_guest_debug, kvm_translation};

/// KVM_SET_GUEST_DEBUG control bits on x86.
const GUESTDBG_KNOWN: u32 = kvm_bindings::KVM_GUESTDBG_ENABLE
    | kvm_bindings::KVM_GUESTDBG_SINGLESTEP
    | kvm_bindings::KVM_GUESTDBG_USE_SW_BP
    | kvm_bindings::KVM_GUESTDBG_USE_HW_BP
    | kvm_bindings::KVM_GUESTDBG_INJECT_DB
    | kvm_bindings::KVM_GUESTDBG_INJECT_BP
    | kvm_bindings::KVM_GUESTDBG_BLOCKIRQ;

impl Vcpu {
    /// KVM_SET_GUEST_DEBUG (the 2007 KVM_DEBUG_GUEST).
    pub fn set_guest_debug(&self, dbg: &kvm_guest_debug) -> Result<()> {
        // The kernel takes control bits it does not know without complaint (checked on
        // 6.18): libkvm refuses them, as kvm_debug_guest(3) says. The known ones are those
        // of <asm/kvm.h>, less any the kernel says (KVM_CAP_SET_GUEST_DEBUG2) it lacks.
        let supported =
            crate::system::check_extension(kvm_bindings::KVM_CAP_SET_GUEST_DEBUG2 as libc::c_long)
                .ok()
                .filter(|&m| m > 0)
                .map_or(GUESTDBG_KNOWN, |m| GUESTDBG_KNOWN & m as u32);
        if dbg.control & !supported != 0 {
            return Err(Errno(libc::EINVAL));
        }
        self.writing(|fd| fd.set_guest_debug(dbg).map_err(Errno::from))
    }

    /// KVM_TRANSLATE for the address, with the writeable and usermode bits (which the
    /// kernel always reports as 1 and 0) taken from a walk of the guest's page tables,
    /// read with `read_guest(gpa, len)` (the VM's `Vm::read_guest`).
    pub fn translate(
        &self,
        linear: u64,
        read_guest: impl FnMut(u64, usize) -> Result<u64>,
    ) -> Result<kvm_translation> {
        let mut tr = self.reading(|fd| fd.translate_gva(linear).map_err(Errno::from))?;
        if tr.valid == 0 {
            tr.writeable = 0;
            tr.usermode = 0;
            return Ok(tr);
        }
        let sregs = self.get_sregs()?;
        match walk(&sregs, linear, read_guest) {
            Ok(Some(w)) if w.gpa == tr.physical_address => {
                tr.writeable = w.writeable.into();
                tr.usermode = w.usermode.into();
                Ok(tr)
            }
            // The kernel's walk and ours disagree: the tables changed in between.
            _ => Err(Errno(libc::EAGAIN)),
        }
    }

    /// KVM_GET_DEBUGREGS.
    pub fn get_debugregs(&self) -> Result<kvm_debugregs> {
        self.reading(|fd| fd.get_debug_regs().map_err(Errno::from))
    }

    /// KVM_SET_DEBUGREGS.
    pub fn set_debugregs(&self, d: &kvm_debugregs) -> Result<()> {
        self.writing(|fd| fd.set_debug_regs(d).map_err(Errno::from))
    }
}
