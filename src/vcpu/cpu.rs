//! The CPU model of the calling thread's vcpu: MSRs, CPUID, FPU, guest debugging and
//! address translation.
//!
//! Every ioctl here goes through `Vcpu::reading` / `Vcpu::writing`, so the sync-regs
//! cache stays exact (see src/vcpu/sync_regs.rs).

use super::walk::walk;
use super::Vcpu;
use crate::error::{Errno, Result};
use crate::ioctl;
use kvm_bindings::{kvm_cpuid2, kvm_fpu, kvm_guest_debug, kvm_msrs, kvm_translation};
use std::os::unix::io::AsRawFd;

/// KVM_SET_GUEST_DEBUG control bits on x86.
const GUESTDBG_KNOWN: u32 = kvm_bindings::KVM_GUESTDBG_ENABLE
    | kvm_bindings::KVM_GUESTDBG_SINGLESTEP
    | kvm_bindings::KVM_GUESTDBG_USE_SW_BP
    | kvm_bindings::KVM_GUESTDBG_USE_HW_BP
    | kvm_bindings::KVM_GUESTDBG_INJECT_DB
    | kvm_bindings::KVM_GUESTDBG_INJECT_BP
    | kvm_bindings::KVM_GUESTDBG_BLOCKIRQ;

impl Vcpu {
    /// KVM_GET_MSRS on the caller's `struct kvm_msrs`: returns how many MSRs were read
    /// (the first that KVM does not know stops it).
    ///
    /// # Safety
    /// `msrs` points at a `struct kvm_msrs` followed by `nmsrs` entries.
    pub unsafe fn get_msrs(&self, msrs: *mut kvm_msrs) -> Result<i32> {
        self.reading(|fd| {
            // SAFETY: the kernel reads `nmsrs` (refusing more than it allows) and that
            // many entries, and writes their `data`, inside the caller's buffer.
            unsafe { ioctl::ioctl(fd.as_raw_fd(), ioctl::KVM_GET_MSRS, msrs as libc::c_ulong) }
        })
    }

    /// KVM_SET_MSRS from the caller's `struct kvm_msrs`: returns how many MSRs were
    /// written (the first that KVM refuses stops it).
    ///
    /// # Safety
    /// `msrs` points at a `struct kvm_msrs` followed by `nmsrs` entries.
    pub unsafe fn set_msrs(&self, msrs: *const kvm_msrs) -> Result<i32> {
        self.writing(|fd| {
            // SAFETY: the kernel only reads `nmsrs` and that many entries.
            unsafe { ioctl::ioctl(fd.as_raw_fd(), ioctl::KVM_SET_MSRS, msrs as libc::c_ulong) }
        })
    }

    /// KVM_SET_CPUID2 from the caller's `struct kvm_cpuid2`.
    ///
    /// # Safety
    /// `cpuid` points at a `struct kvm_cpuid2` followed by `nent` entries.
    pub unsafe fn set_cpuid(&self, cpuid: *const kvm_cpuid2) -> Result<()> {
        self.writing(|fd| {
            // SAFETY: the kernel only reads `nent` (refusing more than it allows) and that
            // many entries.
            unsafe {
                ioctl::ioctl(
                    fd.as_raw_fd(),
                    ioctl::KVM_SET_CPUID2,
                    cpuid as libc::c_ulong,
                )
            }
        })?;
        Ok(())
    }

    /// KVM_GET_FPU.
    pub fn get_fpu(&self) -> Result<kvm_fpu> {
        self.reading(|fd| fd.get_fpu().map_err(Errno::from))
    }

    /// KVM_SET_FPU.
    pub fn set_fpu(&self, fpu: &kvm_fpu) -> Result<()> {
        self.writing(|fd| fd.set_fpu(fpu).map_err(Errno::from))
    }

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
}
