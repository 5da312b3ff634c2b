//! Registers and state of the calling thread's vcpu: general and special registers,
//! events, MP state, FPU, XSAVE, XCRs, MSRs, CPUID, local APIC, nested state, TSC
//! frequency, kvmclock and ONE_REG. All fail with ESRCH on a thread that has no vcpu.

use crate::capi::input;
use crate::capi::output;
use crate::capi::{vcpu_do, vcpu_get, vcpu_set};
use crate::current::with_current;
use crate::error::c_int;
use crate::error::to_c_int;
use crate::error::Errno;
use kvm_bindings::kvm_cpuid2;
use kvm_bindings::kvm_fpu;
use kvm_bindings::kvm_lapic_state;
use kvm_bindings::kvm_mp_state;
use kvm_bindings::kvm_msrs;
use kvm_bindings::kvm_nested_state;
use kvm_bindings::kvm_one_reg;
use kvm_bindings::kvm_regs;
use kvm_bindings::kvm_sregs;
use kvm_bindings::kvm_sregs2;
use kvm_bindings::kvm_vcpu_events;
use kvm_bindings::kvm_xcrs;
use kvm_bindings::kvm_xsave;
use libc::c_int;

/// Reads the general-purpose registers, RIP and RFLAGS of the calling thread's vcpu.
/// Right after an exit this is a copy from the run area, with no system call, where the
/// kernel has KVM_CAP_SYNC_REGS. Errors: ESRCH (no vcpu), EFAULT (`regs` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_regs(regs: *mut kvm_regs) -> c_int {
    vcpu_get(regs, |v| v.get_regs())
}

/// Sets the general-purpose registers, RIP and RFLAGS of the calling thread's vcpu. The
/// kernel loads them on the next kvm_run() (through the run area where it can), and
/// before any other call that needs them. Errors: ESRCH (no vcpu), EFAULT (`regs` NULL).
#[no_mangle]
pub extern "C" fn kvm_set_regs(regs: *const kvm_regs) -> c_int {
    vcpu_set(regs, |v, a| v.set_regs(a))
}

/// Reads the special registers (segments, descriptor tables, control registers, EFER,
/// APIC base) of the calling thread's vcpu. Errors: ESRCH (no vcpu), EFAULT (`sregs`
/// NULL).
#[no_mangle]
pub extern "C" fn kvm_get_sregs(sregs: *mut kvm_sregs) -> c_int {
    vcpu_get(sregs, |v| v.get_sregs())
}

/// Sets the special registers of the calling thread's vcpu. Errors: ESRCH (no vcpu),
/// EFAULT (`sregs` NULL), EINVAL (the kernel refused the values, e.g. long mode without
/// PAE).
#[no_mangle]
pub extern "C" fn kvm_set_sregs(sregs: *const kvm_sregs) -> c_int {
    vcpu_set(sregs, |v, a| v.set_sregs(a))
}

/// Reads the special registers of the calling thread's vcpu in the KVM_GET_SREGS2 form:
/// like kvm_get_sregs() without the pending-interrupt bitmap (that lives in the vcpu
/// events), plus the PAE page-directory pointers when `flags` has
/// KVM_SREGS2_FLAGS_PDPTRS_VALID. Errors: ESRCH (no vcpu), EFAULT (`sregs` NULL), EINVAL
/// or ENOTTY (kernel without KVM_CAP_SREGS2).
#[no_mangle]
pub extern "C" fn kvm_get_sregs2(sregs: *mut kvm_sregs2) -> c_int {
    vcpu_get(sregs, |v| v.get_sregs2())
}

/// Sets the special registers of the calling thread's vcpu from the KVM_SET_SREGS2 form
/// (with `flags` KVM_SREGS2_FLAGS_PDPTRS_VALID, also the PAE PDPTRs, as a migrated vcpu
/// needs). Errors: ESRCH (no vcpu), EFAULT (`sregs` NULL), EINVAL (values or flags the
/// kernel refuses).
#[no_mangle]
pub extern "C" fn kvm_set_sregs2(sregs: *const kvm_sregs2) -> c_int {
    vcpu_set(sregs, |v, a| v.set_sregs2(a))
}

