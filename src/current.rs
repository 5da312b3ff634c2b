//! The calling thread's vcpu: a thread-local that the run path and the per-vcpu calls
//! reach without a lock (ownership is in src/vcpu/mod.rs).

use crate::error::{Errno, Result};
use crate::vcpu::kick::{self, ThreadSignals};
use crate::vcpu::Vcpu;
use std::cell::UnsafeCell;
use std::sync::Arc;

/// The calling thread's claim on its vcpu; dropping it (detach, or thread exit) gives the
/// vcpu up and restores the thread's kick-signal state.
struct Owned(Arc<Vcpu>, ThreadSignals);

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.release();
        kick::restore(&self.1);
    }
}

/// The calling thread's vcpu. An UnsafeCell, not a RefCell: a borrow held across a call
/// stays taken forever when a signal handler siglongjmp()s out of `kvm_run`, and every
/// later detach would then fail. Only this thread touches it, and only `set_current`,
/// `clear_current`, `forget_current` and the thread's end change it, never while a
/// reference into it is alive: `with_current` copies the vcpu's address out first, and
/// no libkvm code calls them inside `with_current` (a signal handler that calls libkvm
/// while libkvm runs on its thread is not supported: libkvm(7)).
struct Current(UnsafeCell<Option<Owned>>);

impl Current {
    /// The vcpu's address, valid while the slot holds its claim.
    fn vcpu(&self) -> Option<*const Vcpu> {
        // SAFETY: see `Current`; the reference ends within this statement.
        unsafe { (*self.0.get()).as_ref().map(|o| Arc::as_ptr(&o.0)) }
    }

    /// Puts `new` in the slot and returns what was there.
    fn replace(&self, new: Option<Owned>) -> Option<Owned> {
        // SAFETY: see `Current`: no reference into the slot is alive now.
        unsafe { std::mem::replace(&mut *self.0.get(), new) }
    }
}

thread_local! {
    static CURRENT: Current = const { Current(UnsafeCell::new(None)) };
}

/// Runs `f` on the calling thread's vcpu; ESRCH if the thread has none.
#[inline]
pub fn with_current<R>(f: impl FnOnce(&Arc<Vcpu>) -> Result<R>) -> Result<R> {
    match CURRENT.try_with(Current::vcpu) {
        Ok(Some(v)) => {
            // A copy of the slot's Arc that is never dropped (so the counts are not
            // touched): the run path stays free of atomic operations, and no reference
            // into the slot lives across `f`.
            // SAFETY: `v` is Arc::as_ptr of the slot's claim, whose strong count keeps the
            // vcpu alive across `f`: nothing changes the slot meanwhile (see `Current`).
            let arc = std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(v) });
            f(&arc)
        }
        _ => Err(Errno(libc::ESRCH)),
    }
}

/// Whether the calling thread owns a vcpu.
pub fn thread_has_vcpu() -> bool {
    CURRENT.try_with(|c| c.vcpu().is_some()).unwrap_or(false)
}

/// Makes `v` (already claimed by this thread) the thread's current vcpu, with the kick
/// signal blocked on the thread; on failure the claim is given up.
pub fn set_current(v: Arc<Vcpu>) -> Result<()> {
    let signals = match v.on_claim() {
        Ok(s) => s,
        Err(e) => {
            v.release();
            return Err(e);
        }
    };
    let owned = Owned(v, signals);
    // If the thread is being torn down, `owned` is dropped (released) here. The slot is
    // empty (the callers checked `thread_has_vcpu`).
    CURRENT
        .try_with(|c| drop(c.replace(Some(owned))))
        .map_err(|_| Errno(libc::ESRCH))
}

/// In a child process right after fork(): the forking thread's vcpu is the parent's, so
/// the thread has none. The thread's kick-signal mask is restored as for a detach, but
/// the claim itself is leaked (the vcpu lives on, unreachable, in the registry's record
/// of what was inherited), so nothing of the parent's is touched.
pub fn forget_current() {
    let _ = CURRENT.try_with(|c| {
        if let Some(o) = c.replace(None) {
            kick::restore(&o.1);
            std::mem::forget(o);
        }
    });
}

/// Gives up the calling thread's vcpu; ESRCH if it has none.
pub fn clear_current() -> Result<()> {
    let old = CURRENT.try_with(|c| c.replace(None)).ok().flatten();
    match old {
        Some(o) => {
            drop(o);
            Ok(())
        }
        None => Err(Errno(libc::ESRCH)),
    }
}
