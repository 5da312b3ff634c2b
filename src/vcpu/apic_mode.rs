//! How a VM's local APICs work. A leaf: the VM sets it, its vcpus read it
//! (`kvm_interrupt`), neither through the other.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How a VM's local APICs work, shared by the VM and its vcpus so that `kvm_interrupt`
/// reads it without the registry lock.
#[derive(Debug, Default)]
pub struct ApicMode {
    /// The local APICs are in the kernel.
    in_kernel: AtomicBool,
    /// The flags KVM_CAP_X2APIC_API was enabled with, over all enables (0: none).
    x2apic_api: AtomicU64,
}

impl ApicMode {
    /// Whether the local APICs are in the kernel.
    pub fn in_kernel(&self) -> bool {
        self.in_kernel.load(Ordering::Acquire)
    }

    /// Whether KVM_GET_LAPIC and MSI destinations use 32-bit x2APIC IDs
    /// (KVM_CAP_X2APIC_API with KVM_X2APIC_API_USE_32BIT_IDS).
    pub fn x2apic_32bit_ids(&self) -> bool {
        self.x2apic_api.load(Ordering::Acquire)
            & u64::from(kvm_bindings::KVM_X2APIC_API_USE_32BIT_IDS)
            != 0
    }

    /// Records that the local APICs are in the kernel (full or split irqchip).
    pub fn set_in_kernel(&self) {
        self.in_kernel.store(true, Ordering::Release);
    }

    /// Records that KVM_CAP_X2APIC_API was enabled with `flags` (the kernel never turns a
    /// flag off again, so neither does this).
    pub fn add_x2apic_api(&self, flags: u64) {
        self.x2apic_api.fetch_or(flags, Ordering::AcqRel);
    }
}
