//! Per-vcpu state of the calling thread's vcpu beyond the general and special registers:
//! XSAVE, SREGS2, XCRs, debug registers, nested state, TSC frequency, kvmclock, ONE_REG
//! and vcpu capabilities. All fail with ESRCH on a thread without a vcpu.

use super::{input, output};
use crate::current::with_current;
use crate::error::{c_int, to_c_int, Errno};
use crate::vcpu::state as vcpu_state;
use kvm_bindings::{
    kvm_debugregs, kvm_enable_cap, kvm_nested_state, kvm_one_reg, kvm_sregs2, kvm_xcrs, kvm_xsave,
};
use libc::c_int;

/// Enables capability `cap->cap` on the calling thread's vcpu (for example
/// KVM_CAP_HYPERV_SYNIC, KVM_CAP_HYPERV_ENFORCE_CPUID, KVM_CAP_ENFORCE_PV_FEATURE_CPUID).
/// Errors: ESRCH (no vcpu), EFAULT (`cap` NULL), EINVAL (a capability that cannot be
/// enabled per vcpu, nonzero flags, or arguments the kernel refuses).
#[no_mangle]
pub extern "C" fn kvm_enable_vcpu_cap(cap: *const kvm_enable_cap) -> c_int {
    c_int(|| {
        let cap = input(cap)?;
        with_current(|v| vcpu_state::enable_cap(v, cap))?;
        Ok(0)
    })
}

/// Returns the size in bytes of the calling thread's vcpu's XSAVE state: at least
/// sizeof(struct kvm_xsave) (4096), more where KVM_CAP_XSAVE2 reports dynamic state
/// components (such as AMX tiles) enabled for the process. Allocate that many bytes for
/// kvm_get_xsave() and kvm_set_xsave(). Errors: ESRCH (no vcpu).
#[no_mangle]
pub extern "C" fn kvm_get_xsave_size() -> c_int {
    c_int(|| with_current(|v| to_c_int(vcpu_state::xsave_size(v)?)))
}

