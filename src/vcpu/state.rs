//! Per-vcpu state beyond the general and special registers: MP state, XSAVE, SREGS2,
//! XCRs, nested state, TSC frequency, kvmclock, ONE_REG and vcpu capabilities. Each
//! method goes through `Vcpu::reading`/`Vcpu::writing` so the sync-regs cache stays
//! exact.

use super::Vcpu;
use crate::error::{Errno, Result};
use crate::ioctl;
use kvm_bindings::{
    kvm_enable_cap, kvm_mp_state, kvm_nested_state, kvm_one_reg, kvm_sregs2, kvm_xcrs, kvm_xsave,
};
use std::os::unix::io::AsRawFd;

/// Size of the fixed part of struct kvm_nested_state (flags, format, size, header).
pub(crate) const NESTED_HEADER: usize = 128;

impl Vcpu {
    /// KVM_ENABLE_CAP on the vcpu fd.
    pub fn enable_cap(&self, cap: &kvm_enable_cap) -> Result<()> {
        self.writing(|fd| fd.enable_cap(cap).map_err(Errno::from))
    }

    /// How many bytes the vcpu's XSAVE state takes: KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) on
    /// the VM where the kernel has it (it can exceed 4096 with dynamic features such as AMX),
    /// else sizeof(struct kvm_xsave).
    pub fn xsave_size(&self) -> Result<usize> {
        let size = self.vm_extension(kvm_bindings::KVM_CAP_XSAVE2).unwrap_or(0);
        Ok((size.max(0) as usize).max(std::mem::size_of::<kvm_xsave>()))
    }

    /// KVM_GET_XSAVE2 (or KVM_GET_XSAVE on kernels without KVM_CAP_XSAVE2) into the caller's
    /// buffer of `len` bytes. Returns the size of the state; E2BIG if `len` is smaller.
    ///
    /// # Safety
    /// `buf` must be writable for `len` bytes.
    pub unsafe fn get_xsave(&self, buf: *mut kvm_xsave, len: usize) -> Result<usize> {
        let need = self.xsave_size()?;
        if len < need {
            return Err(Errno(libc::E2BIG));
        }
        let req = if self.vm_extension(kvm_bindings::KVM_CAP_XSAVE2).unwrap_or(0) > 0 {
            ioctl::KVM_GET_XSAVE2
        } else {
            ioctl::KVM_GET_XSAVE
        };
        self.reading(|fd| {
            // SAFETY: the kernel writes exactly `need` bytes (its uabi size), and the caller's
            // buffer holds at least that many.
            unsafe { ioctl::ioctl(fd.as_raw_fd(), req, buf as libc::c_ulong) }
        })?;
        Ok(need)
    }

    /// KVM_SET_XSAVE from the caller's buffer of `len` bytes; E2BIG if it is smaller than the
    /// state the kernel reads.
    ///
    /// # Safety
    /// `buf` must be readable for `len` bytes.
    pub unsafe fn set_xsave(&self, buf: *const kvm_xsave, len: usize) -> Result<()> {
        if len < self.xsave_size()? {
            return Err(Errno(libc::E2BIG));
        }
        self.writing(|fd| {
            // SAFETY: the kernel reads its uabi size, which `len` covers.
            unsafe { ioctl::ioctl(fd.as_raw_fd(), ioctl::KVM_SET_XSAVE, buf as libc::c_ulong) }
        })?;
        Ok(())
    }

    /// KVM_GET_SREGS2.
    pub fn get_sregs2(&self) -> Result<kvm_sregs2> {
        let mut s = kvm_sregs2::default();
        self.reading(|fd| {
            // SAFETY: KVM_GET_SREGS2 writes one struct kvm_sregs2 into `s`.
            unsafe { ioctl::ioctl_with_mut(fd.as_raw_fd(), ioctl::KVM_GET_SREGS2, &mut s) }
        })?;
        Ok(s)
    }

    /// KVM_SET_SREGS2.
    pub fn set_sregs2(&self, s: &kvm_sregs2) -> Result<()> {
        self.writing(|fd| {
            // SAFETY: KVM_SET_SREGS2 reads one struct kvm_sregs2.
            unsafe { ioctl::ioctl_with_ref(fd.as_raw_fd(), ioctl::KVM_SET_SREGS2, s) }
        })?;
        Ok(())
    }

    /// KVM_GET_XCRS.
    pub fn get_xcrs(&self) -> Result<kvm_xcrs> {
        self.reading(|fd| fd.get_xcrs().map_err(Errno::from))
    }

    /// KVM_SET_XCRS.
    pub fn set_xcrs(&self, x: &kvm_xcrs) -> Result<()> {
        self.writing(|fd| fd.set_xcrs(x).map_err(Errno::from))
    }

    /// The largest nested state the kernel can produce, 0 if it has none to save
    /// (KVM_CAP_NESTED_STATE).
    pub fn nested_state_max(&self) -> Result<usize> {
        Ok(self
            .vm_extension(kvm_bindings::KVM_CAP_NESTED_STATE)?
            .max(0) as usize)
    }

