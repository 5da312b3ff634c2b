//! `kvm_interrupt` on the calling thread's vcpu: through the in-kernel local APIC
//! (KVM_SIGNAL_MSI) or with KVM_INTERRUPT when the guest can take it, and the run loop's
//! hooks that deliver held-back vectors (src/vcpu/irq_state.rs).

use super::irq_state::{INJECTED, OVERRIDE};
use super::Vcpu;
use crate::error::{Errno, Result};
use crate::ioctl;
use kvm_bindings::{
    kvm_interrupt, kvm_lapic_state, kvm_msi, KVM_EXIT_HLT, KVM_EXIT_IRQ_WINDOW_OPEN,
};
use std::os::unix::io::AsRawFd;
use std::ptr::{addr_of, addr_of_mut};

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;
/// IA32_APIC_BASE.EXTD: the local APIC is in x2APIC mode.
const APIC_BASE_EXTD: u64 = 1 << 10;

impl Vcpu {
    /// `kvm_interrupt`: through the in-kernel local APIC if the VM has one, else
    /// with KVM_INTERRUPT as soon as the guest can take it (see [`IrqState`]).
    pub fn interrupt(&self, vector: u32) -> Result<()> {
        let vector = u8::try_from(vector).map_err(|_| Errno(libc::EINVAL))?;
        if self.apic.in_kernel() {
            let lapic = self.get_lapic()?;
            // APIC ID register (offset 0x20).
            let reg = u32::from_le_bytes(std::array::from_fn(|i| lapic.regs[0x20 + i] as u8));
            let x2apic =
                self.apic.x2apic_32bit_ids() && self.get_sregs()?.apic_base & APIC_BASE_EXTD != 0;
            let (id, address_hi) = if x2apic {
                // KVM_CAP_X2APIC_API with 32-bit IDs, APIC in x2APIC mode: the register
                // holds the whole ID; bits 31:8 of the destination go in address_hi.
                (reg & 0xff, reg & 0xffff_ff00)
            } else {
                // The ID in bits 31:24, as KVM_GET_LAPIC reports it otherwise.
                (reg >> 24, 0)
            };
            let msi = kvm_msi {
                // Physical destination `id`, fixed delivery, edge-triggered.
                address_lo: 0xfee0_0000 | id << 12,
                address_hi,
                data: u32::from(vector),
                ..Default::default()
            };
            // KVM_SIGNAL_MSI on the VM fd the vcpu keeps (no registry lock).
            // SAFETY: KVM_SIGNAL_MSI reads one struct kvm_msi, which lives across the call.
            let r = unsafe { ioctl::ioctl_with_ref(self.vm_fd(), ioctl::KVM_SIGNAL_MSI, &msi) };
            return match r {
                Ok(n) if n > 0 => Ok(()),
                // 0: refused; EPERM: no APIC accepted it (software-disabled).
                Ok(_) | Err(Errno(libc::EPERM)) => Err(Errno(libc::EAGAIN)),
                Err(e) => Err(e),
            };
        }
        self.irq.add(vector);
        if let Err(e) = self.deliver_pending() {
            self.irq.remove(vector);
            return Err(e);
        }
        Ok(())
    }

    /// Injects the highest pending vector with KVM_INTERRUPT if the guest can take it
    /// now: the last exit said it was ready, its IF is still set, and nothing was
    /// injected since that exit. Returns whether it injected one.
    fn deliver_pending(&self) -> Result<bool> {
        let Some(vector) = self.irq.highest() else {
            return Ok(false);
        };
        if self.irq.flags() & INJECTED != 0 {
            return Ok(false);
        }
        let run = self.run_area();
        // SAFETY: owner-only field of the live run area, written by the kernel on exit.
        if unsafe { addr_of!((*run).ready_for_interrupt_injection).read() } == 0 {
            return Ok(false);
        }
        if self.get_regs()?.rflags & RFLAGS_IF == 0 {
            return Ok(false);
        }
        let irq = kvm_interrupt {
            irq: u32::from(vector),
        };
        self.writing(|fd| {
            // SAFETY: KVM_INTERRUPT reads one struct kvm_interrupt, which lives across
            // the call.
            unsafe { ioctl::ioctl_with_ref(fd.as_raw_fd(), ioctl::KVM_INTERRUPT, &irq) }
        })?;
        self.irq.remove(vector);
        self.irq.mark_injected();
        Ok(true)
    }

