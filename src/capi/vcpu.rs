//! Calls on the calling thread's vcpu. None takes a vcpu argument; all fail with ESRCH
//! on a thread that has none. These are the hot path: no lock, no allocation.

use super::{input, output};
use crate::current::with_current;
use crate::error::{c_int, c_ptr, Errno};
use kvm_bindings::{kvm_lapic_state, kvm_mp_state, kvm_regs, kvm_run, kvm_sregs, kvm_vcpu_events};
use libc::c_int;

/// Runs the calling thread's vcpu until it exits to userspace; returns the exit reason
/// (KVM_EXIT_IO, KVM_EXIT_MMIO, KVM_EXIT_HLT, ...), whose data is in kvm_run_area().
/// Errors: ESRCH (no vcpu on this thread), EINTR (a signal arrived), and those of the
/// KVM_RUN ioctl (EFAULT, EINVAL, ENOEXEC, ...).
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

/// Reads the general-purpose registers, RIP and RFLAGS of the calling thread's vcpu.
/// Right after an exit this is a copy from the run area, with no system call, where the
/// kernel has KVM_CAP_SYNC_REGS. Errors: ESRCH (no vcpu), EFAULT (`regs` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_regs(regs: *mut kvm_regs) -> c_int {
    c_int(|| {
        let out = output(regs)?;
        *out = with_current(|v| v.get_regs())?;
        Ok(0)
    })
}

/// Sets the general-purpose registers, RIP and RFLAGS of the calling thread's vcpu. The
/// kernel loads them on the next kvm_run() (through the run area where it can), and
/// before any other call that needs them. Errors: ESRCH (no vcpu), EFAULT (`regs` NULL).
#[no_mangle]
pub extern "C" fn kvm_set_regs(regs: *const kvm_regs) -> c_int {
    c_int(|| {
        let r = input(regs)?;
        with_current(|v| v.set_regs(r))?;
        Ok(0)
    })
}

/// Reads the special registers (segments, descriptor tables, control registers, EFER,
/// APIC base) of the calling thread's vcpu. Errors: ESRCH (no vcpu), EFAULT (`sregs`
/// NULL).
#[no_mangle]
pub extern "C" fn kvm_get_sregs(sregs: *mut kvm_sregs) -> c_int {
    c_int(|| {
        let out = output(sregs)?;
        *out = with_current(|v| v.get_sregs())?;
        Ok(0)
    })
}

/// Sets the special registers of the calling thread's vcpu. Errors: ESRCH (no vcpu),
/// EFAULT (`sregs` NULL), EINVAL (the kernel refused the values, e.g. long mode without
/// PAE).
#[no_mangle]
pub extern "C" fn kvm_set_sregs(sregs: *const kvm_sregs) -> c_int {
    c_int(|| {
        let s = input(sregs)?;
        with_current(|v| v.set_sregs(s))?;
        Ok(0)
    })
}

/// Reads the pending exception, interrupt and NMI state of the calling thread's vcpu
/// (served from the run area right after an exit where the kernel syncs it). Errors:
/// ESRCH (no vcpu), EFAULT (`events` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_vcpu_events(events: *mut kvm_vcpu_events) -> c_int {
    c_int(|| {
        let out = output(events)?;
        *out = with_current(|v| v.get_events())?;
        Ok(0)
    })
}

/// Sets the pending exception, interrupt and NMI state of the calling thread's vcpu; the
/// `flags` field says which parts are valid. Errors: ESRCH (no vcpu), EFAULT (`events`
/// NULL), EINVAL (the kernel refused the values or flags).
#[no_mangle]
pub extern "C" fn kvm_set_vcpu_events(events: *const kvm_vcpu_events) -> c_int {
    c_int(|| {
        let e = input(events)?;
        with_current(|v| v.set_events(e))?;
        Ok(0)
    })
}

/// Reads the local APIC registers (the 1 KiB register page, APIC ID at offset 0x20) of the
/// calling thread's vcpu; in-kernel irqchip only. Errors: ESRCH (no vcpu), EFAULT (`s`
/// NULL), EINVAL (the VM has no in-kernel irqchip).
#[no_mangle]
pub extern "C" fn kvm_get_lapic(s: *mut kvm_lapic_state) -> c_int {
    c_int(|| {
        let out = output(s)?;
        *out = with_current(|v| v.reading(|fd| fd.get_lapic().map_err(Errno::from)))?;
        Ok(0)
    })
}

/// Sets the local APIC registers of the calling thread's vcpu; in-kernel irqchip only.
/// Errors: ESRCH (no vcpu), EFAULT (`s` NULL), EINVAL (no in-kernel irqchip, or the kernel
/// refused the state).
#[no_mangle]
pub extern "C" fn kvm_set_lapic(s: *const kvm_lapic_state) -> c_int {
    c_int(|| {
        let s = input(s)?;
        with_current(|v| v.writing(|fd| fd.set_lapic(s).map_err(Errno::from)))?;
        Ok(0)
    })
}

/// Reads the multiprocessing state of the calling thread's vcpu: KVM_MP_STATE_RUNNABLE,
/// _UNINITIALIZED (an application processor before INIT), _INIT_RECEIVED (waiting for a
/// SIPI), _HALTED (in HLT, in-kernel irqchip), ... Errors: ESRCH (no vcpu), EFAULT (`s`
/// NULL).
#[no_mangle]
pub extern "C" fn kvm_get_mp_state(s: *mut kvm_mp_state) -> c_int {
    c_int(|| {
        let out = output(s)?;
        // `writing`: the kernel accepts a pending INIT or SIPI here, which resets the
        // registers.
        *out = with_current(|v| v.writing(|fd| fd.get_mp_state().map_err(Errno::from)))?;
        Ok(0)
    })
}

/// Sets the multiprocessing state of the calling thread's vcpu. Errors: ESRCH (no vcpu),
/// EFAULT (`s` NULL), EINVAL (an unknown state, or any state but KVM_MP_STATE_RUNNABLE
/// without an in-kernel irqchip).
#[no_mangle]
pub extern "C" fn kvm_set_mp_state(s: *const kvm_mp_state) -> c_int {
    c_int(|| {
        let s = *input(s)?;
        with_current(|v| v.writing(|fd| fd.set_mp_state(s).map_err(Errno::from)))?;
        Ok(0)
    })
}

/// Queues a non-maskable interrupt on the calling thread's vcpu (KVM_NMI), delivered by
/// the next kvm_run() as soon as the guest is not already handling one. Works with and
/// without an in-kernel irqchip. Errors: ESRCH (no vcpu).
#[no_mangle]
pub extern "C" fn kvm_nmi() -> c_int {
    c_int(|| {
        with_current(|v| v.writing(|fd| fd.nmi().map_err(Errno::from)))?;
        Ok(0)
    })
}