    /// KVM_GET_NESTED_STATE on the caller's buffer (`size` field = room in; E2BIG with `size`
    /// set to the need). EOPNOTSUPP where the kernel lacks KVM_CAP_NESTED_STATE.
    ///
    /// # Safety
    /// `state` must point at a struct kvm_nested_state writable for its `size` field's bytes.
    pub unsafe fn get_nested_state(&self, state: *mut kvm_nested_state) -> Result<()> {
        if self.nested_state_max()? == 0 {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        self.reading(|fd| {
            // SAFETY: the caller vouches for `size` bytes; the kernel writes no more.
            unsafe {
                ioctl::ioctl(
                    fd.as_raw_fd(),
                    ioctl::KVM_GET_NESTED_STATE,
                    state as libc::c_ulong,
                )
            }
        })?;
        Ok(())
    }

    /// KVM_SET_NESTED_STATE from the caller's buffer. EOPNOTSUPP where the kernel lacks
    /// KVM_CAP_NESTED_STATE.
    ///
    /// # Safety
    /// `state` must point at a struct kvm_nested_state readable for its `size` field's bytes.
    pub unsafe fn set_nested_state(&self, state: *const kvm_nested_state) -> Result<()> {
        if self.nested_state_max()? == 0 {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        self.writing(|fd| {
            // SAFETY: as for `get_nested_state`, reading.
            unsafe {
                ioctl::ioctl(
                    fd.as_raw_fd(),
                    ioctl::KVM_SET_NESTED_STATE,
                    state as libc::c_ulong,
                )
            }
        })?;
        Ok(())
    }

    /// KVM_GET_TSC_KHZ.
    pub fn get_tsc_khz(&self) -> Result<u32> {
        // Issued here rather than through kvm-ioctls 0.25, whose get_tsc_khz turns a failure
        // into errno -1 (it wraps the ioctl's -1 as the error number), and a frequency that
        // does not fit the ioctl's int return into an error with a negative errno.
        self.reading(|fd| {
            // SAFETY: KVM_GET_TSC_KHZ takes no argument.
            let r =
                unsafe { libc::ioctl(fd.as_raw_fd(), ioctl::KVM_GET_TSC_KHZ as libc::c_ulong, 0) };
            match r {
                -1 => Err(Errno::last()),
                // The kernel's answer did not fit the int the ioctl returns; kvm_set_tsc_khz
                // refuses such frequencies, so only another program can have set it.
                r if r < 0 => Err(Errno(libc::EOVERFLOW)),
                r => Ok(r as u32),
            }
        })
    }

    /// KVM_SET_TSC_KHZ. Frequencies above `i32::MAX` kHz are refused with EINVAL: the kernel
    /// may accept them, but KVM_GET_TSC_KHZ (and kvm_get_tsc_khz's int) cannot report them.
    /// The kernel records the new frequency before it finds it cannot scale to it and fails
    /// (seen on 6.18: a refused 1 kHz then reads back as 1 kHz), so a refused frequency is
    /// undone here: a failed call changes nothing.
    pub fn set_tsc_khz(&self, khz: u32) -> Result<()> {
        if khz > i32::MAX as u32 {
            return Err(Errno(libc::EINVAL));
        }
        let old = self.get_tsc_khz().ok();
        let r = self.writing(|fd| fd.set_tsc_khz(khz).map_err(Errno::from));
        if let (Err(_), Some(old)) = (r, old) {
            let _ = self.writing(|fd| fd.set_tsc_khz(old).map_err(Errno::from));
        }
        r
    }

    /// KVM_KVMCLOCK_CTRL.
    pub fn kvmclock_ctrl(&self) -> Result<()> {
        self.writing(|fd| {
            // SAFETY: KVM_KVMCLOCK_CTRL takes no argument.
            unsafe { ioctl::ioctl(fd.as_raw_fd(), ioctl::KVM_KVMCLOCK_CTRL, 0) }
        })?;
        Ok(())
    }

    /// KVM_GET_ONE_REG: the register's value goes to `reg.addr`, the caller's memory.
    pub fn get_one_reg(&self, reg: &kvm_one_reg) -> Result<()> {
        self.reading(|fd| {
            // SAFETY: KVM_GET_ONE_REG reads one struct kvm_one_reg; the kernel writes the
            // register through `addr` with copy_to_user (EFAULT if it is not writable).
            unsafe { ioctl::ioctl_with_ref(fd.as_raw_fd(), ioctl::KVM_GET_ONE_REG, reg) }
        })?;
        Ok(())
    }

    /// KVM_SET_ONE_REG: the value comes from `reg.addr`.
    pub fn set_one_reg(&self, reg: &kvm_one_reg) -> Result<()> {
        self.writing(|fd| {
            // SAFETY: as for `get_one_reg`, reading through `addr`.
            unsafe { ioctl::ioctl_with_ref(fd.as_raw_fd(), ioctl::KVM_SET_ONE_REG, reg) }
        })?;
        Ok(())
    }

    /// KVM_GET_MP_STATE. A writing call: reading the MP state can make KVM process a
    /// pending INIT or SIPI, which changes the vcpu.
    pub fn get_mp_state(&self) -> Result<kvm_mp_state> {
        self.writing(|fd| fd.get_mp_state().map_err(Errno::from))
    }

    /// KVM_SET_MP_STATE.
    pub fn set_mp_state(&self, s: kvm_mp_state) -> Result<()> {
        self.writing(|fd| fd.set_mp_state(s).map_err(Errno::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_header_is_the_kernel_struct() {
        assert_eq!(std::mem::size_of::<kvm_nested_state>(), NESTED_HEADER);
    }
}
