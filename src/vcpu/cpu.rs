//! The CPU model of the calling thread's vcpu: MSRs, CPUID and FPU.
//!
//! Every ioctl here goes through `Vcpu::reading` / `Vcpu::writing`, so the sync-regs
//! cache stays exact (see src/vcpu/sync_regs.rs).

use super::Vcpu;
use crate::error::{Errno, Result};
use crate::ioctl;
use kvm_bindings::{kvm_cpuid2, kvm_fpu, kvm_msrs};
use std::os::unix::io::AsRawFd;

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
}
