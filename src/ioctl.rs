//! The request table: every ioctl number libkvm issues itself (kvm-ioctls keeps its
//! numbers private), one test of them all, and the one way to issue them, in the crate's
//! single error pattern. A new ioctl wrapper starts here (ARCHITECTURE.md).

use crate::error::{check, Result};
use kvm_bindings::{
    kvm_clear_dirty_log, kvm_coalesced_mmio_zone, kvm_cpuid2, kvm_dirty_log, kvm_enable_cap,
    kvm_interrupt, kvm_ioeventfd, kvm_irq_level, kvm_irq_routing, kvm_irqfd, kvm_msi, kvm_msr_list,
    kvm_msrs, kvm_nested_state, kvm_one_reg, kvm_sregs2, kvm_userspace_memory_region,
    kvm_userspace_memory_region2, kvm_xsave,
};
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

// The request table: every ioctl libkvm issues itself (kvm-ioctls issues the rest), by
// the fd it goes to, in the kernel's order. Tested once, below.

// Ioctls for /dev/kvm.
/// KVM_CREATE_VM.
pub(crate) const KVM_CREATE_VM: u64 = io(0x01);
/// KVM_GET_MSR_INDEX_LIST.
pub(crate) const KVM_GET_MSR_INDEX_LIST: u64 = iowr::<kvm_msr_list>(0x02);
/// KVM_CHECK_EXTENSION (also on a VM fd); see [`check_extension`].
pub(crate) const KVM_CHECK_EXTENSION: u64 = io(0x03);
/// KVM_GET_SUPPORTED_CPUID.
pub(crate) const KVM_GET_SUPPORTED_CPUID: u64 = iowr::<kvm_cpuid2>(0x05);
/// KVM_GET_MSR_FEATURE_INDEX_LIST.
pub(crate) const KVM_GET_MSR_FEATURE_INDEX_LIST: u64 = iowr::<kvm_msr_list>(0x0a);

// Ioctls for VM fds.
/// KVM_CREATE_VCPU: issued directly so that a vcpu whose run area cannot be mapped is
/// kept (src/vm.rs).
pub(crate) const KVM_CREATE_VCPU: u64 = io(0x41);
/// KVM_GET_DIRTY_LOG.
pub(crate) const KVM_GET_DIRTY_LOG: u64 = iow::<kvm_dirty_log>(0x42);
/// KVM_SET_USER_MEMORY_REGION.
pub(crate) const KVM_SET_USER_MEMORY_REGION: u64 = iow::<kvm_userspace_memory_region>(0x46);
/// KVM_SET_USER_MEMORY_REGION2.
pub(crate) const KVM_SET_USER_MEMORY_REGION2: u64 = iow::<kvm_userspace_memory_region2>(0x49);
/// KVM_CREATE_IRQCHIP.
pub(crate) const KVM_CREATE_IRQCHIP: u64 = io(0x60);
/// KVM_IRQ_LINE_STATUS.
pub(crate) const KVM_IRQ_LINE_STATUS: u64 = iowr::<kvm_irq_level>(0x67);
/// KVM_REGISTER_COALESCED_MMIO.
pub(crate) const KVM_REGISTER_COALESCED_MMIO: u64 = iow::<kvm_coalesced_mmio_zone>(0x67);
/// KVM_UNREGISTER_COALESCED_MMIO.
pub(crate) const KVM_UNREGISTER_COALESCED_MMIO: u64 = iow::<kvm_coalesced_mmio_zone>(0x68);
/// KVM_SET_GSI_ROUTING.
pub(crate) const KVM_SET_GSI_ROUTING: u64 = iow::<kvm_irq_routing>(0x6a);
/// KVM_IRQFD.
pub(crate) const KVM_IRQFD: u64 = iow::<kvm_irqfd>(0x76);
/// KVM_IOEVENTFD.
pub(crate) const KVM_IOEVENTFD: u64 = iow::<kvm_ioeventfd>(0x79);
/// KVM_ENABLE_CAP (also on a vcpu fd).
pub(crate) const KVM_ENABLE_CAP: u64 = iow::<kvm_enable_cap>(0xa3);
/// KVM_SIGNAL_MSI.
pub(crate) const KVM_SIGNAL_MSI: u64 = iow::<kvm_msi>(0xa5);
/// KVM_CLEAR_DIRTY_LOG.
pub(crate) const KVM_CLEAR_DIRTY_LOG: u64 = iowr::<kvm_clear_dirty_log>(0xc0);
/// KVM_RESET_DIRTY_RINGS.
pub(crate) const KVM_RESET_DIRTY_RINGS: u64 = io(0xc7);
/// KVM_GET_STATS_FD (also on a vcpu fd): kvm-ioctls has no wrapper for it.
pub(crate) const KVM_GET_STATS_FD: u64 = io(0xce);

