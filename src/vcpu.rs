//! A vcpu and the thread that owns it.
//!
//! Each vcpu belongs to at most one thread at a time (seed 001: "the vcpu is an implied
//! parameter"). The owning thread finds it through a thread-local, so the run path and
//! the register calls take no lock. Ownership moves only through `kvm_detach_vcpu` /
//! `kvm_attach_vcpu`; a thread that exits while owning a vcpu gives it up in its
//! thread-local destructor.
//!
//! Threads that end without that cleanup (a raw SYS_exit, also from a signal handler)
//! are noticed through a robust mutex that the owning thread holds while it owns the
//! vcpu: the kernel marks it when the thread ends (its robust-futex list), whatever the
//! way, and no thread id can be mistaken for a later thread that got the same number.
//! Such a vcpu counts as detached (`kvm_attach_vcpu`, `kvm_destroy_vm` and
//! `kvm_kick_vcpu` see to it). A thread that left `kvm_run` through siglongjmp() from a
//! signal handler still owns its vcpu and can use it and detach: the thread-local holds
//! no borrow across a call that the jump could leave behind.

use crate::cpu_state::IrqState;
use crate::error::{Errno, Result};
use crate::kick::{self, KickState, ThreadSignals};
use crate::regs::{self, SyncState};
use crate::vm::ApicMode;
use kvm_bindings::{kvm_regs, kvm_run, kvm_sregs, kvm_vcpu_events};
use kvm_ioctls::VcpuFd;
use parking_lot::Mutex;
use std::cell::UnsafeCell;
use std::os::unix::io::{AsRawFd, RawFd};
use std::ptr::{addr_of, addr_of_mut, NonNull};
use std::sync::Arc;

/// The mmap()ed `struct kvm_run` of a vcpu. Only raw pointers into it are ever formed:
/// the kernel writes it during KVM_RUN and other threads write `immediate_exit`, so a
/// Rust reference to it would be a lie.
#[derive(Debug)]
struct RunArea(NonNull<kvm_run>);

// SAFETY: the area is shared memory that lives as long as the vcpu's `VcpuFd` (which
// unmaps it on drop). Its fields are accessed through raw pointers only by the owning
// thread, except `immediate_exit`, which other threads write atomically.
unsafe impl Send for RunArea {}
// SAFETY: as above.
unsafe impl Sync for RunArea {}

/// One vcpu: its fd and run area (owned through kvm-ioctls' `VcpuFd`), its owner, and the
/// sync-regs bookkeeping.
#[derive(Debug)]
pub struct Vcpu {
    fd: VcpuFd,
    run: RunArea,
    vm_fd: RawFd,
    /// Thread id of the owning thread, 0 when detached. Locked only by ownership changes
    /// and by other threads (kick), never by the run path.
    owner: Mutex<libc::pid_t>,
    /// Held by the owning thread while it owns the vcpu (changed under `owner`), so that
    /// its end without cleanup is seen.
    alive: OwnerAlive,
    sync: SyncState,
    /// Interrupts waiting for the guest to accept them (`kvm_interrupt`).
    pub(crate) irq: IrqState,
    kick: KickState,
    /// How the VM's local APICs work (`kvm_interrupt`).
    pub(crate) apic: Arc<ApicMode>,
}

impl Vcpu {
    /// Wraps a vcpu kvm-ioctls created; `sync_caps` is what KVM_CAP_SYNC_REGS reported,
    /// `apic` the VM's local APIC mode.
    pub fn new(mut fd: VcpuFd, vm_fd: RawFd, sync_caps: u64, apic: Arc<ApicMode>) -> Vcpu {
        // The one place a reference to kvm_run exists: turned into a raw pointer at once,
        // and get_kvm_run is never called again.
        let run = RunArea(NonNull::from(fd.get_kvm_run()));
        let sync_caps = if std::env::var_os(regs::NO_SYNC_ENV).is_some() {
            0
        } else {
            sync_caps
        };
        Vcpu {
            fd,
            run,
            vm_fd,
            owner: Mutex::new(0),
            alive: OwnerAlive::new(),
            sync: SyncState::new(sync_caps),
            irq: IrqState::default(),
            kick: KickState::default(),
            apic,
        }
    }