/// Reads the calling thread's vcpu's FPU, SSE, AVX and other XSAVE-managed state, in the
/// XSAVE format, into `xsave`, a buffer of `size` bytes (KVM_GET_XSAVE2 where the kernel
/// has it). Returns the number of bytes written (kvm_get_xsave_size()). Errors: ESRCH (no
/// vcpu), EFAULT (`xsave` NULL), E2BIG (`size` below kvm_get_xsave_size(); nothing is
/// written).
#[no_mangle]
pub extern "C" fn kvm_get_xsave(xsave: *mut kvm_xsave, size: usize) -> c_int {
    c_int(|| {
        if xsave.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: non-NULL; the caller promises `size` writable bytes (no reference to a
        // whole struct kvm_xsave is formed: `size` may be smaller, for E2BIG).
        let n = with_current(|v| unsafe { vcpu_state::get_xsave(v, xsave, size) })?;
        to_c_int(n)
    })
}

/// Sets the calling thread's vcpu's XSAVE-managed state from `xsave`, `size` bytes in the
/// format kvm_get_xsave() produces. Errors: ESRCH (no vcpu), EFAULT (`xsave` NULL), E2BIG
/// (`size` below kvm_get_xsave_size()), EINVAL (the kernel refused the state, e.g.
/// components the vcpu's CPUID does not allow or reserved MXCSR bits).
#[no_mangle]
pub extern "C" fn kvm_set_xsave(xsave: *const kvm_xsave, size: usize) -> c_int {
    c_int(|| {
        if xsave.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: non-NULL; the caller promises `size` readable bytes (no reference to a
        // whole struct kvm_xsave is formed: `size` may be smaller, for E2BIG).
        with_current(|v| unsafe { vcpu_state::set_xsave(v, xsave, size) })?;
        Ok(0)
    })
}

/// Reads the special registers of the calling thread's vcpu in the KVM_GET_SREGS2 form:
/// like kvm_get_sregs() without the pending-interrupt bitmap (that lives in the vcpu
/// events), plus the PAE page-directory pointers when `flags` has
/// KVM_SREGS2_FLAGS_PDPTRS_VALID. Errors: ESRCH (no vcpu), EFAULT (`sregs` NULL), EINVAL
/// or ENOTTY (kernel without KVM_CAP_SREGS2).
#[no_mangle]
pub extern "C" fn kvm_get_sregs2(sregs: *mut kvm_sregs2) -> c_int {
    c_int(|| {
        let out = output(sregs)?;
        *out = with_current(|v| vcpu_state::get_sregs2(v))?;
        Ok(0)
    })
}

/// Sets the special registers of the calling thread's vcpu from the KVM_SET_SREGS2 form
/// (with `flags` KVM_SREGS2_FLAGS_PDPTRS_VALID, also the PAE PDPTRs, as a migrated vcpu
/// needs). Errors: ESRCH (no vcpu), EFAULT (`sregs` NULL), EINVAL (values or flags the
/// kernel refuses).
#[no_mangle]
pub extern "C" fn kvm_set_sregs2(sregs: *const kvm_sregs2) -> c_int {
    c_int(|| {
        let s = input(sregs)?;
        with_current(|v| vcpu_state::set_sregs2(v, s))?;
        Ok(0)
    })
}

/// Reads the extended control registers (XCR0) of the calling thread's vcpu: `nr_xcrs`
/// entries of `xcrs`. Errors: ESRCH (no vcpu), EFAULT (`xcrs` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_xcrs(xcrs: *mut kvm_xcrs) -> c_int {
    c_int(|| {
        let out = output(xcrs)?;
        *out = with_current(|v| vcpu_state::get_xcrs(v))?;
        Ok(0)
    })
}

/// Sets the extended control registers of the calling thread's vcpu (`nr_xcrs` entries).
/// Errors: ESRCH (no vcpu), EFAULT (`xcrs` NULL), EINVAL (an XCR0 the vcpu's CPUID does
/// not allow: only components CPUID leaf 0xD offers, x87 always set, AVX only with SSE).
#[no_mangle]
pub extern "C" fn kvm_set_xcrs(xcrs: *const kvm_xcrs) -> c_int {
    c_int(|| {
        let x = input(xcrs)?;
        with_current(|v| vcpu_state::set_xcrs(v, x))?;
        Ok(0)
    })
}

/// Reads the debug registers DR0-DR3, DR6 and DR7 of the calling thread's vcpu. Errors:
/// ESRCH (no vcpu), EFAULT (`regs` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_debugregs(regs: *mut kvm_debugregs) -> c_int {
    c_int(|| {
        let out = output(regs)?;
        *out = with_current(|v| vcpu_state::get_debugregs(v))?;
        Ok(0)
    })
}

/// Sets the debug registers of the calling thread's vcpu. Errors: ESRCH (no vcpu), EFAULT
/// (`regs` NULL), EINVAL (nonzero flags, or reserved upper bits set in DR6 or DR7).
#[no_mangle]
pub extern "C" fn kvm_set_debugregs(regs: *const kvm_debugregs) -> c_int {
    c_int(|| {
        let d = input(regs)?;
        with_current(|v| vcpu_state::set_debugregs(v, d))?;
        Ok(0)
    })
}

/// Reads the nested-virtualization state of the calling thread's vcpu (its VMX or SVM
/// state as an L1 hypervisor) into `state`, whose `size` field gives the room (header
/// included; kvm_check_extension(vm, KVM_CAP_NESTED_STATE) is the most it can need).
/// Errors: ESRCH (no vcpu), EFAULT (`state` NULL), E2BIG (too little room: `state->size`
/// is set to the size needed), EOPNOTSUPP (the kernel has no nested state:
/// KVM_CAP_NESTED_STATE is 0).
#[no_mangle]
pub extern "C" fn kvm_get_nested_state(state: *mut kvm_nested_state) -> c_int {
    c_int(|| {
        output(state)?;
        // SAFETY: non-NULL; the caller promises `size` writable bytes.
        with_current(|v| unsafe { vcpu_state::get_nested_state(v, state) })?;
        Ok(0)
    })
}

