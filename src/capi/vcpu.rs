//! Running the calling thread's vcpu. None takes a vcpu argument; all fail with ESRCH
//! on a thread that has none. The hot path: no lock, no allocation.

use crate::capi::vcpu_set;
use crate::current::with_current;
use crate::error::c_int;
use crate::error::c_ptr;
use kvm_bindings::kvm_enable_cap;
use kvm_bindings::kvm_run;
use libc::c_int;

/// Runs the calling thread's vcpu until it exits to userspace; returns the exit reason
/// (KVM_EXIT_IO, KVM_EXIT_MMIO, KVM_EXIT_HLT, ...), whose data is in kvm_run_area().
/// Errors: ESRCH (no vcpu on this thread), EINTR (a signal arrived), and those of the
/// KVM_RUN ioctl (EFAULT: guest memory the kernel cannot reach; EINVAL: a vcpu state the
/// kernel refuses to run).
#[no_mangle]
pub extern "C" fn kvm_run() -> c_int {
    c_int(|| with_current(|v| v.run()))
}

/// Returns the calling thread's vcpu run area (struct kvm_run, mmap()ed from the kernel):
/// the exit reason and its data after kvm_run(), and fields to fill before the next run
/// (I/O and MMIO data, request_interrupt_window). Valid until the VM is destroyed; also
/// after a detach. Errors (NULL returned): ESRCH (no vcpu on this thread).
#[no_mangle]
pub extern "C" fn kvm_run_area() -> *mut kvm_run {
    c_ptr(|| with_current(|v| Ok(v.run_area())))
}

/// Enables capability `cap->cap` on the calling thread's vcpu (for example
/// KVM_CAP_HYPERV_SYNIC, KVM_CAP_HYPERV_ENFORCE_CPUID, KVM_CAP_ENFORCE_PV_FEATURE_CPUID).
/// Errors: ESRCH (no vcpu), EFAULT (`cap` NULL), EINVAL (a capability that cannot be
/// enabled per vcpu, nonzero flags, or arguments the kernel refuses).
#[no_mangle]
pub extern "C" fn kvm_enable_vcpu_cap(cap: *const kvm_enable_cap) -> c_int {
    vcpu_set(cap, |v, a| v.enable_cap(a))
}
