//! The process-wide `/dev/kvm` handle, opened lazily (O_CLOEXEC) on first use.

use crate::error::{Errno, Result};
use kvm_bindings::{kvm_cpuid2, kvm_msr_list};
use kvm_ioctls::Kvm;
use std::os::unix::io::{AsRawFd, FromRawFd};
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
    let k = kvm()?;
    // SAFETY: KVM_CHECK_EXTENSION takes its argument by value.
    unsafe { crate::ioctl::ioctl(k.as_raw_fd(), crate::ioctl::io(0x03), cap as libc::c_ulong) }
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
            crate::ioctl::iowr::<kvm_msr_list>(0x02),
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
            crate::ioctl::iowr::<kvm_cpuid2>(0x05),
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
