//! The robust mutex that tells whether a vcpu's owner thread still exists. A leaf: it
//! knows nothing of the vcpu (src/vcpu/mod.rs holds it under the owner lock).

use std::cell::UnsafeCell;

/// What `OwnerAlive::try_hold` found.
pub enum Hold {
    /// The mutex was free; the caller holds it now.
    Taken,
    /// A live thread (maybe the caller) holds it.
    Busy,
    /// Its holder ended without unlocking it; the caller holds it now.
    OwnerDied,
}

/// A robust pthread mutex (in its own allocation, which never moves): held by the thread
/// that owns the vcpu, so that the kernel tells whether that thread still exists.
#[derive(Debug)]
pub struct OwnerAlive(Box<UnsafeCell<libc::pthread_mutex_t>>);

// SAFETY: a pthread mutex is made to be shared between threads; it is only used through
// the pthread calls, under the vcpu's owner lock.
unsafe impl Send for OwnerAlive {}
// SAFETY: as above.
unsafe impl Sync for OwnerAlive {}

impl OwnerAlive {
    /// A new, unheld robust mutex.
    pub fn new() -> OwnerAlive {
        // SAFETY: zeroed storage is what the initialiser below expects to fill.
        let m = Box::new(UnsafeCell::new(unsafe { std::mem::zeroed() }));
        // SAFETY: a zeroed attribute object initialised by pthread_mutexattr_init, set
        // robust, used to initialise the mutex in its final place, then destroyed. None
        // of these can fail on Linux with these arguments.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            libc::pthread_mutex_init(m.get(), &attr);
            libc::pthread_mutexattr_destroy(&mut attr);
        }
        OwnerAlive(m)
    }

    /// pthread_mutex_trylock, with a dead holder's mutex made consistent again.
    pub fn try_hold(&self) -> Hold {
        // SAFETY: an initialised mutex; trylock never blocks.
        match unsafe { libc::pthread_mutex_trylock(self.0.get()) } {
            0 => Hold::Taken,
            libc::EOWNERDEAD => {
                // SAFETY: the caller holds the mutex (EOWNERDEAD), as consistent needs.
                unsafe { libc::pthread_mutex_consistent(self.0.get()) };
                Hold::OwnerDied
            }
            _ => Hold::Busy,
        }
    }

    /// Unlocks the mutex; on the thread that holds it.
    pub fn let_go(&self) {
        // SAFETY: the caller holds the mutex.
        unsafe { libc::pthread_mutex_unlock(self.0.get()) };
    }
}

impl Drop for OwnerAlive {
    fn drop(&mut self) {
        // SAFETY: nothing holds it any more: a vcpu is dropped only once no live thread
        // owns it, and a dead owner's hold was taken over and released.
        unsafe { libc::pthread_mutex_destroy(self.0.get()) };
    }
}
