//! Calls on /dev/kvm itself: the API version, capabilities, and what the host offers
//! (MSR lists, supported CPUID, feature MSRs).

use crate::capi::output;
use crate::error::c_int;
use crate::error::Errno;
use crate::registry;
use crate::system;
use kvm_bindings::kvm_cpuid2;
use kvm_bindings::kvm_msr_list;
use kvm_bindings::kvm_msrs;
use libc::c_int;
use libc::c_long;

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

/// Fills `list` with the indices of the MSRs KVM can save and restore (for
/// kvm_get_msrs() and kvm_set_msrs()). On input `list->nmsrs` is how many indices
/// `list->indices` has room for; on return it is how many there are. Errors: EFAULT
/// (`list` NULL), E2BIG (they do not fit: `list->nmsrs` is set to the number needed),
/// and those of opening /dev/kvm.
#[no_mangle]
pub extern "C" fn kvm_get_msr_index_list(list: *mut kvm_msr_list) -> c_int {
    c_int(|| {
        if list.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: the caller provides room for `nmsrs` indices, as documented.
        unsafe { system::msr_index_list(list) }?;
        Ok(0)
    })
}

/// Fills `cpuid` with the CPUID leaves KVM can give a guest on this host, each with the
/// bits it supports (a starting point for kvm_set_cpuid()). On input `cpuid->nent` is
/// how many entries `cpuid->entries` has room for; on return it is how many were
/// written. Errors: EFAULT (`cpuid` NULL), E2BIG (they do not fit: `cpuid->nent` is set
/// to the number needed), and those of opening /dev/kvm.
#[no_mangle]
pub extern "C" fn kvm_get_supported_cpuid(cpuid: *mut kvm_cpuid2) -> c_int {
    c_int(|| {
        if cpuid.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: the caller provides room for `nent` entries, as documented.
        unsafe { system::supported_cpuid(cpuid) }?;
        Ok(0)
    })
}

/// Lists the feature MSRs of the host (the read-only MSRs describing what KVM can offer a
/// guest, such as IA32_ARCH_CAPABILITIES or the VMX capability MSRs). Set `list->nmsrs` to
/// the room in `list->indices`; on return it holds the count. Errors: EFAULT (`list`
/// NULL), E2BIG (too little room: `list->nmsrs` is set to the count needed), and those of
/// opening /dev/kvm.
#[no_mangle]
pub extern "C" fn kvm_get_msr_feature_index_list(list: *mut kvm_msr_list) -> c_int {
    c_int(|| {
        output(list)?;
        // SAFETY: non-NULL; the caller promises `nmsrs` indices of room, as for the ioctl.
        unsafe { system::msr_feature_index_list(list) }?;
        Ok(0)
    })
}

/// Reads the host's values of the feature MSRs named in `msrs->entries[i].index` (`nmsrs`
/// entries), as KVM offers them to guests. Returns how many were read: fewer than
/// `nmsrs` means entry number (return value) is not a feature MSR. Errors: EFAULT (`msrs`
/// NULL), E2BIG (`nmsrs` above the kernel's limit), and those of opening /dev/kvm.
#[no_mangle]
pub extern "C" fn kvm_get_msr_features(msrs: *mut kvm_msrs) -> c_int {
    c_int(|| {
        output(msrs)?;
        // SAFETY: non-NULL; the caller promises `nmsrs` entries, as for the ioctl.
        unsafe { system::msr_features(msrs) }
    })
}