// Ioctls for vcpu fds.
/// KVM_RUN: issued directly so the run path holds no Rust reference to `kvm_run`.
pub(crate) const KVM_RUN: u64 = io(0x80);
/// KVM_INTERRUPT.
pub(crate) const KVM_INTERRUPT: u64 = iow::<kvm_interrupt>(0x86);
/// KVM_GET_MSRS (also on /dev/kvm, for feature MSRs).
pub(crate) const KVM_GET_MSRS: u64 = iowr::<kvm_msrs>(0x88);
/// KVM_SET_MSRS.
pub(crate) const KVM_SET_MSRS: u64 = iow::<kvm_msrs>(0x89);
/// KVM_SET_SIGNAL_MASK (`struct kvm_signal_mask` is a 4-byte header before the sigset).
pub(crate) const KVM_SET_SIGNAL_MASK: u64 = iow::<u32>(0x8b);
/// KVM_SET_CPUID2.
pub(crate) const KVM_SET_CPUID2: u64 = iow::<kvm_cpuid2>(0x90);
/// KVM_GET_CPUID2.
pub(crate) const KVM_GET_CPUID2: u64 = iowr::<kvm_cpuid2>(0x91);
/// KVM_GET_TSC_KHZ.
pub(crate) const KVM_GET_TSC_KHZ: u64 = io(0xa3);
/// KVM_GET_XSAVE.
pub(crate) const KVM_GET_XSAVE: u64 = ior::<kvm_xsave>(0xa4);
/// KVM_SET_XSAVE.
pub(crate) const KVM_SET_XSAVE: u64 = iow::<kvm_xsave>(0xa5);
/// KVM_GET_ONE_REG.
pub(crate) const KVM_GET_ONE_REG: u64 = iow::<kvm_one_reg>(0xab);
/// KVM_SET_ONE_REG.
pub(crate) const KVM_SET_ONE_REG: u64 = iow::<kvm_one_reg>(0xac);
/// KVM_KVMCLOCK_CTRL.
pub(crate) const KVM_KVMCLOCK_CTRL: u64 = io(0xad);
/// KVM_GET_NESTED_STATE.
pub(crate) const KVM_GET_NESTED_STATE: u64 = iowr::<kvm_nested_state>(0xbe);
/// KVM_SET_NESTED_STATE.
pub(crate) const KVM_SET_NESTED_STATE: u64 = iow::<kvm_nested_state>(0xbf);
/// KVM_GET_SREGS2.
pub(crate) const KVM_GET_SREGS2: u64 = ior::<kvm_sregs2>(0xcc);
/// KVM_SET_SREGS2.
pub(crate) const KVM_SET_SREGS2: u64 = iow::<kvm_sregs2>(0xcd);
/// KVM_GET_XSAVE2.
pub(crate) const KVM_GET_XSAVE2: u64 = ior::<kvm_xsave>(0xcf);

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

/// `ioctl(fd, request, arg)` for a request that reads (at most) the one `T` at `arg`.
///
/// # Safety
/// `request` must take a pointer to one `T` (or less) and only read it.
pub unsafe fn ioctl_with_ref<T>(fd: RawFd, request: u64, arg: &T) -> Result<libc::c_int> {
    // SAFETY: the caller guarantees that `request` reads at most one `T`, which `arg` is,
    // alive across the call.
    unsafe { ioctl(fd, request, arg as *const T as libc::c_ulong) }
}

/// `ioctl(fd, request, arg)` for a request that reads and/or writes (at most) the one `T`
/// at `arg`.
///
/// # Safety
/// `request` must take a pointer to one `T` (or less), and any bytes it writes there must
/// make a valid `T`.
pub unsafe fn ioctl_with_mut<T>(fd: RawFd, request: u64, arg: &mut T) -> Result<libc::c_int> {
    // SAFETY: as the caller guarantees; `arg` is exclusively borrowed across the call.
    unsafe { ioctl(fd, request, arg as *mut T as libc::c_ulong) }
}

