//! Register access served from the KVM_CAP_SYNC_REGS area of `struct kvm_run`.
//!
//! The design, fixed here and relied on by every per-vcpu call:
//!
//! - `want` is the set of register kinds (KVM_SYNC_X86_REGS/SREGS/EVENTS) the kernel is
//!   asked to copy out on every exit (`kvm_valid_regs`). It starts empty, so a vcpu whose
//!   owner never reads registers pays nothing; a kind is added the first time the owner
//!   reads it through an ioctl. A kind the owner has not read for a whole epoch
//!   ([`EPOCH`] runs) is dropped again: copying the special registers out costs the
//!   kernel about 2% of an exit round trip here, all three kinds 3%, too much to pay
//!   forever for one read at setup (BENCHMARKS.md).
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
//! Where the kernel's register calls touch more than their own kind, the cache follows
//! (arch/x86/kvm/x86.c: `__set_regs`, `store_regs`, `kvm_vcpu_ioctl_x86_get_vcpu_events`,
//! `kvm_arch_vcpu_ioctl_run`):
//!
//! - KVM_SET_REGS drops a pending (not yet injected) exception. A deferred `set_regs`
//!   therefore stops trusting the area's events when they show an exception.
//! - Reading the events delivers the payload of a pending exception (CR2 of a #PF) unless
//!   KVM_CAP_EXCEPTION_PAYLOAD is on, and the kernel copies the special registers out
//!   before the events. When the events show an exception, the special registers are no
//!   longer trusted: after an exit that copied events, and after a KVM_GET_VCPU_EVENTS.
//!
//! All of this state belongs to the vcpu, not the thread, so it survives detach/attach.
//! Only the owning thread touches it (a new owner is established through the owner lock,
//! which orders it after the old one), so plain relaxed loads and stores suffice: atomics
//! make that safe Rust at the cost of ordinary moves, with no read-modify-write.

use kvm_bindings::{kvm_run, kvm_vcpu_events};
use std::ptr::addr_of;
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

/// Runs after which a kind the owner did not read in the meantime is no longer copied
/// out by the kernel.
pub(crate) const EPOCH: u64 = 64;

