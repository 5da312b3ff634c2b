//! Register access served from the KVM_CAP_SYNC_REGS area of `struct kvm_run`.
//!
//! The design, fixed here and relied on by every per-vcpu call:
//!
//! - `want` is the set of register kinds (KVM_SYNC_X86_REGS/SREGS/EVENTS) the kernel is
//!   asked to copy out on every exit (`kvm_valid_regs`). It starts empty, so a vcpu whose
//!   owner never reads registers pays nothing; a kind is added the first time the owner
//!   reads it through an ioctl.
//! - `synced` is the set of kinds whose copy in the area equals the kernel's state right
//!   now. `kvm_run` sets it to `want` after a successful KVM_RUN; it is emptied before
//!   KVM_RUN and by any vcpu ioctl that may change vcpu state.
//! - A get of a synced kind is a copy from the area: no system call.
//! - `kvm_set_regs` writes the area and sets KVM_SYNC_X86_REGS in `kvm_dirty_regs`; the
//!   kernel loads it on the next entry. Only general registers are deferred this way: the
//!   kernel loads them with no check that could fail, so the deferred write fails exactly
//!   when the ioctl would (never). sregs and events can be refused (EINVAL), so their
//!   setters stay ioctls, which report the error at the call.
//! - Every other vcpu ioctl first writes pending registers back with KVM_SET_REGS (so the
//!   kernel sees the same order of writes the caller made), and, if it can change vcpu
//!   state, empties `synced` afterwards. A get that follows a set of the same kind also
//!   goes through the ioctl, so values the kernel normalises (RFLAGS bit 1) read back
//!   exactly as the ioctl would give them.
//!
//! - A vcpu waiting for INIT/SIPI (KVM_MP_STATE_UNINITIALIZED: an application processor
//!   before its start) leaves KVM_RUN (kick, signal, or EAGAIN once INIT/SIPI arrive)
//!   before the kernel loads `kvm_dirty_regs`, and stores its registers over the area on
//!   the way out. So until a KVM_RUN has returned normally, and again after any ioctl that
//!   may change the MP state, `kvm_run` writes pending registers back with KVM_SET_REGS
//!   first (`maybe_waiting`): they reach the vcpu before INIT/SIPI, as the ioctl would.
//!
//! All of this state belongs to the vcpu, not the thread, so it survives detach/attach.
//! Only the owning thread touches it; atomics with relaxed ordering make that safe Rust
//! at the cost of plain loads and stores.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// KVM_SYNC_X86_REGS.
pub(crate) const REGS: u64 = kvm_bindings::KVM_SYNC_X86_REGS as u64;
/// KVM_SYNC_X86_SREGS.
pub(crate) const SREGS: u64 = kvm_bindings::KVM_SYNC_X86_SREGS as u64;
/// KVM_SYNC_X86_EVENTS.
pub(crate) const EVENTS: u64 = kvm_bindings::KVM_SYNC_X86_EVENTS as u64;

/// Environment variable that turns the sync-regs fast path off for vcpus created after it
/// is set (to compare against, and to test the ioctl path on a kernel that has the cap).
pub(crate) const NO_SYNC_ENV: &str = "LIBKVM_NO_SYNC_REGS";

/// Per-vcpu bookkeeping of the sync-regs area (see the module documentation).
#[derive(Debug)]
pub struct SyncState {
    supported: u64,
    want: AtomicU64,
    synced: AtomicU64,
    maybe_waiting: AtomicBool,
}

impl SyncState {
    /// `supported`: what KVM_CHECK_EXTENSION(KVM_CAP_SYNC_REGS) reported, masked to the
    /// kinds libkvm knows.
    pub fn new(supported: u64) -> SyncState {
        SyncState {
            supported: supported & (REGS | SREGS | EVENTS),
            want: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            maybe_waiting: AtomicBool::new(true),
        }
    }

    /// Whether the kernel can sync this kind.
    pub fn supports(&self, kind: u64) -> bool {
        self.supported & kind == kind
    }

    /// The kinds to request in `kvm_valid_regs` for the next KVM_RUN.
    pub fn want(&self) -> u64 {
        self.want.load(Relaxed)
    }

    /// The area holds the kernel's current value of `kind`.
    pub fn is_synced(&self, kind: u64) -> bool {
        self.synced.load(Relaxed) & kind == kind
    }

    /// The owner read `kind` through an ioctl and stored it in the area: the area is
    /// current for it, and from now on the kernel copies it out on every exit.
    pub fn learned(&self, kind: u64) {
        self.synced.fetch_or(kind, Relaxed);
        self.want.fetch_or(kind, Relaxed);
    }

    /// The area no longer matches the kernel for `kind` (a set is pending, or the kernel
    /// state may have changed).
    pub fn forget(&self, kind: u64) {
        self.synced.fetch_and(!kind, Relaxed);
    }

    /// After KVM_RUN: exactly `kinds` were copied out by the kernel.
    pub fn set_synced(&self, kinds: u64) {
        self.synced.store(kinds, Relaxed);
    }

    /// Whether the vcpu may be waiting for INIT/SIPI, so that KVM_RUN would not load
    /// pending registers.
    pub fn maybe_waiting(&self) -> bool {
        self.maybe_waiting.load(Relaxed)
    }

    /// `waiting`: after an ioctl that may change the MP state (true), or a KVM_RUN that
    /// returned normally (false).
    pub fn set_maybe_waiting(&self, waiting: bool) {
        self.maybe_waiting.store(waiting, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_wanted_until_read() {
        let s = SyncState::new(7);
        assert_eq!(s.want(), 0);
        assert!(!s.is_synced(REGS));
        s.learned(REGS);
        assert_eq!(s.want(), REGS);
        assert!(s.is_synced(REGS));
        s.forget(REGS);
        assert!(!s.is_synced(REGS));
        assert_eq!(s.want(), REGS);
        s.set_synced(REGS | SREGS);
        assert!(s.is_synced(SREGS));
    }

    #[test]
    fn unknown_kinds_are_not_supported() {
        let s = SyncState::new(0xff);
        assert!(s.supports(REGS | SREGS | EVENTS));
        assert!(!s.supports(8));
        assert!(!SyncState::new(0).supports(REGS));
    }
}
