//! The one C struct libkvm defines itself rather than taking from <linux/kvm.h>. It
//! stays in a module of this name on purpose: the module path is part of the type's name
//! in the ABI baseline (abi/libkvm.abi), which must not change. The memory code is
//! src/vm/memory.rs and src/vm/slots.rs.

/// `struct kvm_memory_alias` of the 2.6.2x kernels, which x86's <asm/kvm.h> still
/// defines (the header uses that definition; this is the same layout).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct kvm_memory_alias {
    /// Alias slot, 0..32: a namespace of its own, apart from memory slots.
    pub slot: u32,
    /// Must be 0.
    pub flags: u32,
    /// Guest-physical start of the alias.
    pub guest_phys_addr: u64,
    /// Length in bytes; 0 deletes the alias.
    pub memory_size: u64,
    /// Guest-physical start of the memory the alias shows.
    pub target_phys_addr: u64,
}
