//! VM-wide state beyond memory and vcpus: capabilities, the in-kernel interrupt
//! controllers' and PIT's registers, GSI routing, the VM clock, manual dirty-log
//! protection, coalesced MMIO/PIO and the host's feature MSRs. Everything QEMU's x86
//! accelerator reads or writes on a VM fd, on the kernel's own structs.

use crate::error::{Errno, Result};
use crate::ioctl;
use crate::memory::PAGE_SIZE;
use crate::registry;
use crate::system;
use crate::vm::Vm;
use kvm_bindings::{
    kvm_clear_dirty_log, kvm_clock_data, kvm_coalesced_mmio, kvm_coalesced_mmio_zone,
    kvm_enable_cap, kvm_irq_level, kvm_irq_routing, kvm_irqchip, kvm_msr_list, kvm_msrs,
    kvm_pit_state2,
};
use parking_lot::Mutex;
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

const KVM_ENABLE_CAP: u64 = ioctl::iow::<kvm_enable_cap>(0xa3);
const KVM_IRQ_LINE_STATUS: u64 = ioctl::iowr::<kvm_irq_level>(0x67);
const KVM_SET_GSI_ROUTING: u64 = ioctl::iow::<kvm_irq_routing>(0x6a);
const KVM_CLEAR_DIRTY_LOG: u64 = ioctl::iowr::<kvm_clear_dirty_log>(0xc0);
const KVM_REGISTER_COALESCED_MMIO: u64 = ioctl::iow::<kvm_coalesced_mmio_zone>(0x67);
const KVM_UNREGISTER_COALESCED_MMIO: u64 = ioctl::iow::<kvm_coalesced_mmio_zone>(0x68);
const KVM_GET_MSR_FEATURE_INDEX_LIST: u64 = ioctl::iowr::<kvm_msr_list>(0x0a);
const KVM_GET_MSRS: u64 = ioctl::iowr::<kvm_msrs>(0x88);
const KVM_CREATE_VM: u64 = ioctl::io(0x01);
const KVM_CAP_COALESCED_MMIO: libc::c_long = kvm_bindings::KVM_CAP_COALESCED_MMIO as _;

/// Capabilities libkvm tracks when `enable_cap` enables them: the escape hatch refuses
/// them (the hatch would change the VM behind libkvm's back).
const TRACKED_CAPS: [u32; 2] = [
    kvm_bindings::KVM_CAP_SPLIT_IRQCHIP,
    kvm_bindings::KVM_CAP_X2APIC_API,
];

/// Capabilities libkvm does not support at all: the dirty ring replaces the dirty bitmap
/// (KVM_GET_DIRTY_LOG then fails, breaking `kvm_get_dirty_log`) and needs ring pages of
/// each vcpu mapped, which libkvm does not do.
const UNSUPPORTED_CAPS: [u32; 3] = [
    kvm_bindings::KVM_CAP_DIRTY_LOG_RING,
    kvm_bindings::KVM_CAP_DIRTY_LOG_RING_ACQ_REL,
    kvm_bindings::KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP,
];

/// Whether `kvm_vm_ioctl(KVM_ENABLE_CAP)` must refuse capability `cap` (EINVAL).
pub fn hatch_refuses_cap(cap: u32) -> bool {
    TRACKED_CAPS.contains(&cap) || UNSUPPORTED_CAPS.contains(&cap)
}

