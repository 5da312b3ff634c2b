//! fork(): what a child process inherits from libkvm.
//!
//! KVM serves a VM only to the process that created it (any other process gets EIO from
//! its ioctls), and a child that shared the parent's run areas or guest memory could
//! change the parent's vcpus behind its back. So libkvm gives a child none of it:
//!
//! - the run areas and the guest memory libkvm allocates are `MADV_DONTFORK`: they are
//!   not mapped in the child at all (QEMU does the same for guest RAM);
//! - in the child, right after fork (a `pthread_atfork` handler), libkvm forgets every VM
//!   and vcpu it had, closes the child's copies of their fds, and clears the forking
//!   thread's current vcpu. Calls naming an inherited VM then fail with EBADF and
//!   per-vcpu calls with ESRCH, as for any fd that is not a libkvm VM; the child may
//!   create VMs of its own. The parent's VMs are untouched.
//!
//! fork() waits (prepare handler) until no other thread is creating or destroying a VM
//! or vcpu, and holds the registry lock across the fork: the child never inherits the
//! registry half-changed, nor an fd that was made but not yet registered (or already
//! unregistered but not yet closed).

use crate::registry::{self, RegistryGuard};
use crate::vcpu;
use std::cell::RefCell;
use std::sync::{Once, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

static INSTALL: Once = Once::new();

/// Held shared by every call that creates or closes libkvm fds, exclusively by fork().
/// std's lock, not parking_lot's, for the reason given at the registry's lock: the child
/// must be able to release it.
static FDS_CHANGING: RwLock<()> = RwLock::new(());

/// Held while a call creates or closes libkvm fds, so that fork() waits until the fds
/// and the registry agree.
pub fn changing_fds() -> RwLockReadGuard<'static, ()> {
    FDS_CHANGING.read().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// The locks `prepare` took, on the forking thread, until the parent and child
    /// handlers release them (in the child, that thread's copy).
    static HELD: RefCell<Option<(RwLockWriteGuard<'static, ()>, RegistryGuard)>> =
        const { RefCell::new(None) };
}

/// Registers the fork handlers; called before the first VM exists.
pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: the handlers are plain functions of this library that never unwind.
        // If registration fails (ENOMEM) fork simply keeps its default behaviour.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

extern "C" fn prepare() {
    let fds = FDS_CHANGING.write().unwrap_or_else(PoisonError::into_inner);
    let reg = registry::lock_for_fork();
    let _ = HELD.try_with(|h| *h.borrow_mut() = Some((fds, reg)));
}

extern "C" fn parent() {
    let _ = HELD.try_with(|h| h.borrow_mut().take());
}

extern "C" fn child() {
    let _ = HELD.try_with(|h| {
        if let Some((_fds, mut reg)) = h.borrow_mut().take() {
            registry::forget_inherited(&mut reg);
        }
    });
    vcpu::forget_current();
}
