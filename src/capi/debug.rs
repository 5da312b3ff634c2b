//! Debugging the guest on the calling thread's vcpu: guest debug controls, debug
//! registers and address translation. All fail with ESRCH on a thread that has no vcpu.

use crate::capi::{vcpu_get, vcpu_set};
use crate::current::with_current;
use crate::error::c_int;
use crate::error::Errno;
use crate::registry;
use kvm_bindings::kvm_debugregs;
use kvm_bindings::kvm_guest_debug;
use libc::c_int;

/// Sets the guest debugging state of the calling thread's vcpu (KVM_SET_GUEST_DEBUG,
/// the 2007 KVM_DEBUG_GUEST): `dbg->control` is 0 (off) or KVM_GUESTDBG_ENABLE with
/// KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_SW_BP, KVM_GUESTDBG_USE_HW_BP, ...;
/// `dbg->arch.debugreg` holds DR0-DR3 and DR7 for hardware breakpoints. Debug events then
/// end kvm_run() with KVM_EXIT_DEBUG (details in kvm_run_area()->debug). Errors: ESRCH
/// (no vcpu), EFAULT (`dbg` NULL), EINVAL (unknown or unsupported control bits).
#[no_mangle]
pub extern "C" fn kvm_debug_guest(dbg: *const kvm_guest_debug) -> c_int {
    vcpu_set(dbg, |v, a| v.set_guest_debug(a))
}

/// Reads the debug registers DR0-DR3, DR6 and DR7 of the calling thread's vcpu. Errors:
/// ESRCH (no vcpu), EFAULT (`regs` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_debugregs(regs: *mut kvm_debugregs) -> c_int {
    vcpu_get(regs, |v| v.get_debugregs())
}

/// Sets the debug registers of the calling thread's vcpu. Errors: ESRCH (no vcpu), EFAULT
/// (`regs` NULL), EINVAL (nonzero flags, or reserved upper bits set in DR6 or DR7).
#[no_mangle]
pub extern "C" fn kvm_set_debugregs(regs: *const kvm_debugregs) -> c_int {
    vcpu_set(regs, |v, a| v.set_debugregs(a))
}

/// Translates the guest-virtual (linear) address `linear_address` through the calling
/// thread's vcpu's current paging mode and page tables. `*valid` is 1 if the address is
/// mapped, with its guest-physical address in `*physical_address`; `*writeable` is 1 if
/// the page tables allow writes (R/W set at every level), `*usermode` 1 if they allow
/// user-mode (CPL 3) access (U/S set at every level). With paging off the address is its
/// own physical address, writeable and user-accessible. For an unmapped address `*valid`,
/// `*writeable` and `*usermode` are 0 and `*physical_address` is unspecified. Errors:
/// ESRCH (no vcpu), EFAULT (a pointer is NULL), EAGAIN (the guest's page tables changed
/// during the call).
#[no_mangle]
pub extern "C" fn kvm_translate(
    linear_address: u64,
    physical_address: *mut u64,
    valid: *mut u8,
    writeable: *mut u8,
    usermode: *mut u8,
) -> c_int {
    c_int(|| {
        // Raw pointers only: a caller may pass the same pointer twice, and four `&mut`
        // to one object would alias.
        if physical_address.is_null()
            || valid.is_null()
            || writeable.is_null()
            || usermode.is_null()
        {
            return Err(Errno(libc::EFAULT));
        }
        let tr = with_current(|vcpu| {
            // The VM cannot go while its vcpu is owned (kvm_destroy_vm: EBUSY).
            let vm = registry::vm(vcpu.vm_fd())?;
            vcpu.translate(linear_address, |gpa, len| vm.read_guest(gpa, len))
        })?;
        // SAFETY: non-NULL; the caller promises each points at a writable object of its
        // type for the call (aliasing pointers are fine: plain writes, one after another).
        unsafe {
            physical_address.write(tr.physical_address);
            valid.write(tr.valid);
            writeable.write(tr.writeable);
            usermode.write(tr.usermode);
        }
        Ok(0)
    })
}