/// Sets the nested-virtualization state of the calling thread's vcpu from `state` (as
/// kvm_get_nested_state() produced it; set the special registers and MSRs such as EFER
/// and IA32_FEATURE_CONTROL first). Errors: ESRCH (no vcpu), EFAULT (`state` NULL),
/// EINVAL (a state the kernel refuses), EOPNOTSUPP (KVM_CAP_NESTED_STATE is 0).
#[no_mangle]
pub extern "C" fn kvm_set_nested_state(state: *const kvm_nested_state) -> c_int {
    c_int(|| {
        input(state)?;
        // SAFETY: non-NULL; the caller promises `size` readable bytes.
        with_current(|v| unsafe { vcpu_state::set_nested_state(v, state) })?;
        Ok(0)
    })
}

/// Returns the TSC frequency of the calling thread's vcpu in kHz. Errors: ESRCH (no
/// vcpu), EIO (the host TSC frequency is unknown), EOVERFLOW (another program set a
/// frequency above INT_MAX through the vcpu's fd).
#[no_mangle]
pub extern "C" fn kvm_get_tsc_khz() -> c_int {
    c_int(|| with_current(|v| to_c_int(vcpu_state::get_tsc_khz(v)?)))
}

/// Sets the TSC frequency the calling thread's vcpu's guest sees to `khz` (0: the host's).
/// Without KVM_CAP_TSC_CONTROL the kernel accepts only the host frequency (within 250
/// ppm) or a higher one, which it emulates by catching up. Errors: ESRCH (no vcpu),
/// EPERM or EINVAL (a frequency the kernel cannot give the guest), EINVAL (`khz` above
/// INT_MAX, which kvm_get_tsc_khz() could not return).
#[no_mangle]
pub extern "C" fn kvm_set_tsc_khz(khz: u32) -> c_int {
    c_int(|| {
        with_current(|v| vcpu_state::set_tsc_khz(v, khz))?;
        Ok(0)
    })
}

/// Tells the calling thread's vcpu's guest that the VM was paused (sets
/// PVCLOCK_GUEST_STOPPED in its kvmclock page at the next entry), so the guest's soft
/// lockup watchdog does not fire after a stop. Errors: ESRCH (no vcpu), EINVAL (the guest
/// has not enabled kvmclock).
#[no_mangle]
pub extern "C" fn kvm_kvmclock_ctrl() -> c_int {
    c_int(|| {
        with_current(|v| vcpu_state::kvmclock_ctrl(v))?;
        Ok(0)
    })
}

/// Reads one register of the calling thread's vcpu: `reg->id` names it (on x86 an MSR:
/// KVM_REG_X86 | KVM_REG_SIZE_U64 | 2 << 32 | index, or a KVM register), and its value is
/// written to the memory at `reg->addr` (the size the id encodes). Errors: ESRCH (no
/// vcpu), EFAULT (`reg` NULL or `reg->addr` not writable), EINVAL or ENOENT (an id the
/// kernel does not know).
#[no_mangle]
pub extern "C" fn kvm_get_one_reg(reg: *const kvm_one_reg) -> c_int {
    c_int(|| {
        let r = input(reg)?;
        with_current(|v| vcpu_state::get_one_reg(v, r))?;
        Ok(0)
    })
}

/// Sets one register of the calling thread's vcpu, named by `reg->id`, from the memory at
/// `reg->addr`. Errors: ESRCH (no vcpu), EFAULT (`reg` NULL or `reg->addr` not readable),
/// EINVAL or ENOENT (an id the kernel does not know, or a value it refuses).
#[no_mangle]
pub extern "C" fn kvm_set_one_reg(reg: *const kvm_one_reg) -> c_int {
    c_int(|| {
        let r = input(reg)?;
        with_current(|v| vcpu_state::set_one_reg(v, r))?;
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Errno;

    #[test]
    fn no_vcpu_is_esrch() {
        assert_eq!(kvm_get_xsave_size(), -1);
        assert_eq!(Errno::last(), Errno(libc::ESRCH));
        assert_eq!(kvm_kvmclock_ctrl(), -1);
        assert_eq!(Errno::last(), Errno(libc::ESRCH));
        assert_eq!(kvm_get_xcrs(std::ptr::null_mut()), -1);
        assert_eq!(Errno::last(), Errno(libc::EFAULT));
    }
}
