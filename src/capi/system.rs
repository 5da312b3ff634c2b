//! Calls on /dev/kvm itself.

use crate::error::c_int;
use crate::registry;
use crate::system;
use libc::{c_int, c_long};

/// Returns the KVM API version (12 on every kernel since 2.6.22), or -1 with errno set if
/// /dev/kvm cannot be opened (ENOENT, EACCES, ...).
#[no_mangle]
pub extern "C" fn kvm_get_api_version() -> c_int {
    c_int(system::api_version)
}

/// Asks whether capability `cap` (a KVM_CAP_* constant) is available: returns 0 if not, a
/// positive value (often a limit) if so. `vm` is a VM from kvm_create_vm() to ask about
/// that VM, or -1 to ask /dev/kvm itself. Errors: EBADF if `vm` is neither -1 nor a libkvm
/// VM.
#[no_mangle]
pub extern "C" fn kvm_check_extension(vm: c_int, cap: c_long) -> c_int {
    c_int(|| {
        if vm == -1 {
            system::check_extension(cap)
        } else {
            registry::vm(vm)?.check_extension(cap)
        }
    })
}

/// Returns the size in bytes of a vcpu's mmap()ed run area (struct kvm_run and the data
/// that follows it), or -1 with errno set.
#[no_mangle]
pub extern "C" fn kvm_get_vcpu_mmap_size() -> c_int {
    c_int(system::vcpu_mmap_size)
}
