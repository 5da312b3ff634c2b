//! MSRs, CPUID, FPU, guest debugging, address translation and interrupts of the calling
//! thread's vcpu. All fail with ESRCH on a thread that has no vcpu.

use super::{input, output};
use crate::current::with_current;
use crate::error::{c_int, Errno};
use crate::registry;
use kvm_bindings::{kvm_cpuid2, kvm_fpu, kvm_guest_debug, kvm_msrs};
use libc::c_int;

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

/// Raises interrupt vector `irq` (0-255) on the calling thread's vcpu. Without
/// in-kernel local APICs the vector is injected with KVM_INTERRUPT as soon as the guest can
/// take it (interrupts enabled, no interrupt shadow): at once, or, if it cannot yet,
/// libkvm keeps it pending and injects it when the guest opens an interrupt window
/// during a later kvm_run(), without returning from kvm_run() for that (several pending
/// vectors go highest first; raising a pending vector again has no further effect). With
/// in-kernel local APICs (kvm_create_irqchip(), or a split irqchip: KVM_CAP_SPLIT_IRQCHIP
/// with kvm_enable_cap()) it is sent to the vcpu's local APIC as a
/// fixed-delivery message-signalled interrupt to its APIC ID (the full 32-bit x2APIC ID
/// when KVM_CAP_X2APIC_API was enabled with 32-bit IDs and the guest's APIC is in x2APIC
/// mode); the guest must have enabled its APIC.
/// Errors: ESRCH (no vcpu), EINVAL (`irq` above 255), EAGAIN (in-kernel APICs: the
/// vcpu's local APIC did not accept it, e.g. because the guest has not enabled it).
#[no_mangle]
pub extern "C" fn kvm_interrupt(irq: u32) -> c_int {
    c_int(|| {
        with_current(|v| v.interrupt(irq))?;
        Ok(0)
    })
}

/// Sets the guest debugging state of the calling thread's vcpu (KVM_SET_GUEST_DEBUG,
/// the 2007 KVM_DEBUG_GUEST): `dbg->control` is 0 (off) or KVM_GUESTDBG_ENABLE with
/// KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_SW_BP, KVM_GUESTDBG_USE_HW_BP, ...;
/// `dbg->arch.debugreg` holds DR0-DR3 and DR7 for hardware breakpoints. Debug events then
/// end kvm_run() with KVM_EXIT_DEBUG (details in kvm_run_area()->debug). Errors: ESRCH
/// (no vcpu), EFAULT (`dbg` NULL), EINVAL (unknown or unsupported control bits).
#[no_mangle]
pub extern "C" fn kvm_debug_guest(dbg: *const kvm_guest_debug) -> c_int {
    c_int(|| {
        let d = input(dbg)?;
        with_current(|v| v.set_guest_debug(d))?;
        Ok(0)
    })
}

/// Reads MSRs of the calling thread's vcpu: for each of the first `msrs->nmsrs` entries
/// of `msrs->entries`, the value of MSR `index` into `data`. Returns how many were read,
/// in order; reading stops at the first MSR KVM does not know (see
/// kvm_get_msr_index_list()). Errors: ESRCH (no vcpu), EFAULT (`msrs` NULL), E2BIG
/// (`nmsrs` above the kernel's limit, 255 MSRs per call on current kernels).
#[no_mangle]
pub extern "C" fn kvm_get_msrs(msrs: *mut kvm_msrs) -> c_int {
    c_int(|| {
        if msrs.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: the caller provides `nmsrs` entries, as documented.
        with_current(|v| unsafe { v.get_msrs(msrs) })
    })
}

/// Writes MSRs of the calling thread's vcpu: MSR `index` := `data` for each of the first
/// `msrs->nmsrs` entries, in order. Returns how many were written; writing stops at the
/// first MSR KVM does not know or refuses the value of. Errors: ESRCH (no vcpu), EFAULT
/// (`msrs` NULL), E2BIG (`nmsrs` above the kernel's limit).
#[no_mangle]
pub extern "C" fn kvm_set_msrs(msrs: *const kvm_msrs) -> c_int {
    c_int(|| {
        if msrs.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: the caller provides `nmsrs` entries, as documented.
        with_current(|v| unsafe { v.set_msrs(msrs) })
    })
}

/// Sets the CPUID leaves the guest on the calling thread's vcpu sees: the first
/// `cpuid->nent` entries of `cpuid->entries` (KVM_SET_CPUID2, the 2007 KVM_SET_CPUID),
/// usually kvm_get_supported_cpuid()'s output, adjusted. KVM refuses changes once the vcpu
/// has run (the first kvm_run()): then only the identical table is accepted. Errors:
/// ESRCH (no vcpu), EFAULT (`cpuid` NULL), E2BIG (`nent` above the kernel's limit of
/// 256), EINVAL (entries KVM cannot accept, or a change after the vcpu has run), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_set_cpuid(cpuid: *const kvm_cpuid2) -> c_int {
    c_int(|| {
        if cpuid.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: the caller provides `nent` entries, as documented.
        with_current(|v| unsafe { v.set_cpuid(cpuid) })?;
        Ok(0)
    })
}

/// Reads the x87 FPU and SSE state of the calling thread's vcpu (data registers, control,
/// status and tag words, last instruction and operand, XMM0-XMM15, MXCSR). Errors: ESRCH
/// (no vcpu), EFAULT (`fpu` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_fpu(fpu: *mut kvm_fpu) -> c_int {
    c_int(|| {
        let out = output(fpu)?;
        *out = with_current(|v| v.get_fpu())?;
        Ok(0)
    })
}

/// Sets the x87 FPU and SSE state of the calling thread's vcpu from `*fpu`. Errors: ESRCH
/// (no vcpu), EFAULT (`fpu` NULL).
#[no_mangle]
pub extern "C" fn kvm_set_fpu(fpu: *const kvm_fpu) -> c_int {
    c_int(|| {
        let f = input(fpu)?;
        with_current(|v| v.set_fpu(f))?;
        Ok(0)
    })
}
