//! Escape hatches: any KVM ioctl on /dev/kvm, on a libkvm VM or on the calling thread's
//! vcpu, for what libkvm does not wrap (seed 001: "userspace should work with both").

// c_ulong is u64 on x86_64 but not on every target: the casts below are not no-ops there.
#![allow(clippy::unnecessary_cast)]

use crate::current::with_current;
use crate::error::c_int;
use crate::error::Errno;
use crate::ioctl;
use crate::registry;
use crate::system;
use kvm_bindings::kvm_enable_cap;
use libc::c_int;
use libc::c_ulong;
use libc::c_void;

/// Issues `ioctl(vm, request, arg)` on VM `vm` and returns what it returns. libkvm does not
/// look at `arg`, except for KVM_ENABLE_CAP. Calls that change what libkvm tracks have their
/// own functions and are refused here with EINVAL: KVM_SET_USER_MEMORY_REGION(2)
/// (kvm_set_memory_region()), KVM_CREATE_VCPU (kvm_create_vcpu()), KVM_CREATE_IRQCHIP
/// (kvm_create_irqchip()), KVM_SET_GSI_ROUTING (kvm_set_gsi_routing(), which keeps the
/// table for kvm_save_vm()), KVM_ENABLE_CAP of KVM_CAP_SPLIT_IRQCHIP or KVM_CAP_X2APIC_API
/// (kvm_enable_cap()) and of the dirty ring (KVM_CAP_DIRTY_LOG_RING*: kvm_enable_dirty_ring());
/// so is a request with any of bits 63:32 set (the kernel's ioctl number is 32
/// bits, so such a request would reach it as another one). Other capabilities are enabled
/// as kvm_enable_cap() enables them (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 recorded, refused
/// with KVM_DIRTY_LOG_INITIALLY_SET once the dirty ring is on). Errors: EBADF (not a VM), EINVAL
/// (a refused request), EFAULT (KVM_ENABLE_CAP with `arg` NULL), and the ioctl's own.
#[no_mangle]
pub extern "C" fn kvm_vm_ioctl(vm: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        let request = request as u64;
        if request > u64::from(u32::MAX) || RESERVED_VM.contains(&request) {
            return Err(Errno(libc::EINVAL));
        }
        if request == ioctl::KVM_ENABLE_CAP {
            // The kernel is given libkvm's own copy of what was checked, so another thread
            // cannot change `cap` in between.
            if arg.is_null() {
                return Err(Errno(libc::EFAULT));
            }
            // SAFETY: non-NULL: the caller promises a struct kvm_enable_cap, as for the
            // raw ioctl (which does not need it aligned, hence the unaligned read).
            let cap = unsafe { arg.cast::<kvm_enable_cap>().read_unaligned() };
            if crate::vm::hatch_refuses_cap(cap.cap) {
                return Err(Errno(libc::EINVAL));
            }
            // As kvm_enable_cap() does it: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 is recorded
            // (the dirty ring's kvm_get_dirty_log keeps or clears the log by it).
            return vm.enable_cap(&cap).map(|()| 0);
        }
        // SAFETY: `arg` is the caller's, passed through as the raw ioctl would take it; the
        // kernel validates it (EFAULT for a bad pointer).
        unsafe { ioctl::ioctl(vm.raw_fd(), request, arg as c_ulong) }
    })
}

/// Issues `ioctl(vcpu, request, arg)` on the calling thread's vcpu and returns what it
/// returns. Register state libkvm caches from the run area is written back before and
/// re-read after, so libkvm's calls and raw ioctls can be mixed freely. Refused with
/// EINVAL because libkvm owns what they set: KVM_RUN (use kvm_run(), which keeps the kick
/// working), KVM_SET_SIGNAL_MASK (use kvm_set_signal_mask(), which keeps the kick
/// signal unblocked) and KVM_INTERRUPT (use kvm_interrupt(), which holds vectors until the
/// guest can take them and knows what it injected); so is a request with any of bits 63:32 set (the kernel's ioctl
/// number is 32 bits). Errors: ESRCH (no vcpu), EINVAL (a refused request), and the
/// ioctl's own.
#[no_mangle]
pub extern "C" fn kvm_vcpu_ioctl(request: c_ulong, arg: *mut c_void) -> c_int {
    c_int(|| {
        if request as u64 > u64::from(u32::MAX) || RESERVED_VCPU.contains(&(request as u64)) {
            return Err(Errno(libc::EINVAL));
        }
        with_current(|v| {
            v.writing(|_| {
                // SAFETY: as for kvm_vm_ioctl; the fd is the calling thread's own vcpu.
                unsafe { ioctl::ioctl(v.raw_fd(), request as u64, arg as c_ulong) }
            })
        })
    })
}

/// Escape hatch for /dev/kvm: issues `ioctl(kvm_fd, request, arg)` on libkvm's own
/// /dev/kvm handle and returns what it returns, for system ioctls libkvm does not wrap
/// (KVM_X86_GET_MCE_CAP_SUPPORTED, KVM_GET_SUPPORTED_HV_CPUID, KVM_GET_DEVICE_ATTR, ...).
/// KVM_CREATE_VM is refused with EINVAL (use kvm_create_vm()), and so is a request with
/// any of bits 63:32 set (the kernel's ioctl number is 32 bits, so such a request would
/// reach it as another one). Errors: EINVAL (KVM_CREATE_VM or bits 63:32 set), those of
/// opening /dev/kvm, and the ioctl's own.
#[no_mangle]
pub extern "C" fn kvm_system_ioctl(request: c_ulong, arg: *mut c_void) -> c_int {
    c_int(|| {
        // SAFETY: `arg` is the caller's, passed through as the raw ioctl would take it.
        unsafe { system::system_ioctl(request as u64, arg as c_ulong) }
    })
}

/// vcpu ioctls libkvm must issue itself, refused by kvm_vcpu_ioctl().
const RESERVED_VCPU: [u64; 3] = [
    ioctl::KVM_RUN,
    ioctl::KVM_SET_SIGNAL_MASK,
    ioctl::KVM_INTERRUPT,
];

/// VM ioctls whose effect libkvm must know about, refused by kvm_vm_ioctl().
const RESERVED_VM: [u64; 5] = [
    ioctl::KVM_SET_USER_MEMORY_REGION,
    ioctl::KVM_SET_USER_MEMORY_REGION2,
    ioctl::KVM_CREATE_VCPU,
    ioctl::KVM_CREATE_IRQCHIP,
    ioctl::KVM_SET_GSI_ROUTING,
];
