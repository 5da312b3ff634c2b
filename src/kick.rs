//! The kick: any thread makes a vcpu's current or next `kvm_run` return -1/EINTR, and the
//! vcpu signal mask that keeps it working.
//!
//! The design, relied on by `kvm_run`, `kvm_kick_vcpu`, `kvm_set_signal_mask` and the
//! ownership changes:
//!
//! - A kick is three steps, taken under the vcpu's owner lock (so the owner's thread id
//!   cannot go stale, and kicks of one vcpu are serialised): the vcpu's kick sequence
//!   counter is incremented; `immediate_exit` in the run area is set; the library's kick
//!   signal is sent to the owning thread with tgkill, unless an earlier kick's signal is
//!   still on its way (`armed`), so at most one is queued per vcpu. A vcpu that no thread
//!   owns gets the flag alone.
//! - The kick signal has a no-op handler (SA_RESTART, so a stray delivery interrupts no
//!   system call of the application) and is blocked in the owning thread outside KVM_RUN
//!   (blocked when the thread creates or attaches the vcpu, restored when it gives it up).
//!   Inside KVM_RUN the vcpu's signal mask (KVM_SET_SIGNAL_MASK: the thread's mask or the
//!   one given to `kvm_set_signal_mask`, always minus the kick signal) unblocks it. So a
//!   kick landing just before KVM_RUN is seen through the flag (KVM checks it on entry),
//!   and one landing during KVM_RUN through the pending signal; neither is lost.
//! - After KVM_RUN fails with EINTR, the owner clears the flag, drains a pending kick
//!   signal (sigtimedwait, zero timeout: the one system call of this path), disarms, and
//!   reads the sequence counter, in that order (sequentially consistent). A kick not
//!   counted in that read incremented the counter after it, hence set the flag after the
//!   clear: the next KVM_RUN returns at once. So every kick is answered by an EINTR that
//!   returns after the kick began. If the counter has not moved since the last EINTR that
//!   answered a kick and the drain found a kick signal or the clear found the flag set,
//!   the EINTR came only from a late signal, or a late flag store, of a kick already
//!   answered (a kick counted in that read can set the flag after the clear): KVM_RUN is
//!   entered again instead of reporting it.
//!   An application signal pending in a mask that blocks it outside KVM_RUN stays pending
//!   and makes that KVM_RUN return EINTR at once, so it is never swallowed. (One whose
//!   handler runs as KVM_RUN returns can coincide with a late kick signal and have its
//!   EINTR swallowed; such signals can also arrive just before KVM_RUN and not interrupt
//!   it at all, so they are no way to stop a vcpu anyway: kvm_set_signal_mask(3) says so.)
//! - A vcpu given up (detach, thread exit) drains a kick signal pending on the old thread
//!   and disarms, under the owner lock, so no kick signal is left behind on a thread
//!   without a vcpu and `armed` never claims a signal that no thread will see. The flag
//!   stays, so the next owner's first `kvm_run` answers the kick. A vcpu whose owner
//!   ended without giving it up (src/vcpu.rs) is disarmed when that is noticed, and is
//!   kicked as a detached one: the flag alone.
//! - KVM_RUN failing with EAGAIN (a vcpu waiting for INIT/SIPI has received one) is
//!   retried: it is not an exit, and the caller could do nothing but call again.
//!
//! The run path takes no lock and makes no system call but KVM_RUN; the EINTR path adds
//! the drain and four atomic operations.

use crate::error::{Errno, Result};
use crate::ioctl;
use crate::registry;
use crate::vcpu::Vcpu;
use parking_lot::Mutex;
use std::os::unix::io::{AsRawFd, RawFd};
use std::ptr::addr_of_mut;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8};

/// The kick signal when the application chose none: near the top of the real-time range
/// (applications and other libraries allocate upwards from SIGRTMIN), but not SIGRTMAX
/// itself. With glibc this is signal 61.
fn default_signal() -> i32 {
    libc::SIGRTMAX() - 3
}

/// The kick signal chosen with `kvm_set_kick_signal`, 0 for the default.
static CHOSEN: Mutex<i32> = Mutex::new(0);
/// The kick signal in force, set once when the first vcpu is created (0 before).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Whether `signo` may be the kick signal: SIGUSR1, SIGUSR2 or a real-time signal that
/// the C library does not reserve (SIGRTMIN..=SIGRTMAX).
fn valid_signal(signo: i32) -> bool {
    signo == libc::SIGUSR1
        || signo == libc::SIGUSR2
        || (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&signo)
}

