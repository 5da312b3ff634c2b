//! The process-wide `/dev/kvm` handle, opened lazily (O_CLOEXEC) on first use.

use crate::error::{Errno, Result};
use crate::ioctl;
use kvm_bindings::{kvm_cpuid2, kvm_msr_list, kvm_msrs};
use kvm_ioctls::Kvm;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};
use std::sync::OnceLock;

static KVM: OnceLock<Kvm> = OnceLock::new();

/// The shared `/dev/kvm` handle. A failed open is not cached, so a later call can succeed
/// once the device appears or permissions change.
pub fn kvm() -> Result<&'static Kvm> {
    if let Some(k) = KVM.get() {
        return Ok(k);
    }
    // Opened raw, not with Kvm::new (the C library's open() is a cancellation point:
    // src/cancel.rs).
    let fd = crate::cancel::open(c"/dev/kvm", libc::O_RDWR | libc::O_CLOEXEC)?;
    // SAFETY: `fd` is the /dev/kvm descriptor just opened, owned by nothing else; the Kvm
    // takes it over only if it wins the race below.
    let k = KVM.get_or_init(|| unsafe { Kvm::from_raw_fd(fd) });
    if k.as_raw_fd() != fd {
        // Another thread won the race: both use its handle, and ours is closed (raw, for
        // the same reason). An fd number is unique while open, so the winner's is not ours.
        // SAFETY: `fd` is ours and was not taken over.
        unsafe { crate::cancel::close(fd) };
    }
    Ok(k)
}

/// KVM_GET_API_VERSION.
pub fn api_version() -> Result<i32> {
    Ok(kvm()?.get_api_version())
}

/// KVM_CHECK_EXTENSION on /dev/kvm.
pub fn check_extension(cap: libc::c_long) -> Result<i32> {
    crate::ioctl::check_extension(kvm()?.as_raw_fd(), cap)
}

/// KVM_GET_VCPU_MMAP_SIZE.
pub fn vcpu_mmap_size() -> Result<i32> {
    let size = kvm()?.get_vcpu_mmap_size().map_err(Errno::from)?;
    crate::error::to_c_int(size)
}

/// KVM_GET_MSR_INDEX_LIST on the caller's `struct kvm_msr_list`, whose `nmsrs` says how
/// many indices fit. The kernel writes the number it has back into `nmsrs`, also when it
/// fails with E2BIG because they do not fit.
///
/// # Safety
/// `list` points at a `struct kvm_msr_list` followed by room for `nmsrs` indices.
pub unsafe fn msr_index_list(list: *mut kvm_msr_list) -> Result<()> {
    let k = kvm()?;
    // SAFETY: the kernel reads `nmsrs` and writes at most that many indices after it, as
    // the caller guarantees there is room for.
    unsafe {
        crate::ioctl::ioctl(
            k.as_raw_fd(),
            crate::ioctl::KVM_GET_MSR_INDEX_LIST,
            list as libc::c_ulong,
        )
    }?;
    Ok(())
}

/// KVM_GET_SUPPORTED_CPUID on the caller's `struct kvm_cpuid2`, whose `nent` says how
/// many entries fit. The kernel does not say how many it needs when they do not fit
/// (E2BIG); then libkvm asks again with a buffer of its own and writes that count into
/// `nent` before failing with E2BIG.
///
/// # Safety
/// `cpuid` points at a `struct kvm_cpuid2` followed by room for `nent` entries.
pub unsafe fn supported_cpuid(cpuid: *mut kvm_cpuid2) -> Result<()> {
    let k = kvm()?;
    // SAFETY: the kernel reads `nent` and writes at most that many entries after it
    // (never more than KVM_MAX_CPUID_ENTRIES), as the caller guarantees there is room for.
    let r = unsafe {
        crate::ioctl::ioctl(
            k.as_raw_fd(),
            crate::ioctl::KVM_GET_SUPPORTED_CPUID,
            cpuid as libc::c_ulong,
        )
    };
    match r {
        Err(Errno(libc::E2BIG)) => {
            // The kernel never returns more than KVM_MAX_CPUID_ENTRIES entries.
            let all = k
                .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
                .map_err(Errno::from)?;
            let needed = u32::try_from(all.as_slice().len()).map_err(|_| Errno(libc::E2BIG))?;
            // SAFETY: `nent` is the first field of the caller's struct.
            unsafe { std::ptr::addr_of_mut!((*cpuid).nent).write(needed) };
            Err(Errno(libc::E2BIG))
        }
        r => r.map(|_| ()),
    }
}

/// KVM_GET_MSR_FEATURE_INDEX_LIST on /dev/kvm, on the caller's list (`nmsrs` = room in,
/// count out; E2BIG when too small, with `nmsrs` set to the count).
///
/// # Safety
/// `list` must point at a struct kvm_msr_list with room for `nmsrs` indices.
pub unsafe fn msr_feature_index_list(list: *mut kvm_msr_list) -> Result<()> {
    let fd = kvm()?.as_raw_fd();
    // SAFETY: the caller vouches for the buffer; the kernel writes at most `nmsrs`
    // indices after the header.
    unsafe {
        ioctl::ioctl(
            fd,
            ioctl::KVM_GET_MSR_FEATURE_INDEX_LIST,
            list as libc::c_ulong,
        )
    }?;
    Ok(())
}

/// KVM_GET_MSRS on /dev/kvm: the host's values of feature MSRs. Returns how many entries
/// were read.
///
/// # Safety
/// `msrs` must point at a struct kvm_msrs followed by `nmsrs` entries.
pub unsafe fn msr_features(msrs: *mut kvm_msrs) -> Result<i32> {
    let fd = kvm()?.as_raw_fd();
    // SAFETY: as for `msr_feature_index_list`.
    unsafe { ioctl::ioctl(fd, ioctl::KVM_GET_MSRS, msrs as libc::c_ulong) }
}

/// Any ioctl on /dev/kvm except KVM_CREATE_VM and requests above 32 bits (a VM libkvm does not know about could not
/// be used with libkvm's calls; kvm_create_vm() makes them).
///
/// # Safety
/// `arg` must be what `request` expects.
pub unsafe fn system_ioctl(request: u64, arg: libc::c_ulong) -> Result<i32> {
    // The kernel takes the request as 32 bits: (1 << 32) | KVM_CREATE_VM would be
    // KVM_CREATE_VM to it.
    if request > u64::from(u32::MAX) || request == ioctl::KVM_CREATE_VM {
        return Err(Errno(libc::EINVAL));
    }
    let fd: RawFd = kvm()?.as_raw_fd();
    // SAFETY: the caller vouches for `arg`; the kernel validates pointers (EFAULT).
    unsafe { ioctl::ioctl(fd, request, arg) }
}
