//! The names of KVM's exit reasons (`KVM_EXIT_*` of <linux/kvm.h> without the prefix),
//! for `kvm_exit_reason_name`.

/// Every `KVM_EXIT_*` the kernel defines, indexed by value: the numbers are kvm-bindings'
/// (0 to 39), and 40 (TDX, Linux 6.16) and 41 (ARM_SEA, Linux 6.19) from the kernel's
/// include/uapi/linux/kvm.h after them. KVM_EXIT_DCR (15) is deprecated, still defined.
const NAMES: [&std::ffi::CStr; 42] = [
    c"UNKNOWN",
    c"EXCEPTION",
    c"IO",
    c"HYPERCALL",
    c"DEBUG",
    c"HLT",
    c"MMIO",
    c"IRQ_WINDOW_OPEN",
    c"SHUTDOWN",
    c"FAIL_ENTRY",
    c"INTR",
    c"SET_TPR",
    c"TPR_ACCESS",
    c"S390_SIEIC",
    c"S390_RESET",
    c"DCR",
    c"NMI",
    c"INTERNAL_ERROR",
    c"OSI",
    c"PAPR_HCALL",
    c"S390_UCONTROL",
    c"WATCHDOG",
    c"S390_TSCH",
    c"EPR",
    c"SYSTEM_EVENT",
    c"S390_STSI",
    c"IOAPIC_EOI",
    c"HYPERV",
    c"ARM_NISV",
    c"X86_RDMSR",
    c"X86_WRMSR",
    c"DIRTY_RING_FULL",
    c"AP_RESET_HOLD",
    c"X86_BUS_LOCK",
    c"XEN",
    c"RISCV_SBI",
    c"RISCV_CSR",
    c"NOTIFY",
    c"LOONGARCH_IOCSR",
    c"MEMORY_FAULT",
    c"TDX",
    c"ARM_SEA",
];

/// The name of exit reason `reason`, "UNKNOWN" for a value the kernel does not define.
pub fn name(reason: i32) -> &'static std::ffi::CStr {
    usize::try_from(reason)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or(c"UNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings as kb;

    /// Each name is its constant's in kvm-bindings (generated from <linux/kvm.h>).
    #[test]
    fn names_match_the_kernel_constants() {
        let known = [
            (kb::KVM_EXIT_UNKNOWN, "UNKNOWN"),
            (kb::KVM_EXIT_IO, "IO"),
            (kb::KVM_EXIT_HLT, "HLT"),
            (kb::KVM_EXIT_MMIO, "MMIO"),
            (kb::KVM_EXIT_SHUTDOWN, "SHUTDOWN"),
            (kb::KVM_EXIT_FAIL_ENTRY, "FAIL_ENTRY"),
            (kb::KVM_EXIT_INTR, "INTR"),
            (kb::KVM_EXIT_DCR, "DCR"),
            (kb::KVM_EXIT_INTERNAL_ERROR, "INTERNAL_ERROR"),
            (kb::KVM_EXIT_SYSTEM_EVENT, "SYSTEM_EVENT"),
            (kb::KVM_EXIT_ARM_NISV, "ARM_NISV"),
            (kb::KVM_EXIT_X86_RDMSR, "X86_RDMSR"),
            (kb::KVM_EXIT_DIRTY_RING_FULL, "DIRTY_RING_FULL"),
            (kb::KVM_EXIT_X86_BUS_LOCK, "X86_BUS_LOCK"),
            (kb::KVM_EXIT_NOTIFY, "NOTIFY"),
            (kb::KVM_EXIT_LOONGARCH_IOCSR, "LOONGARCH_IOCSR"),
            (kb::KVM_EXIT_MEMORY_FAULT, "MEMORY_FAULT"),
        ];
        for (v, n) in known {
            assert_eq!(name(v as i32).to_str(), Ok(n), "KVM_EXIT_{n} = {v}");
        }
        assert_eq!(NAMES.len() as u32, kb::KVM_EXIT_MEMORY_FAULT + 3);
        assert_eq!(name(40).to_str(), Ok("TDX"));
        assert_eq!(name(41).to_str(), Ok("ARM_SEA"));
    }

    #[test]
    fn other_values_are_unknown() {
        for v in [-1, 42, 1000, i32::MIN, i32::MAX] {
            assert_eq!(name(v).to_str(), Ok("UNKNOWN"));
        }
    }
}
