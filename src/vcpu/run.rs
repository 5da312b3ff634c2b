//! KVM_RUN on the calling thread's vcpu, and the kick: any thread makes its current or
//! next run return EINTR (the design is in src/vcpu/kick.rs).

use super::kick::{self, ThreadSignals};
use super::Vcpu;
use crate::error::{Errno, Result};
use crate::ioctl;
use kvm_bindings::KVM_EXIT_DIRTY_RING_FULL;
use std::os::unix::io::AsRawFd;
use std::ptr::{addr_of, addr_of_mut};
use std::sync::Arc;

impl Vcpu {
    /// KVM_RUN until an exit for the caller: returns the exit reason. Exits that libkvm
    /// asked for itself (interrupt windows of `kvm_interrupt`) are handled here.
    pub fn run(&self) -> Result<i32> {
        loop {
            self.irq_before_entry();
            let r = self.enter();
            if !self.irq_after_exit(&r) && !self.ring_full(&r)? {
                return r;
            }
        }
    }

    /// One KVM_RUN: returns the exit reason. The hot path: no lock, no allocation, and no
    /// system call but the ioctl itself (and, after EINTR, the kick's drain: src/vcpu/kick.rs).
    #[inline]
    fn enter(&self) -> Result<i32> {
        self.enter_with(|v| v.kick.run(v.raw_fd(), v.exit_flag()))
    }

    /// Completes an I/O, MMIO or MSR exit still pending in the kernel without running
    /// guest code (KVM_RUN with immediate_exit, see `KickState::run_immediate`), as the KVM
    /// API requires before vcpu state is saved. `Some(reason)`: completing it produced a
    /// new exit, which the caller must handle first.
    pub fn complete_pending(&self) -> Result<Option<i32>> {
        let r = self.enter_with(|v| v.kick.run_immediate(v.raw_fd(), v.exit_flag()));
        if self.ring_full(&r)? {
            // Harvested: the exit was libkvm's own, and the pending exit was completed.
            return Ok(None);
        }
        match r {
            Ok(reason) => Ok(Some(reason)),
            Err(Errno(libc::EINTR)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `enter` with the KVM_RUN step given (`KickState::run` or `run_immediate`).
    #[inline(always)]
    fn enter_with(&self, kvm_run: impl FnOnce(&Vcpu) -> Result<libc::c_int>) -> Result<i32> {
        let run = self.run.0.as_ptr();
        let want = self.sync.begin_run();
        // SAFETY: `run` is the live mapping of this vcpu; only the owning thread (us)
        // writes kvm_valid_regs.
        unsafe { addr_of_mut!((*run).kvm_valid_regs).write(want) };
        if self.sync.maybe_waiting() {
            // See sync_regs.rs: a vcpu waiting for INIT/SIPI would not load pending registers.
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

    /// After a KVM_RUN that returned `r`: if it is KVM_EXIT_DIRTY_RING_FULL of a vcpu
    /// with a ring, harvests the VM's rings and returns true (the exit is libkvm's own:
    /// the caller re-enters). Otherwise false, at the cost of one comparison.
    #[inline(always)]
    fn ring_full(&self, r: &Result<i32>) -> Result<bool> {
        if *r != Ok(KVM_EXIT_DIRTY_RING_FULL as i32) {
            return Ok(false);
        }
        match &self.ring {
            Some(ring) => ring.log().harvest().map(|()| true),
            None => Ok(false),
        }
    }

    /// `kvm_kick_vcpu`: EAGAIN (flag set, signal not sent) if the signal queue is full.
    pub fn kick(self: &Arc<Self>) -> Result<()> {
        self.with_owner(|tid| self.kick.send(self.exit_flag(), tid))
    }

    /// On the thread that has just claimed the vcpu: blocks the kick signal and, unless
    /// the vcpu has a mask of its own, makes the thread's mask (minus the kick signal) its
    /// run mask.
    pub fn on_claim(&self) -> Result<ThreadSignals> {
        let (ts, old) = kick::block_on_thread();
        if !self.kick.own_mask() {
            if let Err(e) = self.set_run_mask(&old) {
                kick::restore(&ts);
                return Err(e);
            }
        }
        Ok(ts)
    }

    /// KVM_SET_SIGNAL_MASK with `mask` minus the kick signal.
    fn set_run_mask(&self, mask: &libc::sigset_t) -> Result<()> {
        let arg = kick::run_mask(mask);
        self.reading(|fd| {
            // SAFETY: KVM_SET_SIGNAL_MASK reads a struct kvm_signal_mask of `len` sigset
            // bytes, which `arg` is, alive across the call.
            unsafe {
                ioctl::ioctl(
                    fd.as_raw_fd(),
                    ioctl::KVM_SET_SIGNAL_MASK,
                    &arg as *const kick::SignalMask as libc::c_ulong,
                )
            }
            .map(|_| ())
        })
    }

    /// `kvm_set_signal_mask`: `mask` while the vcpu runs, or (None) the thread's own mask;
    /// the kick signal unblocked either way.
    pub fn set_signal_mask(&self, mask: Option<&libc::sigset_t>) -> Result<()> {
        match mask {
            Some(m) => {
                self.set_run_mask(m)?;
                self.kick.set_own_mask(true);
            }
            None => {
                self.set_run_mask(&kick::thread_mask())?;
                self.kick.set_own_mask(false);
            }
        }
        Ok(())
    }

    /// For tests: the state after an EINTR that counted a kick whose flag store came
    /// after the owner cleared the flag.
    #[cfg(test)]
    pub fn answered_kick_with_leftover_flag(&self) {
        self.kick.answered_with_leftover_flag(self.exit_flag());
    }
}