    /// The vcpu fd.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The fd of the VM this vcpu belongs to.
    pub fn vm_fd(&self) -> RawFd {
        self.vm_fd
    }

    /// Pointer to the run area, for `kvm_run_area`.
    pub fn run_area(&self) -> *mut kvm_run {
        self.run.0.as_ptr()
    }

    /// Whether a live thread owns this vcpu now (one that ended without giving it up
    /// does not).
    pub fn is_owned(self: &Arc<Self>) -> bool {
        let mut owner = self.owner.lock();
        self.forget_dead_owner(&mut owner);
        *owner != 0
    }

    /// Makes the calling thread the owner; EBUSY if another live thread owns it.
    pub fn claim(self: &Arc<Self>) -> Result<()> {
        let mut owner = self.owner.lock();
        match self.alive.try_hold() {
            Hold::Taken => {}
            Hold::OwnerDied => self.orphaned(&mut owner),
            Hold::Busy => return Err(Errno(libc::EBUSY)),
        }
        // SAFETY: gettid has no preconditions.
        *owner = unsafe { libc::gettid() };
        Ok(())
    }

    /// Gives the vcpu up; on the owning thread (the kick drains its signal there, and the
    /// robust mutex is unlocked by its holder).
    pub fn release(&self) {
        let mut owner = self.owner.lock();
        *owner = 0;
        self.alive.let_go();
        kick::on_release(self);
    }

    /// Under the owner lock: if the owner ended without giving the vcpu up, the vcpu is
    /// detached now.
    fn forget_dead_owner(self: &Arc<Self>, owner: &mut libc::pid_t) {
        if *owner == 0 {
            return;
        }
        match self.alive.try_hold() {
            Hold::Busy => {}
            Hold::OwnerDied => {
                self.orphaned(owner);
                self.alive.let_go();
            }
            Hold::Taken => {
                // Not reached: the mutex is held exactly while `owner` is set.
                *owner = 0;
                self.alive.let_go();
            }
        }
    }

    /// Under the owner lock, holding `alive` after its holder died: what that thread
    /// would have undone on its way out. Its kick signal died with it; its thread-local
    /// claim (an `Owned`, one strong count) will never be dropped, so it is given up here.
    fn orphaned(self: &Arc<Self>, owner: &mut libc::pid_t) {
        *owner = 0;
        kick::on_orphaned(self);
        // SAFETY: the dead thread's `Owned` holds one strong count of this Arc that no
        // code will ever drop (its thread-local destructors can no longer run, and glibc
        // reinitialises, never destroys, the thread-locals of a reused stack). This drops
        // it on its behalf, once: the kernel reports the death (EOWNERDEAD) to one locker
        // only, and `self` is another strong count, so the vcpu stays alive.
        unsafe { Arc::decrement_strong_count(Arc::as_ptr(self)) };
    }

    /// Runs `f` with the owner's thread id (0: none, or a thread that ended without
    /// giving the vcpu up) under the owner lock.
    pub fn with_owner<R>(self: &Arc<Self>, f: impl FnOnce(libc::pid_t) -> R) -> R {
        let mut owner = self.owner.lock();
        self.forget_dead_owner(&mut owner);
        f(*owner)
    }

    /// The kick bookkeeping (src/kick.rs).
    pub fn kick(&self) -> &KickState {
        &self.kick
    }

    /// KVM_RUN until an exit for the caller: returns the exit reason. Exits that libkvm
    /// asked for itself (interrupt windows of `kvm_interrupt`) are handled here.
    pub fn run(&self) -> Result<i32> {
        loop {
            self.irq_before_entry();
            let r = self.enter();
            if !self.irq_after_exit(&r) {
                return r;
            }
        }
    }