/// Reads the pending exception, interrupt and NMI state of the calling thread's vcpu
/// (served from the run area right after an exit where the kernel syncs it). Errors:
/// ESRCH (no vcpu), EFAULT (`events` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_vcpu_events(events: *mut kvm_vcpu_events) -> c_int {
    vcpu_get(events, |v| v.get_events())
}

/// Sets the pending exception, interrupt and NMI state of the calling thread's vcpu; the
/// `flags` field says which parts are valid. Errors: ESRCH (no vcpu), EFAULT (`events`
/// NULL), EINVAL (the kernel refused the values or flags).
#[no_mangle]
pub extern "C" fn kvm_set_vcpu_events(events: *const kvm_vcpu_events) -> c_int {
    vcpu_set(events, |v, a| v.set_events(a))
}

/// Reads the multiprocessing state of the calling thread's vcpu: KVM_MP_STATE_RUNNABLE,
/// _UNINITIALIZED (an application processor before INIT), _INIT_RECEIVED (waiting for a
/// SIPI), _HALTED (in HLT, in-kernel irqchip), ... Errors: ESRCH (no vcpu), EFAULT (`s`
/// NULL).
#[no_mangle]
pub extern "C" fn kvm_get_mp_state(s: *mut kvm_mp_state) -> c_int {
    c_int(|| {
        let out = output(s)?;
        // `writing`: the kernel accepts a pending INIT or SIPI here, which resets the
        // registers.
        *out = with_current(|v| v.get_mp_state())?;
        Ok(0)
    })
}

/// Sets the multiprocessing state of the calling thread's vcpu. Errors: ESRCH (no vcpu),
/// EFAULT (`s` NULL), EINVAL (an unknown state, or any state but KVM_MP_STATE_RUNNABLE
/// without an in-kernel irqchip).
#[no_mangle]
pub extern "C" fn kvm_set_mp_state(s: *const kvm_mp_state) -> c_int {
    c_int(|| {
        let s = *input(s)?;
        with_current(|v| v.set_mp_state(s))?;
        Ok(0)
    })
}

/// Reads the x87 FPU and SSE state of the calling thread's vcpu (data registers, control,
/// status and tag words, last instruction and operand, XMM0-XMM15, MXCSR). Errors: ESRCH
/// (no vcpu), EFAULT (`fpu` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_fpu(fpu: *mut kvm_fpu) -> c_int {
    vcpu_get(fpu, |v| v.get_fpu())
}

/// Sets the x87 FPU and SSE state of the calling thread's vcpu from `*fpu`. Errors: ESRCH
/// (no vcpu), EFAULT (`fpu` NULL).
#[no_mangle]
pub extern "C" fn kvm_set_fpu(fpu: *const kvm_fpu) -> c_int {
    vcpu_set(fpu, |v, a| v.set_fpu(a))
}

/// Returns the size in bytes of the calling thread's vcpu's XSAVE state: at least
/// sizeof(struct kvm_xsave) (4096), more where KVM_CAP_XSAVE2 reports dynamic state
/// components (such as AMX tiles) enabled for the process. Allocate that many bytes for
/// kvm_get_xsave() and kvm_set_xsave(). Errors: ESRCH (no vcpu).
#[no_mangle]
pub extern "C" fn kvm_get_xsave_size() -> c_int {
    c_int(|| with_current(|v| to_c_int(v.xsave_size()?)))
}