    /// Called by `run` before KVM_RUN: with vectors pending, injects one if the guest
    /// can take it, and asks the kernel for an interrupt window for the rest. Free when
    /// nothing is pending.
    #[inline]
    pub(crate) fn irq_before_entry(&self) {
        if self.irq.any() {
            self.irq_before_entry_slow();
        }
    }

    #[cold]
    fn irq_before_entry_slow(&self) {
        // An error leaves the vector pending; the window below retries it.
        let _ = self.deliver_pending();
        if !self.irq.any() {
            return;
        }
        let run = self.run_area();
        // SAFETY: owner-only field of the live run area; the caller's value is put back
        // after the exit.
        let caller = unsafe { addr_of!((*run).request_interrupt_window).read() };
        let injected = self.irq.flags() & INJECTED;
        self.irq.set_flags(injected | OVERRIDE | u32::from(caller));
        // SAFETY: as above.
        unsafe { addr_of_mut!((*run).request_interrupt_window).write(1) };
    }

    /// Called by `run` after KVM_RUN with its result: puts the caller's
    /// request_interrupt_window back, and on an interrupt-window exit that libkvm asked
    /// for, or a HLT exit with IF set, injects a pending vector. Returns true if `run`
    /// should enter the guest again instead of returning (the exit was libkvm's own).
    #[inline]
    pub(crate) fn irq_after_exit(&self, result: &Result<i32>) -> bool {
        let st = self.irq.flags();
        if st == 0 {
            return false;
        }
        self.irq_after_exit_slow(st, result)
    }

    #[cold]
    fn irq_after_exit_slow(&self, st: u32, result: &Result<i32>) -> bool {
        // A KVM_RUN happened: an earlier injection has been taken (or the run area says
        // the guest is not ready for another).
        self.irq.set_flags(0);
        if st & OVERRIDE == 0 {
            return false;
        }
        let run = self.run_area();
        // SAFETY: owner-only field of the live run area.
        unsafe { addr_of_mut!((*run).request_interrupt_window).write(st as u8) };
        // Re-enter only when a vector went in: if none could (an error, or the guest
        // not ready), the exit goes to the caller rather than looping here.
        match *result {
            Ok(r) if r == KVM_EXIT_IRQ_WINDOW_OPEN as i32 => self.deliver_pending() == Ok(true),
            // The guest halted with a vector waiting: with IF set (`sti; hlt`, the idle
            // loop) a CPU would take the interrupt and wake, so it goes in now and the
            // handler's iret returns after the hlt (KVM has stepped over it). Returning
            // the HLT instead would let a VMM sleep on an interrupt it already sent. With
            // IF clear, deliver_pending declines and the HLT goes to the caller.
            Ok(r) if r == KVM_EXIT_HLT as i32 => self.deliver_pending() == Ok(true),
            _ => false,
        }
    }

    /// KVM_GET_LAPIC.
    pub fn get_lapic(&self) -> Result<kvm_lapic_state> {
        self.reading(|fd| fd.get_lapic().map_err(Errno::from))
    }

    /// KVM_SET_LAPIC.
    pub fn set_lapic(&self, l: &kvm_lapic_state) -> Result<()> {
        self.writing(|fd| fd.set_lapic(l).map_err(Errno::from))
    }

    /// KVM_NMI.
    pub fn nmi(&self) -> Result<()> {
        self.writing(|fd| fd.nmi().map_err(Errno::from))
    }
}
