//! The process-wide `/dev/kvm` handle, opened lazily (O_CLOEXEC) on first use.

use crate::error::{Errno, Result};
use kvm_ioctls::Kvm;
use std::os::unix::io::AsRawFd;
use std::sync::OnceLock;

static KVM: OnceLock<Kvm> = OnceLock::new();

/// The shared `/dev/kvm` handle. A failed open is not cached, so a later call can succeed
/// once the device appears or permissions change.
pub fn kvm() -> Result<&'static Kvm> {
    if let Some(k) = KVM.get() {
        return Ok(k);
    }
    // kvm-ioctls opens with O_RDWR | O_CLOEXEC.
    let k = Kvm::new().map_err(Errno::from)?;
    // If two threads race here, the loser's handle is dropped (closed) and both use the
    // winner's.
    Ok(KVM.get_or_init(|| k))
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
