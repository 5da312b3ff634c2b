//! Kicking a vcpu out of the guest from any thread, and the signals in force while a
//! vcpu runs.

use crate::error::c_int;
use crate::kick;
use crate::vcpu::with_current;
use libc::{c_int, sigset_t};

/// Makes the current or next kvm_run() of vcpu `vcpu_fd` return -1 with errno EINTR, from
/// any thread: at once if its owner is in the guest (through libkvm's kick signal), or on
/// entry to the next kvm_run() otherwise (also after the vcpu moves to another thread, or
/// its owner thread ended without detaching it).
/// Kicks are never lost; several kicks before the owner's kvm_run() returns may be
/// answered by one EINTR. Errors: EBADF (`vcpu_fd` is not a libkvm vcpu, e.g. a VM fd),
/// EAGAIN (the signal queue is full: the kick takes effect on the next entry only).
#[no_mangle]
pub extern "C" fn kvm_kick_vcpu(vcpu_fd: c_int) -> c_int {
    c_int(|| kick::kick(vcpu_fd).map(|()| 0))
}

/// Chooses the signal libkvm reserves for kvm_kick_vcpu(): SIGUSR1, SIGUSR2 or one of
/// SIGRTMIN..SIGRTMAX. The default is SIGRTMAX - 3 (61 with glibc). Call it before the
/// first kvm_create_vcpu() of the process; libkvm then installs a handler for the signal
/// and blocks it in every thread that owns a vcpu, except inside kvm_run(). Errors:
/// EINVAL (any other signal), EBUSY (a vcpu has already been created in this process).
#[no_mangle]
pub extern "C" fn kvm_set_kick_signal(signo: c_int) -> c_int {
    c_int(|| kick::set_kick_signal(signo).map(|()| 0))
}

/// Sets the signal mask in force while the calling thread's vcpu runs in kvm_run()
/// (KVM_SET_SIGNAL_MASK): signals in `*mask` stay blocked in the guest, the others make
/// kvm_run() return -1/EINTR. NULL (the default) means the mask of the thread that owns
/// the vcpu, as it is at this call and whenever a thread creates or attaches the vcpu; a
/// mask given here stays with the vcpu across detach and attach. The kick signal is never
/// blocked in the guest, whatever `*mask` says. Errors: ESRCH (no vcpu on this thread).
#[no_mangle]
pub extern "C" fn kvm_set_signal_mask(mask: *const sigset_t) -> c_int {
    c_int(|| {
        // SAFETY: a non-NULL pointer from C points at a valid sigset_t (man page).
        let mask = unsafe { mask.as_ref() };
        with_current(|v| kick::set_signal_mask(v, mask))?;
        Ok(0)
    })
}