/// KVM_ENABLE_CAP on the VM fd; remembers the capabilities that change what other calls
/// do (KVM_CAP_X2APIC_API: the APIC ID format `kvm_interrupt` reads;
/// KVM_CAP_SPLIT_IRQCHIP: the local APICs are in the kernel). The dirty ring is refused
/// with EINVAL (`UNSUPPORTED_CAPS`).
pub fn enable_cap(vm: &Vm, cap: &kvm_enable_cap) -> Result<()> {
    if UNSUPPORTED_CAPS.contains(&cap.cap) {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: KVM_ENABLE_CAP reads one struct kvm_enable_cap, alive across the call.
    unsafe {
        ioctl::ioctl(
            vm.raw_fd(),
            KVM_ENABLE_CAP,
            cap as *const _ as libc::c_ulong,
        )
    }?;
    match cap.cap {
        kvm_bindings::KVM_CAP_X2APIC_API => vm.set_x2apic_api(cap.args[0]),
        kvm_bindings::KVM_CAP_SPLIT_IRQCHIP => vm.set_split_irqchip(),
        _ => {}
    }
    Ok(())
}

/// KVM_GET_IRQCHIP: `chip.chip_id` selects the PIC master (0), slave (1) or IOAPIC (2).
pub fn get_irqchip(vm: &Vm, chip: &mut kvm_irqchip) -> Result<()> {
    vm.fd().get_irqchip(chip).map_err(Errno::from)
}

/// KVM_SET_IRQCHIP.
pub fn set_irqchip(vm: &Vm, chip: &kvm_irqchip) -> Result<()> {
    vm.fd().set_irqchip(chip).map_err(Errno::from)
}

/// KVM_GET_PIT2.
pub fn get_pit2(vm: &Vm) -> Result<kvm_pit_state2> {
    vm.fd().get_pit2().map_err(Errno::from)
}

/// KVM_SET_PIT2.
pub fn set_pit2(vm: &Vm, pit: &kvm_pit_state2) -> Result<()> {
    vm.fd().set_pit2(pit).map_err(Errno::from)
}

/// KVM_IRQ_LINE_STATUS: in `irq` and `level`, out the delivery status (in the union's
/// `status` member).
pub fn irq_line_status(vm: &Vm, line: &mut kvm_irq_level) -> Result<()> {
    // SAFETY: KVM_IRQ_LINE_STATUS reads and writes one struct kvm_irq_level.
    unsafe {
        ioctl::ioctl(
            vm.raw_fd(),
            KVM_IRQ_LINE_STATUS,
            line as *mut _ as libc::c_ulong,
        )
    }?;
    Ok(())
}

/// KVM_SET_GSI_ROUTING on the caller's table (header plus `nr` entries).
///
/// # Safety
/// `routing` must point at a readable struct kvm_irq_routing followed by `nr` entries.
pub unsafe fn set_gsi_routing(vm: &Vm, routing: *const kvm_irq_routing) -> Result<()> {
    // SAFETY: the caller vouches for the table; the kernel reads the header, checks `nr`
    // against its limit and copies exactly `nr` entries (EFAULT if they are not there).
    unsafe { ioctl::ioctl(vm.raw_fd(), KVM_SET_GSI_ROUTING, routing as libc::c_ulong) }?;
    Ok(())
}

/// KVM_GET_CLOCK.
pub fn get_clock(vm: &Vm) -> Result<kvm_clock_data> {
    vm.fd().get_clock().map_err(Errno::from)
}

/// KVM_SET_CLOCK.
pub fn set_clock(vm: &Vm, clock: &kvm_clock_data) -> Result<()> {
    vm.fd().set_clock(clock).map_err(Errno::from)
}

/// KVM_CLEAR_DIRTY_LOG. Only the caller's slots (`0..user_slots`, address space 0) are
/// accepted: slots above are libkvm's own (memory aliases).
pub fn clear_dirty_log(vm: &Vm, log: &kvm_clear_dirty_log) -> Result<()> {
    if log.slot >= vm.user_slots() {
        return Err(Errno(libc::ENOENT));
    }
    // SAFETY: KVM_CLEAR_DIRTY_LOG reads one struct kvm_clear_dirty_log; the bitmap it
    // points to is the caller's (EFAULT from the kernel if it is not readable).
    unsafe {
        ioctl::ioctl(
            vm.raw_fd(),
            KVM_CLEAR_DIRTY_LOG,
            log as *const _ as libc::c_ulong,
        )
    }?;
    Ok(())
}

/// KVM_(UN)REGISTER_COALESCED_MMIO.
pub fn coalesced_zone(vm: &Vm, zone: &kvm_coalesced_mmio_zone, register: bool) -> Result<()> {
    let req = if register {
        KVM_REGISTER_COALESCED_MMIO
    } else {
        KVM_UNREGISTER_COALESCED_MMIO
    };
    // SAFETY: both ioctls read one struct kvm_coalesced_mmio_zone.
    unsafe { ioctl::ioctl(vm.raw_fd(), req, zone as *const _ as libc::c_ulong) }?;
    Ok(())
}

/// The ring is single-consumer (userspace owns `first`): consumers of all VMs take turns.
static RING_CONSUMER: Mutex<()> = Mutex::new(());

/// Entries that fit in the one-page ring after its `first`/`last` header.
const RING_ENTRIES: u32 =
    ((PAGE_SIZE as usize - 8) / std::mem::size_of::<kvm_coalesced_mmio>()) as u32;

/// Takes the oldest entry from VM `vm_fd`'s coalesced MMIO ring. `Ok(false)`: the ring is
/// empty (or the VM has no vcpu yet, so nothing can have been written).
pub fn coalesced_mmio_next(vm: &Vm, out: &mut kvm_coalesced_mmio) -> Result<bool> {
    let page = vm.check_extension(KVM_CAP_COALESCED_MMIO)?;
    if page <= 0 {
        return Ok(false);
    }
    let Some(vcpu) = registry::any_vcpu_of(vm.raw_fd()) else {
        return Ok(false);
    };
    let offset = page as usize * PAGE_SIZE as usize;
    if offset + PAGE_SIZE as usize > system::vcpu_mmap_size()? as usize {
        return Err(Errno(libc::ENXIO));
    }
    let _consumer = RING_CONSUMER.lock();
    // SAFETY: the vcpu's mapping covers [0, mmap size) and `vcpu` keeps it alive; the
    // ring page lies inside it (checked above).
    let ring = unsafe { vcpu.run_area().cast::<u8>().add(offset) };
    // SAFETY: `first` and `last` are naturally aligned u32 in the shared page; the kernel
    // writes `last` concurrently, so they are accessed only as atomics.
    let (first, last) = unsafe {
        (
            AtomicU32::from_ptr(ring.cast::<u32>()),
            AtomicU32::from_ptr(ring.add(4).cast::<u32>()),
        )
    };
    let f = first.load(Ordering::Relaxed) % RING_ENTRIES;
    // Acquire: the entry the kernel wrote before advancing `last` is visible below.
    if f == last.load(Ordering::Acquire) % RING_ENTRIES {
        return Ok(false);
    }
    // SAFETY: entry `f` is inside the page (f < RING_ENTRIES) and complete (kernel
    // advanced `last` past it); read by value, unaligned-safe.
    *out = unsafe {
        ring.add(8 + f as usize * std::mem::size_of::<kvm_coalesced_mmio>())
            .cast::<kvm_coalesced_mmio>()
            .read_unaligned()
    };
    // Release: our read of the entry happens before the kernel may reuse the slot.
    first.store((f + 1) % RING_ENTRIES, Ordering::Release);
    Ok(true)
}

/// KVM_GET_MSR_FEATURE_INDEX_LIST on /dev/kvm, on the caller's list (`nmsrs` = room in,
/// count out; E2BIG when too small, with `nmsrs` set to the count).
///
/// # Safety
/// `list` must point at a struct kvm_msr_list with room for `nmsrs` indices.
pub unsafe fn msr_feature_index_list(list: *mut kvm_msr_list) -> Result<()> {
    let fd = system::kvm()?.as_raw_fd();
    // SAFETY: the caller vouches for the buffer; the kernel writes at most `nmsrs`
    // indices after the header.
    unsafe { ioctl::ioctl(fd, KVM_GET_MSR_FEATURE_INDEX_LIST, list as libc::c_ulong) }?;
    Ok(())
}

/// KVM_GET_MSRS on /dev/kvm: the host's values of feature MSRs. Returns how many entries
/// were read.
///
/// # Safety
/// `msrs` must point at a struct kvm_msrs followed by `nmsrs` entries.
pub unsafe fn msr_features(msrs: *mut kvm_msrs) -> Result<i32> {
    let fd = system::kvm()?.as_raw_fd();
    // SAFETY: as for `msr_feature_index_list`.
    unsafe { ioctl::ioctl(fd, KVM_GET_MSRS, msrs as libc::c_ulong) }
}

/// Any ioctl on /dev/kvm except KVM_CREATE_VM and requests above 32 bits (a VM libkvm does not know about could not
/// be used with libkvm's calls; kvm_create_vm() makes them).
///
/// # Safety
/// `arg` must be what `request` expects.
pub unsafe fn system_ioctl(request: u64, arg: libc::c_ulong) -> Result<i32> {
    // The kernel takes the request as 32 bits: (1 << 32) | KVM_CREATE_VM would be
    // KVM_CREATE_VM to it.
    if request > u64::from(u32::MAX) || request == KVM_CREATE_VM {
        return Err(Errno(libc::EINVAL));
    }
    let fd: RawFd = system::kvm()?.as_raw_fd();
    // SAFETY: the caller vouches for `arg`; the kernel validates pointers (EFAULT).
    unsafe { ioctl::ioctl(fd, request, arg) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel_headers() {
        assert_eq!(KVM_ENABLE_CAP, 0x4068_aea3);
        assert_eq!(KVM_IRQ_LINE_STATUS, 0xc008_ae67);
        assert_eq!(KVM_SET_GSI_ROUTING, 0x4008_ae6a);
        assert_eq!(KVM_CLEAR_DIRTY_LOG, 0xc018_aec0);
        assert_eq!(KVM_REGISTER_COALESCED_MMIO, 0x4010_ae67);
        assert_eq!(KVM_UNREGISTER_COALESCED_MMIO, 0x4010_ae68);
        assert_eq!(KVM_GET_MSR_FEATURE_INDEX_LIST, 0xc004_ae0a);
        assert_eq!(KVM_GET_MSRS, 0xc008_ae88);
        assert_eq!(RING_ENTRIES, 170);
    }
}