/// `kvm_set_kick_signal`: EINVAL for a signal that cannot be the kick signal, EBUSY once
/// a vcpu has been created in the process.
pub fn set_kick_signal(signo: i32) -> Result<()> {
    if !valid_signal(signo) {
        return Err(Errno(libc::EINVAL));
    }
    let mut chosen = CHOSEN.lock();
    if SIGNAL.load(Acquire) != 0 {
        return Err(Errno(libc::EBUSY));
    }
    *chosen = signo;
    Ok(())
}

extern "C" fn on_kick_signal(_: libc::c_int) {}

/// Fixes the kick signal and installs its handler; called for every vcpu created, before
/// any thread owns it. Only the first call does anything.
pub fn freeze() -> Result<()> {
    let chosen = CHOSEN.lock();
    if SIGNAL.load(Acquire) != 0 {
        return Ok(());
    }
    let signo = if *chosen != 0 {
        *chosen
    } else {
        default_signal()
    };
    // SAFETY: a zeroed sigaction is a valid value (empty mask, no flags) that we fill in.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_kick_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa` is a valid sigaction whose handler is async-signal-safe (it does
    // nothing); the old action is not asked for.
    crate::error::check(unsafe { libc::sigaction(signo, &sa, std::ptr::null_mut()) })?;
    SIGNAL.store(signo, Release);
    Ok(())
}

/// The kick signal in force (only called once a vcpu exists, so after `freeze`).
fn signal() -> i32 {
    SIGNAL.load(Relaxed)
}

/// A signal set holding only the kick signal.
fn kick_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it fully and
    // cannot fail for a valid signal.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal());
        set
    }
}

/// Takes a pending kick signal of the calling thread, if there is one; says whether there
/// was. Raw rt_sigtimedwait: libkvm is no cancellation point (src/cancel.rs).
fn drain() -> bool {
    crate::cancel::take_pending(&kick_set()) == Some(signal())
}

/// The kick bookkeeping of one vcpu (see the module documentation).
#[derive(Debug, Default)]
pub struct KickState {
    /// Kicks begun.
    seq: AtomicU64,
    /// `seq` as of the last EINTR that answered kicks (owner only).
    seen: AtomicU64,
    /// A kick signal has been sent and not yet drained.
    armed: AtomicBool,
    /// `kvm_set_signal_mask` gave a mask of its own (owner only); otherwise the run mask
    /// follows the owning thread's mask.
    own_mask: AtomicBool,
}

/// `immediate_exit` of the vcpu's run area, as the atomic byte it is shared as.
fn exit_flag(v: &Vcpu) -> &AtomicU8 {
    // SAFETY: the run area lives as long as `v`; immediate_exit is a byte (any alignment
    // will do) that libkvm only ever accesses atomically, from any thread, and the kernel
    // only reads (READ_ONCE) on entry to KVM_RUN.
    unsafe { AtomicU8::from_ptr(addr_of_mut!((*v.run_area()).immediate_exit)) }
}

/// `kvm_kick_vcpu`: EBADF if `fd` is not a libkvm vcpu; EAGAIN (flag set, signal not
/// sent) if the signal queue is full.
pub fn kick(fd: RawFd) -> Result<()> {
    let v = registry::vcpu(fd)?;
    let k = v.kick();
    v.with_owner(|tid| {
        k.seq.fetch_add(1, SeqCst);
        exit_flag(&v).store(1, SeqCst);
        if tid != 0 && !k.armed.swap(true, SeqCst) {
            // SAFETY: plain system calls; `tid` is the owner's, which cannot give the vcpu
            // up while we hold the owner lock (it does so under the same lock), and was
            // alive just now (`with_owner` checked), so the id is not another thread's.
            let r = unsafe { libc::tgkill(libc::getpid(), tid, signal()) };
            if r != 0 {
                let e = Errno::last();
                k.armed.store(false, SeqCst);
                // ESRCH: the owner ended just now without giving the vcpu up; the flag
                // alone reaches the next owner, as for a detached vcpu.
                if e != Errno(libc::ESRCH) {
                    return Err(e);
                }
            }
        }
        Ok(())
    })
}

