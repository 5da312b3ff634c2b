//! ioctl numbers for the calls libkvm issues itself (kvm-ioctls keeps its numbers
//! private), and one helper that issues them in the crate's single error pattern.

// Not every direction is used by every call set yet.
#![allow(dead_code)]

use crate::error::{check, Result};
use std::os::unix::io::RawFd;

const KVMIO: u64 = 0xAE;
const NONE: u64 = 0;
const WRITE: u64 = 1;
const READ: u64 = 2;

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
}

/// `_IO(KVMIO, nr)`.
pub const fn io(nr: u64) -> u64 {
    ioc(NONE, nr, 0)
}
/// `_IOW(KVMIO, nr, T)`.
pub const fn iow<T>(nr: u64) -> u64 {
    ioc(WRITE, nr, std::mem::size_of::<T>())
}
/// `_IOR(KVMIO, nr, T)`.
pub const fn ior<T>(nr: u64) -> u64 {
    ioc(READ, nr, std::mem::size_of::<T>())
}
/// `_IOWR(KVMIO, nr, T)`.
pub const fn iowr<T>(nr: u64) -> u64 {
    ioc(READ | WRITE, nr, std::mem::size_of::<T>())
}

/// KVM_RUN: issued directly so the run path holds no Rust reference to `kvm_run`.
pub(crate) const KVM_RUN: u64 = io(0x80);
/// KVM_CREATE_VCPU: issued directly so that a vcpu whose run area cannot be mapped is
/// kept (src/vm.rs).
pub(crate) const KVM_CREATE_VCPU: u64 = io(0x41);
/// KVM_SET_SIGNAL_MASK (`struct kvm_signal_mask` is a 4-byte header before the sigset).
pub(crate) const KVM_SET_SIGNAL_MASK: u64 = iow::<u32>(0x8b);

/// Issues `ioctl(fd, request, arg)`, returning its non-negative result or the errno.
///
/// # Safety
/// `arg` must be what `request` expects: a pointer to a live object of the size the
/// request encodes (readable and/or writable as its direction says), or a plain value.
pub unsafe fn ioctl(fd: RawFd, request: u64, arg: libc::c_ulong) -> Result<libc::c_int> {
    // SAFETY: the caller guarantees `arg` matches `request`; a wrong fd only makes the
    // kernel return EBADF or ENOTTY.
    check(unsafe { libc::ioctl(fd, request as libc::c_ulong, arg) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::{kvm_regs, kvm_userspace_memory_region};

    #[test]
    fn numbers_match_the_kernel_headers() {
        assert_eq!(KVM_RUN, 0xAE80);
        assert_eq!(io(0x01), 0xAE01); // KVM_CREATE_VM
        assert_eq!(KVM_CREATE_VCPU, 0xAE41);
        assert_eq!(ior::<kvm_regs>(0x81), 0x8090_AE81); // KVM_GET_REGS
        assert_eq!(iow::<kvm_regs>(0x82), 0x4090_AE82); // KVM_SET_REGS
        assert_eq!(iow::<kvm_userspace_memory_region>(0x46), 0x4020_AE46);
        assert_eq!(iowr::<[u8; 8]>(0x02), 0xC008_AE02);
    }

    #[test]
    fn a_bad_fd_is_ebadf() {
        // SAFETY: KVM_RUN takes no argument.
        let r = unsafe { ioctl(-1, KVM_RUN, 0) };
        assert_eq!(r, Err(crate::Errno(libc::EBADF)));
    }
}