/// Reads the calling thread's vcpu's FPU, SSE, AVX and other XSAVE-managed state, in the
/// XSAVE format, into `xsave`, a buffer of `size` bytes (KVM_GET_XSAVE2 where the kernel
/// has it). Returns the number of bytes written (kvm_get_xsave_size()). Errors: ESRCH (no
/// vcpu), EFAULT (`xsave` NULL), E2BIG (`size` below kvm_get_xsave_size(); nothing is
/// written).
#[no_mangle]
pub extern "C" fn kvm_get_xsave(xsave: *mut kvm_xsave, size: usize) -> c_int {
    c_int(|| {
        if xsave.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: non-NULL; the caller promises `size` writable bytes (no reference to a
        // whole struct kvm_xsave is formed: `size` may be smaller, for E2BIG).
        let n = with_current(|v| unsafe { v.get_xsave(xsave, size) })?;
        to_c_int(n)
    })
}

/// Sets the calling thread's vcpu's XSAVE-managed state from `xsave`, `size` bytes in the
/// format kvm_get_xsave() produces. Errors: ESRCH (no vcpu), EFAULT (`xsave` NULL), E2BIG
/// (`size` below kvm_get_xsave_size()), EINVAL (the kernel refused the state, e.g.
/// components the vcpu's CPUID does not allow or reserved MXCSR bits).
#[no_mangle]
pub extern "C" fn kvm_set_xsave(xsave: *const kvm_xsave, size: usize) -> c_int {
    c_int(|| {
        if xsave.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: non-NULL; the caller promises `size` readable bytes (no reference to a
        // whole struct kvm_xsave is formed: `size` may be smaller, for E2BIG).
        with_current(|v| unsafe { v.set_xsave(xsave, size) })?;
        Ok(0)
    })
}

/// Reads the extended control registers (XCR0) of the calling thread's vcpu: `nr_xcrs`
/// entries of `xcrs`. Errors: ESRCH (no vcpu), EFAULT (`xcrs` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_xcrs(xcrs: *mut kvm_xcrs) -> c_int {
    vcpu_get(xcrs, |v| v.get_xcrs())
}

/// Sets the extended control registers of the calling thread's vcpu (`nr_xcrs` entries).
/// Errors: ESRCH (no vcpu), EFAULT (`xcrs` NULL), EINVAL (an XCR0 the vcpu's CPUID does
/// not allow: only components CPUID leaf 0xD offers, x87 always set, AVX only with SSE).
#[no_mangle]
pub extern "C" fn kvm_set_xcrs(xcrs: *const kvm_xcrs) -> c_int {
    vcpu_set(xcrs, |v, a| v.set_xcrs(a))
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

/// Reads the local APIC registers (the 1 KiB register page, APIC ID at offset 0x20) of the
/// calling thread's vcpu; in-kernel irqchip only. Errors: ESRCH (no vcpu), EFAULT (`s`
/// NULL), EINVAL (the VM has no in-kernel irqchip).
#[no_mangle]
pub extern "C" fn kvm_get_lapic(s: *mut kvm_lapic_state) -> c_int {
    vcpu_get(s, |v| v.get_lapic())
}

/// Sets the local APIC registers of the calling thread's vcpu; in-kernel irqchip only.
/// Errors: ESRCH (no vcpu), EFAULT (`s` NULL), EINVAL (no in-kernel irqchip, or the kernel
/// refused the state).
#[no_mangle]
pub extern "C" fn kvm_set_lapic(s: *const kvm_lapic_state) -> c_int {
    vcpu_set(s, |v, a| v.set_lapic(a))
}

/// Reads the nested-virtualization state of the calling thread's vcpu (its VMX or SVM
/// state as an L1 hypervisor) into `state`, whose `size` field gives the room (header
/// included; kvm_check_extension(vm, KVM_CAP_NESTED_STATE) is the most it can need).
/// Errors: ESRCH (no vcpu), EFAULT (`state` NULL), E2BIG (too little room: `state->size`
/// is set to the size needed), EOPNOTSUPP (the kernel has no nested state:
/// KVM_CAP_NESTED_STATE is 0).
#[no_mangle]
pub extern "C" fn kvm_get_nested_state(state: *mut kvm_nested_state) -> c_int {
    c_int(|| {
        output(state)?;
        // SAFETY: non-NULL; the caller promises `size` writable bytes.
        with_current(|v| unsafe { v.get_nested_state(state) })?;
        Ok(0)
    })
}

/// Sets the nested-virtualization state of the calling thread's vcpu from `state` (as
/// kvm_get_nested_state() produced it; set the special registers and MSRs such as EFER
/// and IA32_FEATURE_CONTROL first). Errors: ESRCH (no vcpu), EFAULT (`state` NULL),
/// EINVAL (a state the kernel refuses), EOPNOTSUPP (KVM_CAP_NESTED_STATE is 0).
#[no_mangle]
pub extern "C" fn kvm_set_nested_state(state: *const kvm_nested_state) -> c_int {
    c_int(|| {
        input(state)?;
        // SAFETY: non-NULL; the caller promises `size` readable bytes.
        with_current(|v| unsafe { v.set_nested_state(state) })?;
        Ok(0)
    })
}

/// Returns the TSC frequency of the calling thread's vcpu in kHz. Errors: ESRCH (no
/// vcpu), EIO (the host TSC frequency is unknown), EOVERFLOW (another program set a
/// frequency above INT_MAX through the vcpu's fd).
#[no_mangle]
pub extern "C" fn kvm_get_tsc_khz() -> c_int {
    c_int(|| with_current(|v| to_c_int(v.get_tsc_khz()?)))
}

/// Sets the TSC frequency the calling thread's vcpu's guest sees to `khz` (0: the host's).
/// Without KVM_CAP_TSC_CONTROL the kernel accepts only the host frequency (within 250
/// ppm) or a higher one, which it emulates by catching up. Errors: ESRCH (no vcpu),
/// EPERM or EINVAL (a frequency the kernel cannot give the guest), EINVAL (`khz` above
/// INT_MAX, which kvm_get_tsc_khz() could not return).
#[no_mangle]
pub extern "C" fn kvm_set_tsc_khz(khz: u32) -> c_int {
    vcpu_do(|v| v.set_tsc_khz(khz))
}

/// Tells the calling thread's vcpu's guest that the VM was paused (sets
/// PVCLOCK_GUEST_STOPPED in its kvmclock page at the next entry), so the guest's soft
/// lockup watchdog does not fire after a stop. Errors: ESRCH (no vcpu), EINVAL (the guest
/// has not enabled kvmclock).
#[no_mangle]
pub extern "C" fn kvm_kvmclock_ctrl() -> c_int {
    vcpu_do(|v| v.kvmclock_ctrl())
}

/// Reads one register of the calling thread's vcpu: `reg->id` names it (on x86 an MSR:
/// KVM_REG_X86 | KVM_REG_SIZE_U64 | 2 << 32 | index, or a KVM register), and its value is
/// written to the memory at `reg->addr` (the size the id encodes). Errors: ESRCH (no
/// vcpu), EFAULT (`reg` NULL or `reg->addr` not writable), EINVAL or ENOENT (an id the
/// kernel does not know).
#[no_mangle]
pub extern "C" fn kvm_get_one_reg(reg: *const kvm_one_reg) -> c_int {
    vcpu_set(reg, |v, a| v.get_one_reg(a))
}

/// Sets one register of the calling thread's vcpu, named by `reg->id`, from the memory at
/// `reg->addr`. Errors: ESRCH (no vcpu), EFAULT (`reg` NULL or `reg->addr` not readable),
/// EINVAL or ENOENT (an id the kernel does not know, or a value it refuses).
#[no_mangle]
pub extern "C" fn kvm_set_one_reg(reg: *const kvm_one_reg) -> c_int {
    vcpu_set(reg, |v, a| v.set_one_reg(a))
}