/// KVM_RUN with `immediate_exit` set, for `kvm_save_vcpu`: the kernel completes an I/O,
/// MMIO or MSR exit still pending and returns EINTR before any guest instruction runs.
/// Unlike `run`, it never enters again without the flag, and it answers no kick: a kick
/// that arrived meanwhile finds the flag set again afterwards, so the caller's next
/// `kvm_run` returns EINTR for it.
pub fn run_immediate(v: &Vcpu) -> Result<libc::c_int> {
    let k = v.kick();
    let r = loop {
        exit_flag(v).store(1, SeqCst);
        // SAFETY: KVM_RUN takes no argument.
        match unsafe { ioctl::ioctl(v.raw_fd(), ioctl::KVM_RUN, 0) } {
            Err(Errno(libc::EAGAIN)) => {}
            r => break r,
        }
    };
    exit_flag(v).store(0, SeqCst);
    if r == Err(Errno(libc::EINTR)) {
        // As after any EINTR: no kick signal left pending, none armed.
        drain();
        k.armed.store(false, SeqCst);
    }
    // A kick counted after the last EINTR that answered one is still owed to the caller.
    if k.seq.load(SeqCst) != k.seen.load(Relaxed) {
        exit_flag(v).store(1, SeqCst);
    }
    r
}

/// KVM_RUN with the kick handled: EAGAIN is retried, EINTR reported once per batch of
/// kicks (or for an application signal), a late signal of an answered kick swallowed.
pub fn run(v: &Vcpu) -> Result<libc::c_int> {
    loop {
        // SAFETY: KVM_RUN takes no argument.
        match unsafe { ioctl::ioctl(v.raw_fd(), ioctl::KVM_RUN, 0) } {
            Err(Errno(libc::EINTR)) => {
                if after_eintr(v) {
                    return Err(Errno(libc::EINTR));
                }
            }
            Err(Errno(libc::EAGAIN)) => {}
            r => return r,
        }
    }
}

/// The EINTR path of `run`: whether to report EINTR.
#[cold]
fn after_eintr(v: &Vcpu) -> bool {
    let k = v.kick();
    let flagged = exit_flag(v).swap(0, SeqCst) != 0;
    let drained = drain();
    k.armed.store(false, SeqCst);
    let seq = k.seq.load(SeqCst);
    if seq != k.seen.load(Relaxed) {
        k.seen.store(seq, Relaxed);
        return true;
    }
    if drained || flagged {
        // A late signal, or the flag left set, of a kick an earlier EINTR answered (a
        // kick counted by that EINTR can set the flag after it was cleared).
        return false;
    }
    true
}

/// The calling thread's state of the kick signal before it took its vcpu, restored when
/// it gives the vcpu up.
#[derive(Debug)]
pub struct ThreadSignals {
    was_blocked: bool,
}

/// On the thread that has just claimed `v`: blocks the kick signal and, unless the vcpu
/// has a mask of its own, makes the thread's mask (minus the kick signal) its run mask.
pub fn on_claim(v: &Vcpu) -> Result<ThreadSignals> {
    let set = kick_set();
    // SAFETY: a zeroed sigset_t is valid storage for the old mask.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sets; pthread_sigmask cannot fail with SIG_BLOCK and valid pointers.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    // SAFETY: `old` was filled by pthread_sigmask.
    let was_blocked = unsafe { libc::sigismember(&old, signal()) } == 1;
    let ts = ThreadSignals { was_blocked };
    if !v.kick().own_mask.load(Relaxed) {
        if let Err(e) = set_run_mask(v, &old) {
            restore(&ts);
            return Err(e);
        }
    }
    Ok(ts)
}

/// Under the owner lock, after the owner was cleared, on the thread that gave `v` up:
/// no kick signal is left pending on it, and none is in flight.
pub fn on_release(v: &Vcpu) {
    drain();
    v.kick().armed.store(false, SeqCst);
}

/// Under the owner lock, for a vcpu whose owner thread ended without giving it up: its
/// kick signal, if one was on its way, ended with the thread.
pub fn on_orphaned(v: &Vcpu) {
    v.kick().armed.store(false, SeqCst);
}

