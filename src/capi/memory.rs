//! Guest memory slots and the bounds-checked way to reach them.

use crate::error::{c_int, c_ptr, Errno};
use crate::registry;
use libc::{c_int, c_uint, c_void};

/// Gives VM `vm` `size` bytes of zeroed memory, allocated and owned by libkvm, at
/// guest-physical `guest_phys_addr`, as memory slot `slot`. `flags`: 0 or
/// KVM_MEM_LOG_DIRTY_PAGES and/or KVM_MEM_READONLY. Size 0 deletes the slot (and frees its
/// memory). Calling it again for an existing slot with the same size changes its flags or
/// guest address, keeping its contents. Errors: EBADF (not a VM), EINVAL (address or size
/// not a multiple of 4096, range wrapping past 2^64, unknown flags, slot out of range, a
/// different size for an existing slot), EEXIST (overlaps another slot), ENOENT (deleting
/// a slot that does not exist), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_set_memory_region(
    vm: c_int,
    slot: c_uint,
    flags: c_uint,
    guest_phys_addr: u64,
    size: u64,
) -> c_int {
    c_int(|| {
        registry::vm(vm)?.set_memory_region(slot, flags, guest_phys_addr, size, None)?;
        Ok(0)
    })
}

/// Like kvm_set_memory_region(), but the guest memory is the caller's, at host address
/// `host` (page-aligned, at least `size` bytes, kept mapped until the slot is deleted or
/// the VM destroyed). libkvm never frees it. Errors: those of kvm_set_memory_region(),
/// EFAULT (`host` NULL), EINVAL (`host` not page-aligned, or a different `host` for an
/// existing slot).
#[no_mangle]
pub extern "C" fn kvm_set_user_memory_region(
    vm: c_int,
    slot: c_uint,
    flags: c_uint,
    guest_phys_addr: u64,
    size: u64,
    host: *mut c_void,
) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        if host.is_null() && size != 0 {
            return Err(Errno(libc::EFAULT));
        }
        let host = if size == 0 { None } else { Some(host.cast()) };
        vm.set_memory_region(slot, flags, guest_phys_addr, size, host)?;
        Ok(0)
    })
}

/// Returns the host address of guest-physical `[guest_phys_addr, guest_phys_addr + len)`.
/// The whole range must lie inside one memory slot: a guest-chosen address never yields a
/// pointer outside guest memory. The pointer is valid until that slot is deleted or the VM
/// destroyed. Errors (NULL returned): EBADF (not a VM), EFAULT (range not inside one slot,
/// `len` 0, or the range wraps past 2^64).
#[no_mangle]
pub extern "C" fn kvm_guest_memory(vm: c_int, guest_phys_addr: u64, len: u64) -> *mut c_void {
    c_ptr(|| Ok(registry::vm(vm)?.guest_memory(guest_phys_addr, len)?.cast()))
}
