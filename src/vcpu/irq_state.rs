//! The interrupts `kvm_interrupt` holds back until the guest can take them (VMs without
//! an in-kernel local APIC). A leaf: it knows nothing of the vcpu that holds it; the
//! injection itself is src/vcpu/interrupt.rs.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// `IrqState::state`: libkvm set request_interrupt_window for this KVM_RUN; the low byte
/// holds the caller's value, to put back after the exit.
pub(super) const OVERRIDE: u32 = 1 << 8;
/// `IrqState::state`: KVM_INTERRUPT was issued since the last KVM_RUN.
pub(super) const INJECTED: u32 = 1 << 9;

/// Interrupts of `kvm_interrupt` on a VM without an in-kernel irqchip.
///
/// KVM_INTERRUPT injects at the next entry whether or not the guest can take an
/// interrupt, so libkvm issues it only when the last exit said the guest was ready
/// (`ready_for_interrupt_injection`) and IF is still set. Otherwise the vector waits
/// here, and `run` sets `request_interrupt_window` for the KVM_RUN; the
/// KVM_EXIT_IRQ_WINDOW_OPEN that follows is libkvm's own: it injects the vector and
/// enters the guest again without returning. So is a KVM_EXIT_HLT after which the guest
/// can take the vector (`sti; hlt`: the hlt exits before the window opens): the vector
/// wakes the hlt as on a CPU, and `run` never returns HLT while one is deliverable. Several vectors can wait; the highest goes
/// first, as a local APIC would deliver them. Only the owning thread touches this;
/// relaxed atomics make it safe Rust at the cost of plain loads and stores.
#[derive(Debug, Default)]
pub struct IrqState {
    /// Pending vectors, one bit each.
    pending: [AtomicU64; 4],
    /// OVERRIDE | INJECTED | the caller's request_interrupt_window.
    state: AtomicU32,
}

impl IrqState {
    /// Whether any vector waits.
    pub fn any(&self) -> bool {
        self.pending.iter().any(|w| w.load(Relaxed) != 0)
    }

    /// Adds `v` to the waiting vectors.
    pub fn add(&self, v: u8) {
        self.pending[usize::from(v / 64)].fetch_or(1 << (v % 64), Relaxed);
    }

    /// Takes `v` off the waiting vectors.
    pub fn remove(&self, v: u8) {
        self.pending[usize::from(v / 64)].fetch_and(!(1 << (v % 64)), Relaxed);
    }

    /// The vectors waiting for the guest to be ready, one bit each (kvm_save_vcpu).
    pub fn pending(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.pending[i].load(Relaxed))
    }

    /// Replaces the waiting vectors (kvm_restore_vcpu).
    pub fn set_pending(&self, p: [u64; 4]) {
        for (w, v) in self.pending.iter().zip(p) {
            w.store(v, Relaxed);
        }
    }

    /// The highest waiting vector.
    pub fn highest(&self) -> Option<u8> {
        (0..4u8).rev().find_map(|i| {
            let w = self.pending[usize::from(i)].load(Relaxed);
            (w != 0).then(|| i * 64 + (63 - w.leading_zeros() as u8))
        })
    }

    /// OVERRIDE | INJECTED | the caller's request_interrupt_window.
    pub fn flags(&self) -> u32 {
        self.state.load(Relaxed)
    }

    /// Replaces the flags (`flags`).
    pub fn set_flags(&self, f: u32) {
        self.state.store(f, Relaxed);
    }

    /// Records that KVM_INTERRUPT was issued since the last KVM_RUN.
    pub fn mark_injected(&self) {
        self.state.fetch_or(INJECTED, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_vectors_go_highest_first() {
        let s = IrqState::default();
        assert_eq!(s.highest(), None);
        assert!(!s.any());
        s.add(0x20);
        s.add(0xff);
        s.add(0x80);
        assert_eq!(s.highest(), Some(0xff));
        s.remove(0xff);
        assert_eq!(s.highest(), Some(0x80));
        s.remove(0x80);
        s.remove(0x20);
        assert!(!s.any());
    }
}