/// Restores the thread's kick-signal state from before it claimed a vcpu.
pub fn restore(ts: &ThreadSignals) {
    if !ts.was_blocked {
        let set = kick_set();
        // SAFETY: valid set; cannot fail.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// Size of the kernel's sigset on x86-64 (`_NSIG / 8`), what KVM_SET_SIGNAL_MASK takes.
const KERNEL_SIGSET: usize = 8;

/// `struct kvm_signal_mask` with the kernel's sigset in place.
#[repr(C)]
struct SignalMask {
    len: u32,
    sigset: [u8; KERNEL_SIGSET],
}

/// KVM_SET_SIGNAL_MASK with `mask` minus the kick signal.
fn set_run_mask(v: &Vcpu, mask: &libc::sigset_t) -> Result<()> {
    let mut m = *mask;
    // SAFETY: `m` is a valid sigset; cannot fail for a valid signal.
    unsafe { libc::sigdelset(&mut m, signal()) };
    let mut arg = SignalMask {
        len: KERNEL_SIGSET as u32,
        sigset: [0; KERNEL_SIGSET],
    };
    // SAFETY: glibc's sigset_t starts with the kernel's 64 signal bits in the same layout
    // and is larger than KERNEL_SIGSET bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&m as *const libc::sigset_t).cast::<u8>(),
            arg.sigset.as_mut_ptr(),
            KERNEL_SIGSET,
        )
    };
    v.reading(|fd| {
        // SAFETY: KVM_SET_SIGNAL_MASK reads a struct kvm_signal_mask of `len` sigset
        // bytes, which `arg` is, alive across the call.
        unsafe {
            ioctl::ioctl(
                fd.as_raw_fd(),
                ioctl::KVM_SET_SIGNAL_MASK,
                &arg as *const SignalMask as libc::c_ulong,
            )
        }
        .map(|_| ())
    })
}

/// `kvm_set_signal_mask` on the calling thread's vcpu `v`: `mask` while it runs, or
/// (None) the thread's own mask; the kick signal unblocked either way.
pub fn set_signal_mask(v: &Vcpu, mask: Option<&libc::sigset_t>) -> Result<()> {
    match mask {
        Some(m) => {
            set_run_mask(v, m)?;
            v.kick().own_mask.store(true, Relaxed);
        }
        None => {
            // SAFETY: a zeroed sigset_t is valid storage for the current mask.
            let mut cur: libc::sigset_t = unsafe { std::mem::zeroed() };
            // SAFETY: with a NULL set, pthread_sigmask only reads the mask; cannot fail.
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur) };
            set_run_mask(v, &cur)?;
            v.kick().own_mask.store(false, Relaxed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kick_signals() {
        assert!(valid_signal(libc::SIGUSR1));
        assert!(valid_signal(libc::SIGRTMIN()));
        assert!(valid_signal(libc::SIGRTMAX()));
        assert!(valid_signal(default_signal()));
        for bad in [
            0,
            -1,
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGINT,
            32,
            65,
        ] {
            assert!(!valid_signal(bad), "{bad}");
        }
    }

    /// The state after an EINTR that counted a kick whose flag store came after the
    /// owner cleared the flag: the next KVM_RUN exits at once on the leftover flag, and
    /// that must not be a second EINTR for the same kick.
    #[test]
    fn a_leftover_flag_of_an_answered_kick_is_no_second_eintr() {
        let Ok(vm_fd) = registry::create_vm() else {
            return; // no /dev/kvm
        };
        let vm = registry::vm(vm_fd).unwrap();
        vm.set_memory_region(0, 0, 0, 0x1000, None).unwrap();
        // SAFETY: the slot's first byte, mapped while the VM lives.
        unsafe { vm.guest_memory(0, 1).unwrap().write(0xf4) }; // hlt
        registry::create_vcpu(vm_fd, 0).unwrap();
        crate::vcpu::with_current(|v| {
            let mut s = v.get_sregs()?;
            s.cs.base = 0;
            s.cs.selector = 0;
            v.set_sregs(&s)?;
            let mut r = v.get_regs()?;
            r.rip = 0;
            v.set_regs(&r)?;
            let k = v.kick();
            k.seq.fetch_add(1, SeqCst);
            k.seen.store(k.seq.load(SeqCst), Relaxed);
            exit_flag(v).store(1, SeqCst);
            assert_eq!(v.run(), Ok(kvm_bindings::KVM_EXIT_HLT as i32));
            Ok(())
        })
        .unwrap();
        crate::vcpu::clear_current().unwrap();
        registry::destroy_vm(vm_fd).unwrap();
    }

    #[test]
    fn signal_mask_layout() {
        assert_eq!(std::mem::size_of::<SignalMask>(), 12);
        assert_eq!(std::mem::offset_of!(SignalMask, sigset), 4);
        assert_eq!(ioctl::KVM_SET_SIGNAL_MASK, 0x4004_AE8B);
    }
}
