//! Snapshots: the calling thread's vcpu and a VM's device state as self-describing,
//! versioned, checksummed blobs, and back.

use super::output;
use crate::error::{c_int, Errno, Result};
use crate::registry;
use crate::snapshot;
use crate::vcpu::with_current;
use libc::{c_int, c_void};

/// Copies `blob` to the caller's buffer under the size protocol of the save calls.
fn deliver(blob: &[u8], buf: *mut c_void, len: *mut usize) -> Result<c_int> {
    let room = output(len)?;
    if *room < blob.len() {
        *room = blob.len();
        return Err(Errno(libc::E2BIG));
    }
    if buf.is_null() {
        return Err(Errno(libc::EFAULT));
    }
    // SAFETY: the caller promises `*len` writable bytes at `buf`, which is at least
    // `blob.len()`; the regions cannot overlap (the blob is libkvm's own allocation).
    unsafe { std::ptr::copy_nonoverlapping(blob.as_ptr(), buf.cast::<u8>(), blob.len()) };
    *room = blob.len();
    Ok(0)
}

/// The caller's blob as a slice; EFAULT for NULL.
fn blob<'a>(buf: *const c_void, len: usize) -> Result<&'a [u8]> {
    if buf.is_null() {
        return Err(Errno(libc::EFAULT));
    }
    // SAFETY: the caller promises `len` readable bytes at `buf` for the call.
    Ok(unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) })
}

/// Saves the complete state of the calling thread's vcpu (registers, special registers,
/// XSAVE, XCRs, every MSR the kernel's MSR index list names that the vcpu lets the host
/// read, local APIC, pending events, MP state, debug registers, nested state when the
/// kernel has it, TSC frequency, CPUID, and the vectors kvm_interrupt() still holds for a
/// guest not ready to take them) as a self-describing blob into `buf`. `*len`
/// is the room in `buf` on entry and the blob's size on return. An I/O, MMIO or MSR exit
/// still pending is completed first (KVM_RUN with immediate_exit, which runs no further
/// guest instruction: supply the data of an IN, MMIO read or RDMSR in the run area before
/// the call). `buf` may be NULL when `*len` is 0, to learn the size. Errors: ESRCH
/// (no vcpu), EFAULT (`len` NULL, or `buf` NULL with room), E2BIG (too little room:
/// `*len` is set to the size needed), EAGAIN (completing the pending exit produced a new
/// exit, now in the run area: handle it with kvm_run() and call again), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_save_vcpu(buf: *mut c_void, len: *mut usize) -> c_int {
    c_int(|| {
        output(len)?;
        let b = with_current(|v| snapshot::save_vcpu(v))?;
        deliver(&b, buf, len)
    })
}

/// Loads a blob made by kvm_save_vcpu() (`len` bytes at `buf`; bytes beyond the blob
/// are ignored) into the calling thread's vcpu, in the order the kernel needs (CPUID,
/// special registers, nested state, TSC frequency, registers, XSAVE, XCRs, LAPIC, MSRs
/// with the TSC first and the TSC deadline last, events, MP state, debug registers).
/// Sections this libkvm does not know are skipped. The blob is checked completely before
/// anything changes, and if the kernel refuses part of it the vcpu's previous state is
/// put back. A vcpu that has run already can only take a blob with its own CPUID.
/// Errors: ESRCH (no vcpu), EFAULT (`buf` NULL), ENODATA (truncated: shorter than its
/// header says), EBADMSG (not a libkvm snapshot, or corrupt: checksum mismatch, malformed
/// or missing section, more than 256 CPUID entries or 255 MSRs), ENOEXEC (made on another
/// architecture), ENOTSUP, the same number as EOPNOTSUPP (a newer format version, or
/// nested state on a kernel without KVM_CAP_NESTED_STATE), EINVAL (a VM blob, state the kernel
/// refuses, a different CPUID on a vcpu that has run, or vectors held by kvm_interrupt()
/// for a VM that now has in-kernel local APICs), ENXIO (the blob has LAPIC state and the
/// VM no in-kernel local APICs: neither kvm_create_irqchip() nor KVM_CAP_SPLIT_IRQCHIP),
/// EAGAIN (an I/O,
/// MMIO or MSR exit was still pending and completing it, as kvm_save_vcpu() does first,
/// produced a new exit: handle it with kvm_run() and call again), ENOMEM (nothing was
/// changed).
#[no_mangle]
pub extern "C" fn kvm_restore_vcpu(buf: *const c_void, len: usize) -> c_int {
    c_int(|| {
        let b = blob(buf, len)?;
        with_current(|v| snapshot::restore_vcpu(v, b))?;
        Ok(0)
    })
}

/// Saves the device state of VM `vm` as a self-describing blob into `buf`: the in-kernel
/// PICs and IOAPIC, the PIT, the kvmclock, and the VM's shape (number of vcpus, memory
/// slot layout) so that a restore can check it fits. Guest memory is not in the blob:
/// copy it with kvm_guest_memory() (the dirty log tells which pages changed); each vcpu
/// is saved by its own thread with kvm_save_vcpu(). `*len` is the room in `buf` on entry
/// and the blob's size on return; `buf` may be NULL when `*len` is 0. Errors: EBADF (not
/// a VM), EFAULT (`len` NULL, or `buf` NULL with room), E2BIG (too little room: `*len` is
/// set to the size needed), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_save_vm(vm: c_int, buf: *mut c_void, len: *mut usize) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        output(len)?;
        let b = snapshot::save_vm(&vm)?;
        deliver(&b, buf, len)
    })
}

/// Loads a blob made by kvm_save_vm() into VM `vm`, which must have the same number of
/// vcpus and the same memory slots (numbers, addresses and sizes) as the saved VM, and
/// an in-kernel irqchip and PIT if the blob has their state. The kvmclock continues from
/// the saved value. The blob is checked completely before anything changes, and the VM's
/// previous state is put back if the kernel refuses part of it. Errors: EBADF (not a VM),
/// EFAULT (`buf` NULL), ENODATA (truncated), EBADMSG (not a libkvm snapshot, or corrupt),
/// ENOEXEC (another architecture), ENOTSUP (a newer format version), EINVAL (a vcpu blob,
/// a different number of vcpus or memory layout, or state the kernel refuses), ENXIO (the
/// VM lacks the irqchip or PIT the blob has state for), ENOMEM (nothing was changed).
#[no_mangle]
pub extern "C" fn kvm_restore_vm(vm: c_int, buf: *const c_void, len: usize) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        snapshot::restore_vm(&vm, blob(buf, len)?)?;
        Ok(0)
    })
}
