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

//!
//! The `Vcpu` type and its ownership are here; its operations are in the files below, one
//! per concept, each an `impl Vcpu` block that uses this file and the leaves (the state
//! types that know nothing of `Vcpu`). The thread-local itself is src/current.rs.

pub mod apic_mode;
mod cpu;
mod debug;
mod dirty_bitmap;
pub mod dirty_log;
mod dirty_ring;
mod interrupt;
mod irq_state;
pub mod kick;
mod owner;
mod regs;
mod run;
pub mod state;
mod sync_regs;
mod walk;

use crate::error::{Errno, Result};
use crate::stats::{Stats, StatsCell};
use apic_mode::ApicMode;
use irq_state::IrqState;
use kick::KickState;
use kvm_bindings::kvm_run;
use kvm_ioctls::VcpuFd;
use owner::{Hold, OwnerAlive};
use parking_lot::Mutex;
use std::os::unix::io::{AsRawFd, RawFd};
use std::ptr::{addr_of, addr_of_mut, NonNull};
use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use sync_regs::SyncState;

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
    /// The vcpu's dirty ring, if the VM logs dirty pages that way; first, so that its
    /// entries are folded into the VM's bitmaps before anything else of the vcpu goes.
    ring: Option<dirty_log::VcpuRing>,
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
    /// Its binary statistics, opened on first use.
    stats: StatsCell,
}

impl Vcpu {
    /// Wraps a vcpu kvm-ioctls created; `sync_caps` is what KVM_CAP_SYNC_REGS reported,
    /// `apic` the VM's local APIC mode.
    pub fn new(mut fd: VcpuFd, vm_fd: RawFd, sync_caps: u64, apic: Arc<ApicMode>) -> Vcpu {
        // The one place a reference to kvm_run exists: turned into a raw pointer at once,
        // and get_kvm_run is never called again.
        let run = RunArea(NonNull::from(fd.get_kvm_run()));
        let sync_caps = if std::env::var_os(sync_regs::NO_SYNC_ENV).is_some() {
            0
        } else {
            sync_caps
        };
        Vcpu {
            ring: None,
            fd,
            run,
            vm_fd,
            owner: Mutex::new(0),
            alive: OwnerAlive::new(),
            sync: SyncState::new(sync_caps),
            irq: IrqState::default(),
            kick: KickState::default(),
            apic,
            stats: StatsCell::default(),
        }
    }

    /// Maps this vcpu's (vcpu `id`'s) dirty ring of the VM-wide ring state `log`.
    pub fn attach_dirty_ring(&mut self, log: &Arc<dirty_log::DirtyLog>, id: u32) -> Result<()> {
        self.ring = Some(log.attach(self.raw_fd(), id)?);
        Ok(())
    }

    /// The vcpu fd.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The fd of the VM this vcpu belongs to.
    pub fn vm_fd(&self) -> RawFd {
        self.vm_fd
    }

    /// The vcpu's binary statistics (their fd opened by `open_stats_fd`, their
    /// descriptors read by the first call, from any thread).
    pub fn stats(&self) -> Result<&Stats> {
        self.stats.get(self.raw_fd())
    }

    /// Opens the statistics fd: before the vcpu first runs, for the reason given in
    /// src/stats/mod.rs. No error where the kernel has no binary statistics.
    pub fn open_stats_fd(&self) -> Result<()> {
        self.stats.open_fd(self.raw_fd())
    }

    /// Whether the statistics fd is open (or known not to exist).
    pub fn stats_is_open(&self) -> bool {
        self.stats.is_open()
    }

    /// Its statistics fd, if open (for a fork child, which closes its copy).
    pub fn stats_fd(&self) -> Option<RawFd> {
        self.stats.fd()
    }

    /// KVM_CHECK_EXTENSION on the fd of the VM this vcpu belongs to (no registry lock).
    pub fn vm_extension(&self, cap: u32) -> Result<i32> {
        crate::ioctl::check_extension(self.vm_fd, libc::c_long::from(cap))
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
        self.kick.on_release();
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
        self.kick.on_orphaned();
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

    /// `immediate_exit` of the run area, as the atomic byte it is shared as.
    fn exit_flag(&self) -> &AtomicU8 {
        // SAFETY: the run area lives as long as `self`; immediate_exit is a byte (any
        // alignment will do) that libkvm only ever accesses atomically, from any thread,
        // and the kernel only reads (READ_ONCE) on entry to KVM_RUN.
        unsafe { AtomicU8::from_ptr(addr_of_mut!((*self.run.0.as_ptr()).immediate_exit)) }
    }

    /// Writes registers that `set_regs` left pending in the sync area back with
    /// KVM_SET_REGS, so that an ioctl that follows sees them in the caller's order.
    fn flush(&self) -> Result<()> {
        let run = self.run.0.as_ptr();
        // SAFETY: owner-only field of the live run area.
        let dirty = unsafe { addr_of!((*run).kvm_dirty_regs).read() };
        if dirty & sync_regs::REGS != 0 {
            // SAFETY: the union member `regs` is what KVM_SYNC_X86_REGS describes.
            let r = unsafe { addr_of!((*run).s.regs.regs).read() };
            self.fd.set_regs(&r).map_err(Errno::from)?;
            // SAFETY: as above.
            unsafe { addr_of_mut!((*run).kvm_dirty_regs).write(dirty & !sync_regs::REGS) };
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
}