/// KVM_CHECK_EXTENSION on `fd` (/dev/kvm or a VM): the kernel's answer, or the errno.
pub fn check_extension(fd: RawFd, cap: libc::c_long) -> Result<libc::c_int> {
    // SAFETY: KVM_CHECK_EXTENSION takes its argument by value; a wrong fd only makes the
    // kernel return EBADF or ENOTTY.
    unsafe { ioctl(fd, KVM_CHECK_EXTENSION, cap as libc::c_ulong) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number of the table, as <linux/kvm.h> (x86-64) defines it.
    #[test]
    fn numbers_match_the_kernel_headers() {
        let table = [
            (KVM_CREATE_VM, 0xae01),
            (KVM_GET_MSR_INDEX_LIST, 0xc004_ae02),
            (KVM_CHECK_EXTENSION, 0xae03),
            (KVM_GET_SUPPORTED_CPUID, 0xc008_ae05),
            (KVM_GET_MSR_FEATURE_INDEX_LIST, 0xc004_ae0a),
            (KVM_CREATE_VCPU, 0xae41),
            (KVM_GET_DIRTY_LOG, 0x4010_ae42),
            (KVM_SET_USER_MEMORY_REGION, 0x4020_ae46),
            (KVM_SET_USER_MEMORY_REGION2, 0x40a0_ae49),
            (KVM_CREATE_IRQCHIP, 0xae60),
            (KVM_IRQ_LINE_STATUS, 0xc008_ae67),
            (KVM_REGISTER_COALESCED_MMIO, 0x4010_ae67),
            (KVM_UNREGISTER_COALESCED_MMIO, 0x4010_ae68),
            (KVM_SET_GSI_ROUTING, 0x4008_ae6a),
            (KVM_IRQFD, 0x4020_ae76),
            (KVM_IOEVENTFD, 0x4040_ae79),
            (KVM_ENABLE_CAP, 0x4068_aea3),
            (KVM_SIGNAL_MSI, 0x4020_aea5),
            (KVM_CLEAR_DIRTY_LOG, 0xc018_aec0),
            (KVM_RESET_DIRTY_RINGS, 0xaec7),
            (KVM_GET_STATS_FD, 0xaece),
            (KVM_RUN, 0xae80),
            (KVM_INTERRUPT, 0x4004_ae86),
            (KVM_GET_MSRS, 0xc008_ae88),
            (KVM_SET_MSRS, 0x4008_ae89),
            (KVM_SET_SIGNAL_MASK, 0x4004_ae8b),
            (KVM_SET_CPUID2, 0x4008_ae90),
            (KVM_GET_CPUID2, 0xc008_ae91),
            (KVM_GET_TSC_KHZ, 0xaea3),
            (KVM_GET_XSAVE, 0x9000_aea4),
            (KVM_SET_XSAVE, 0x5000_aea5),
            (KVM_GET_ONE_REG, 0x4010_aeab),
            (KVM_SET_ONE_REG, 0x4010_aeac),
            (KVM_KVMCLOCK_CTRL, 0xaead),
            (KVM_GET_NESTED_STATE, 0xc080_aebe),
            (KVM_SET_NESTED_STATE, 0x4080_aebf),
            (KVM_GET_SREGS2, 0x8140_aecc),
            (KVM_SET_SREGS2, 0x4140_aecd),
            (KVM_GET_XSAVE2, 0x9000_aecf),
        ];
        for (i, (got, want)) in table.iter().enumerate() {
            assert_eq!(*got, *want, "entry {i}: {got:#x}, want {want:#x}");
        }
        // The encoding itself, against numbers kvm-ioctls issues for libkvm.
        assert_eq!(ior::<kvm_bindings::kvm_regs>(0x81), 0x8090_AE81); // KVM_GET_REGS
        assert_eq!(iow::<kvm_bindings::kvm_regs>(0x82), 0x4090_AE82); // KVM_SET_REGS
    }

    #[test]
    fn check_extension_of_a_bad_fd_is_ebadf() {
        assert_eq!(check_extension(-1, 0), Err(crate::Errno(libc::EBADF)));
    }

    #[test]
    fn a_bad_fd_is_ebadf() {
        // SAFETY: KVM_RUN takes no argument.
        let r = unsafe { ioctl(-1, KVM_RUN, 0) };
        assert_eq!(r, Err(crate::Errno(libc::EBADF)));
    }
}