/// Per-vcpu bookkeeping of the sync-regs area (see the module documentation).
#[derive(Debug)]
pub struct SyncState {
    supported: u64,
    want: AtomicU64,
    synced: AtomicU64,
    /// Kinds the owner read (from the area or by ioctl) in the current epoch.
    used: AtomicU64,
    /// Runs in the current epoch.
    runs: AtomicU64,
    /// The vcpu may be waiting for INIT/SIPI (module documentation).
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
            used: AtomicU64::new(0),
            runs: AtomicU64::new(0),
            maybe_waiting: AtomicBool::new(true),
        }
    }

    /// Whether the kernel can sync this kind.
    pub fn supports(&self, kind: u64) -> bool {
        self.supported & kind == kind
    }

    /// The kinds the kernel copies out on the next exit.
    #[cfg(test)]
    pub fn want(&self) -> u64 {
        self.want.load(Relaxed)
    }

    /// The area holds the kernel's current value of `kind`.
    pub fn is_synced(&self, kind: u64) -> bool {
        self.synced.load(Relaxed) & kind == kind
    }

    /// A get of `kind` about to be served from the area: whether it can be (the area is
    /// current), noting the read so that the kind stays wanted.
    #[inline]
    pub fn read_synced(&self, kind: u64) -> bool {
        if !self.is_synced(kind) {
            return false;
        }
        let used = self.used.load(Relaxed);
        if used & kind != kind {
            self.used.store(used | kind, Relaxed);
        }
        true
    }

    /// The owner read `kind` through an ioctl and stored it in the area: the area is
    /// current for it, and from now on the kernel copies it out on every exit.
    pub fn learned(&self, kind: u64) {
        self.synced.store(self.synced.load(Relaxed) | kind, Relaxed);
        self.want.store(self.want.load(Relaxed) | kind, Relaxed);
        self.used.store(self.used.load(Relaxed) | kind, Relaxed);
    }

    /// The area no longer matches the kernel for `kind` (a set is pending, or the kernel
    /// state may have changed).
    pub fn forget(&self, kind: u64) {
        self.synced
            .store(self.synced.load(Relaxed) & !kind, Relaxed);
    }

    /// The area matches the kernel for exactly `kinds` (0: nothing is trusted).
    pub fn set_synced(&self, kinds: u64) {
        self.synced.store(kinds, Relaxed);
    }

    /// Before KVM_RUN: ends the epoch when it is over (dropping the kinds not read in
    /// it), stops trusting the area, and returns the kinds to request in
    /// `kvm_valid_regs`.
    #[inline]
    pub fn begin_run(&self) -> u64 {
        let mut want = self.want.load(Relaxed);
        let runs = self.runs.load(Relaxed) + 1;
        if runs < EPOCH {
            self.runs.store(runs, Relaxed);
        } else {
            want &= self.used.load(Relaxed);
            self.want.store(want, Relaxed);
            self.used.store(0, Relaxed);
            self.runs.store(0, Relaxed);
        }
        self.synced.store(0, Relaxed);
        want
    }

    /// After a successful KVM_RUN that requested `want`: the kernel copied those kinds
    /// out, but the special registers only reliably when no exception shows in the
    /// events it copied after them (module documentation).
    ///
    /// # Safety
    /// `run` must be the live run area of this vcpu, owned by the calling thread.
    #[inline]
    pub unsafe fn end_run(&self, run: *const kvm_run, want: u64) {
        let mut synced = want;
        // SAFETY: the caller's promise; the kernel filled the events because they are in
        // `want`.
        if want & EVENTS != 0 && unsafe { shows_exception(addr_of!((*run).s.regs.events)) } {
            synced &= !SREGS;
        }
        self.synced.store(synced, Relaxed);
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

/// Whether vcpu events report an exception (pending or injected).
///
/// # Safety
/// `events` must point to a readable `kvm_vcpu_events`.
pub(crate) unsafe fn shows_exception(events: *const kvm_vcpu_events) -> bool {
    // SAFETY: the caller's promise.
    let e = unsafe { addr_of!((*events).exception).read() };
    e.injected != 0 || e.pending != 0
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
        assert_eq!(s.begin_run(), REGS);
        assert!(!s.is_synced(REGS));
    }

    #[test]
    fn unread_kinds_are_dropped_after_an_epoch() {
        let s = SyncState::new(7);
        s.learned(REGS | SREGS);
        // Read in the first epoch (learned): kept through it.
        for _ in 0..EPOCH - 1 {
            assert_eq!(s.begin_run(), REGS | SREGS);
            s.set_synced(REGS | SREGS);
            assert!(s.read_synced(REGS));
        }
        // Only REGS is read in the second epoch: SREGS goes at its end.
        for _ in 0..EPOCH {
            assert_eq!(s.begin_run(), REGS | SREGS);
            s.set_synced(REGS | SREGS);
            assert!(s.read_synced(REGS));
        }
        assert_eq!(s.begin_run(), REGS);
        // Learning brings it back at once.
        s.learned(SREGS);
        assert_eq!(s.begin_run(), REGS | SREGS);
    }

    #[test]
    fn an_exception_in_the_events_distrusts_the_sregs() {
        let s = SyncState::new(7);
        // SAFETY: kvm_run is plain old data; all zeroes is a valid value.
        let mut run: kvm_run = unsafe { std::mem::zeroed() };
        // SAFETY: `run` is a live, exclusively owned kvm_run.
        unsafe {
            s.end_run(&run, REGS | SREGS | EVENTS);
            assert!(s.is_synced(REGS | SREGS | EVENTS));
            run.s.regs.events.exception.injected = 1;
            s.end_run(&run, REGS | SREGS | EVENTS);
            assert!(s.is_synced(REGS | EVENTS));
            assert!(!s.is_synced(SREGS));
            // Without events in the copy, the sregs were copied last and are current.
            s.end_run(&run, REGS | SREGS);
            assert!(s.is_synced(SREGS));
        }
    }

    #[test]
    fn unknown_kinds_are_not_supported() {
        let s = SyncState::new(0xff);
        assert!(s.supports(REGS | SREGS | EVENTS));
        assert!(!s.supports(8));
        assert!(!SyncState::new(0).supports(REGS));
    }
}