    /// One KVM_RUN: returns the exit reason. The hot path: no lock, no allocation, and no
    /// system call but the ioctl itself (and, after EINTR, the kick's drain: src/kick.rs).
    #[inline]
    fn enter(&self) -> Result<i32> {
        self.enter_with(kick::run)
    }

    /// Completes an I/O, MMIO or MSR exit still pending in the kernel without running
    /// guest code (KVM_RUN with immediate_exit, see `kick::run_immediate`), as the KVM
    /// API requires before vcpu state is saved. `Some(reason)`: completing it produced a
    /// new exit, which the caller must handle first.
    pub fn complete_pending(&self) -> Result<Option<i32>> {
        match self.enter_with(kick::run_immediate) {
            Ok(reason) => Ok(Some(reason)),
            Err(Errno(libc::EINTR)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `enter` with the KVM_RUN step given (`kick::run` or `kick::run_immediate`).
    #[inline(always)]
    fn enter_with(&self, kvm_run: fn(&Vcpu) -> Result<libc::c_int>) -> Result<i32> {
        let run = self.run.0.as_ptr();
        let want = self.sync.begin_run();
        // SAFETY: `run` is the live mapping of this vcpu; only the owning thread (us)
        // writes kvm_valid_regs.
        unsafe { addr_of_mut!((*run).kvm_valid_regs).write(want) };
        if self.sync.maybe_waiting() {
            // See regs.rs: a vcpu waiting for INIT/SIPI would not load pending registers.
            self.flush()?;
        }
        match kvm_run(self) {
            Ok(_) => {
                self.sync.set_maybe_waiting(false);
                // SAFETY: as above; the kernel filled the area before returning.
                unsafe { self.sync.end_run(run, want) };
                // SAFETY: as above; the kernel wrote exit_reason before returning.
                Ok(unsafe { addr_of!((*run).exit_reason).read() } as i32)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes registers that `set_regs` left pending in the sync area back with
    /// KVM_SET_REGS, so that an ioctl that follows sees them in the caller's order.
    fn flush(&self) -> Result<()> {
        let run = self.run.0.as_ptr();
        // SAFETY: owner-only field of the live run area.
        let dirty = unsafe { addr_of!((*run).kvm_dirty_regs).read() };
        if dirty & regs::REGS != 0 {
            // SAFETY: the union member `regs` is what KVM_SYNC_X86_REGS describes.
            let r = unsafe { addr_of!((*run).s.regs.regs).read() };
            self.fd.set_regs(&r).map_err(Errno::from)?;
            // SAFETY: as above.
            unsafe { addr_of_mut!((*run).kvm_dirty_regs).write(dirty & !regs::REGS) };
        }
        Ok(())
    }

    /// Runs a vcpu ioctl that only reads vcpu state, after writing pending registers back.
    pub fn reading<T>(&self, f: impl FnOnce(&VcpuFd) -> Result<T>) -> Result<T> {
        self.flush()?;
        f(&self.fd)
    }

    /// Runs a vcpu ioctl that may change vcpu state: pending registers are written back
    /// before, and the sync area is treated as stale after (even if the ioctl failed).
    pub fn writing<T>(&self, f: impl FnOnce(&VcpuFd) -> Result<T>) -> Result<T> {
        self.flush()?;
        let r = f(&self.fd);
        self.sync.set_synced(0);
        self.sync.set_maybe_waiting(true);
        r
    }

    /// A get of one sync kind: from the area when it is current, else by ioctl (whose
    /// result then refreshes the area and teaches `want`).
    fn get_synced<T: Copy>(
        &self,
        kind: u64,
        area: *mut T,
        get: impl FnOnce(&VcpuFd) -> std::result::Result<T, kvm_ioctls::Error>,
    ) -> Result<T> {
        if self.sync.read_synced(kind) {
            // SAFETY: `area` points at the member of the live run area that holds `kind`,
            // which the kernel filled on the last exit.
            return Ok(unsafe { area.read() });
        }
        let v = self.reading(|fd| get(fd).map_err(Errno::from))?;
        if self.sync.supports(kind) {
            // SAFETY: as above; the kernel reads this member only when its dirty bit is
            // set, which it is not after `reading` flushed.
            unsafe { area.write(v) };
            self.sync.learned(kind);
        }
        Ok(v)
    }

    /// KVM_GET_REGS, served from the sync area when it is current.
    pub fn get_regs(&self) -> Result<kvm_regs> {
        // SAFETY: computing a field address of the live run area.
        let area = unsafe { addr_of_mut!((*self.run.0.as_ptr()).s.regs.regs) };
        self.get_synced(regs::REGS, area, |fd| fd.get_regs())
    }

    /// KVM_SET_REGS, deferred to the next entry through the sync area when possible.
    pub fn set_regs(&self, r: &kvm_regs) -> Result<()> {
        if !self.sync.supports(regs::REGS) {
            return self.writing(|fd| fd.set_regs(r).map_err(Errno::from));
        }
        let run = self.run.0.as_ptr();
        // SAFETY: owner-only members of the live run area; the kernel reads them on the
        // next KVM_RUN because of the dirty bit.
        unsafe {
            addr_of_mut!((*run).s.regs.regs).write(*r);
            let dirty = addr_of!((*run).kvm_dirty_regs).read();
            addr_of_mut!((*run).kvm_dirty_regs).write(dirty | regs::REGS);
        }
        self.sync.forget(regs::REGS);
        // KVM_SET_REGS drops a pending exception: cached events that show one are stale.
        // SAFETY: a field of the live run area; read only if the kernel filled it.
        if self.sync.is_synced(regs::EVENTS)
            && unsafe { regs::shows_exception(addr_of!((*run).s.regs.events)) }
        {
            self.sync.forget(regs::EVENTS);
        }
        Ok(())
    }

    /// KVM_GET_SREGS, served from the sync area when it is current.
    pub fn get_sregs(&self) -> Result<kvm_sregs> {
        // SAFETY: computing a field address of the live run area.
        let area = unsafe { addr_of_mut!((*self.run.0.as_ptr()).s.regs.sregs) };
        self.get_synced(regs::SREGS, area, |fd| fd.get_sregs())
    }

    /// KVM_SET_SREGS (an ioctl: the kernel may refuse the values).
    pub fn set_sregs(&self, s: &kvm_sregs) -> Result<()> {
        self.writing(|fd| fd.set_sregs(s).map_err(Errno::from))
    }

    /// KVM_GET_VCPU_EVENTS, served from the sync area when it is current.
    pub fn get_events(&self) -> Result<kvm_vcpu_events> {
        // SAFETY: computing a field address of the live run area.
        let area = unsafe { addr_of_mut!((*self.run.0.as_ptr()).s.regs.events) };
        let e = self.get_synced(regs::EVENTS, area, |fd| fd.get_vcpu_events())?;
        // Reading events with an exception may have delivered its payload into CR2.
        // SAFETY: `e` is a local value.
        if unsafe { regs::shows_exception(&e) } {
            self.sync.forget(regs::SREGS);
        }
        Ok(e)
    }

    /// KVM_SET_VCPU_EVENTS (an ioctl: the kernel may refuse the values).
    pub fn set_events(&self, e: &kvm_vcpu_events) -> Result<()> {
        self.writing(|fd| fd.set_vcpu_events(e).map_err(Errno::from))
    }
}

/// What `OwnerAlive::try_hold` found.
enum Hold {
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
struct OwnerAlive(Box<UnsafeCell<libc::pthread_mutex_t>>);

// SAFETY: a pthread mutex is made to be shared between threads; it is only used through
// the pthread calls, under the vcpu's owner lock.
unsafe impl Send for OwnerAlive {}
// SAFETY: as above.
unsafe impl Sync for OwnerAlive {}

impl OwnerAlive {
    fn new() -> OwnerAlive {
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
    fn try_hold(&self) -> Hold {
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
    fn let_go(&self) {
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
    let signals = match kick::on_claim(&v) {
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
