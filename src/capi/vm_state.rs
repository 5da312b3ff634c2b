//! VM-wide state: capabilities, the in-kernel irqchip and PIT registers, GSI routing, the
//! VM clock, manual dirty-log protection, coalesced MMIO, and the host's feature MSRs.

// c_ulong is u64 on x86_64 but not on every target: the casts below are not no-ops there.
#![allow(clippy::unnecessary_cast)]

use super::{input, output};
use crate::error::c_int;
use crate::registry;
use crate::vm_state;
use kvm_bindings::{
    kvm_clear_dirty_log, kvm_clock_data, kvm_coalesced_mmio, kvm_coalesced_mmio_zone,
    kvm_enable_cap, kvm_irq_level, kvm_irq_routing, kvm_irqchip, kvm_msr_list, kvm_msrs,
    kvm_pit_state2,
};
use libc::{c_int, c_ulong, c_void};

/// Enables capability `cap->cap` on VM `vm` with the arguments in `cap->args` (for
/// example KVM_CAP_SPLIT_IRQCHIP, KVM_CAP_X86_USER_SPACE_MSR, KVM_CAP_X86_DISABLE_EXITS,
/// KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2). Some capabilities change how other calls behave:
/// with KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, reading the dirty log no longer clears it
/// (use kvm_clear_dirty_log()); with KVM_CAP_X2APIC_API, kvm_interrupt() addresses a vcpu
/// in x2APIC mode by its 32-bit x2APIC ID. The dirty ring (KVM_CAP_DIRTY_LOG_RING*) is
/// refused: it replaces the dirty bitmap kvm_get_dirty_log() reads. Errors: EBADF (not a
/// VM), EFAULT (`cap` NULL), EINVAL (unknown capability, nonzero flags, arguments the
/// kernel refuses, or the dirty ring), EBUSY or EEXIST
/// (the capability must be enabled before vcpus or an irqchip exist).
#[no_mangle]
pub extern "C" fn kvm_enable_cap(vm: c_int, cap: *const kvm_enable_cap) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        vm_state::enable_cap(&vm, input(cap)?)?;
        Ok(0)
    })
}

/// Reads the registers of one in-kernel interrupt controller of VM `vm`: set
/// `chip->chip_id` to KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE or KVM_IRQCHIP_IOAPIC
/// and the function fills `chip->chip`. Errors: EBADF (not a VM), EFAULT (`chip` NULL),
/// ENXIO (no in-kernel irqchip), EINVAL (unknown `chip_id`).
#[no_mangle]
pub extern "C" fn kvm_get_irqchip(vm: c_int, chip: *mut kvm_irqchip) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        vm_state::get_irqchip(&vm, output(chip)?)?;
        Ok(0)
    })
}

/// Sets the registers of the in-kernel interrupt controller `chip->chip_id` of VM `vm`
/// from `chip->chip`. Errors: EBADF (not a VM), EFAULT (`chip` NULL), ENXIO (no in-kernel
/// irqchip), EINVAL (unknown `chip_id`).
#[no_mangle]
pub extern "C" fn kvm_set_irqchip(vm: c_int, chip: *const kvm_irqchip) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        vm_state::set_irqchip(&vm, input(chip)?)?;
        Ok(0)
    })
}

/// Reads the state of VM `vm`'s in-kernel PIT (its three channels and flags). Errors:
/// EBADF (not a VM), EFAULT (`pit` NULL), ENXIO (no in-kernel PIT: kvm_create_pit2()).
#[no_mangle]
pub extern "C" fn kvm_get_pit2(vm: c_int, pit: *mut kvm_pit_state2) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        let out = output(pit)?;
        *out = vm_state::get_pit2(&vm)?;
        Ok(0)
    })
}

/// Sets the state of VM `vm`'s in-kernel PIT. Errors: EBADF (not a VM), EFAULT (`pit`
/// NULL), ENXIO (no in-kernel PIT).
#[no_mangle]
pub extern "C" fn kvm_set_pit2(vm: c_int, pit: *const kvm_pit_state2) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        vm_state::set_pit2(&vm, input(pit)?)?;
        Ok(0)
    })
}

/// Like kvm_irq_line(), and reports what happened: set `line->irq` and `line->level`; on
/// return `line->status` (the same union member as `irq`) is positive when the interrupt
/// was delivered (the number of vcpus it reached), 0 when it was coalesced with one still
/// pending, negative when it was masked or ignored. Errors: EBADF (not a VM), EFAULT
/// (`line` NULL), ENXIO (no in-kernel irqchip), EINVAL (`line->irq` at or above the number
/// of routable GSIs, 4096).
#[no_mangle]
pub extern "C" fn kvm_irq_line_status(vm: c_int, line: *mut kvm_irq_level) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        let line = output(line)?;
        // SAFETY: `irq` is the union member the caller sets on input.
        super::irq::check_gsi(unsafe { line.__bindgen_anon_1.irq })?;
        vm_state::irq_line_status(&vm, line)?;
        Ok(0)
    })
}

/// Replaces VM `vm`'s whole GSI routing table with `routing` (`nr` entries after the
/// header): each entry routes a GSI to an irqchip pin, an MSI message, or another kind the
/// kernel knows. kvm_irq_line(), kvm_irqfd() and kvm_signal_msi() use the table. Errors:
/// EBADF (not a VM), EFAULT (`routing` NULL or its entries unreadable), EINVAL (nonzero
/// flags, too many entries, a GSI out of range, an entry the kernel refuses, or no
/// in-kernel irqchip).
#[no_mangle]
pub extern "C" fn kvm_set_gsi_routing(vm: c_int, routing: *const kvm_irq_routing) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        input(routing)?;
        // SAFETY: `routing` is the caller's non-NULL table; the kernel reads `nr` entries
        // after the header with copy_from_user.
        unsafe { vm_state::set_gsi_routing(&vm, routing) }?;
        Ok(0)
    })
}

/// Reads VM `vm`'s kvmclock: `clock->clock` is the guest's clock in nanoseconds, `flags`
/// says which other fields (host realtime, host TSC) are valid. Errors: EBADF (not a VM),
/// EFAULT (`clock` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_clock(vm: c_int, clock: *mut kvm_clock_data) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        let out = output(clock)?;
        *out = vm_state::get_clock(&vm)?;
        Ok(0)
    })
}

/// Sets VM `vm`'s kvmclock to `clock->clock` nanoseconds (with KVM_CLOCK_REALTIME in
/// `flags`, also accounting for the host realtime that passed since `clock->realtime`);
/// the clock keeps running from there. Errors: EBADF (not a VM), EFAULT (`clock` NULL),
/// EINVAL (unknown flags).
#[no_mangle]
pub extern "C" fn kvm_set_clock(vm: c_int, clock: *const kvm_clock_data) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        vm_state::set_clock(&vm, input(clock)?)?;
        Ok(0)
    })
}

/// Clears the dirty bits of pages `log->first_page .. + log->num_pages` of slot
/// `log->slot` that are set in `log->dirty_bitmap` (bit 0 = `first_page`) and
/// write-protects those pages again, so the next guest write marks them dirty anew. Meant
/// for KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (kvm_enable_cap()), with which reading the dirty
/// log no longer clears it. Pages written through a memory alias (kvm_set_memory_alias())
/// are logged in the alias's own KVM slot, which this call does not clear: with manual
/// protection they stay reported as dirty. Errors: EBADF (not a VM), EFAULT (`log` NULL or its bitmap
/// unreadable), ENOENT (unknown slot, or a slot without KVM_MEM_LOG_DIRTY_PAGES), EINVAL
/// (`first_page` not a multiple of 64, `num_pages` not a multiple of 64 short of the
/// slot's end, or the range outside the slot).
#[no_mangle]
pub extern "C" fn kvm_clear_dirty_log(vm: c_int, log: *const kvm_clear_dirty_log) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        vm_state::clear_dirty_log(&vm, input(log)?)?;
        Ok(0)
    })
}

/// Makes guest writes to `zone` (MMIO, or with `zone->pio` = 1 port I/O) of VM `vm` not
/// exit: the kernel appends them to a ring that kvm_coalesced_mmio_next() reads, and the
/// VMM replays them later (for write-only device registers such as a framebuffer's).
/// Reads still exit. Errors: EBADF (not a VM), EFAULT (`zone` NULL), EINVAL (bad zone),
/// ENOSPC (too many zones: the kernel's bus is full), ENOTTY or EINVAL (`pio` without
/// KVM_CAP_COALESCED_PIO).
#[no_mangle]
pub extern "C" fn kvm_register_coalesced_mmio(
    vm: c_int,
    zone: *const kvm_coalesced_mmio_zone,
) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        vm_state::coalesced_zone(&vm, input(zone)?, true)?;
        Ok(0)
    })
}

/// Removes the coalesced zones (same `pio`) that contain all of `zone`, normally the zone
/// as registered (a range larger than a zone removes nothing); writes there exit again. Entries already in the ring stay there. Errors: EBADF (not a VM), EFAULT
/// (`zone` NULL).
#[no_mangle]
pub extern "C" fn kvm_unregister_coalesced_mmio(
    vm: c_int,
    zone: *const kvm_coalesced_mmio_zone,
) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        vm_state::coalesced_zone(&vm, input(zone)?, false)?;
        Ok(0)
    })
}

/// Takes the oldest write from VM `vm`'s coalesced MMIO/PIO ring into `*entry`
/// (`phys_addr`, `len`, `pio`, `data`): returns 1 if it did, 0 if the ring is empty.
/// Call it until it returns 0 before handling any exit that could depend on those writes
/// (QEMU drains the ring after every exit). Any thread may call it; callers are
/// serialized. Errors: EBADF (not a VM), EFAULT (`entry` NULL).
#[no_mangle]
pub extern "C" fn kvm_coalesced_mmio_next(vm: c_int, entry: *mut kvm_coalesced_mmio) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        let out = output(entry)?;
        Ok(vm_state::coalesced_mmio_next(&vm, out)? as c_int)
    })
}

/// Lists the feature MSRs of the host (the read-only MSRs describing what KVM can offer a
/// guest, such as IA32_ARCH_CAPABILITIES or the VMX capability MSRs). Set `list->nmsrs` to
/// the room in `list->indices`; on return it holds the count. Errors: EFAULT (`list`
/// NULL), E2BIG (too little room: `list->nmsrs` is set to the count needed), and those of
/// opening /dev/kvm.
#[no_mangle]
pub extern "C" fn kvm_get_msr_feature_index_list(list: *mut kvm_msr_list) -> c_int {
    c_int(|| {
        output(list)?;
        // SAFETY: non-NULL; the caller promises `nmsrs` indices of room, as for the ioctl.
        unsafe { vm_state::msr_feature_index_list(list) }?;
        Ok(0)
    })
}

/// Reads the host's values of the feature MSRs named in `msrs->entries[i].index` (`nmsrs`
/// entries), as KVM offers them to guests. Returns how many were read: fewer than
/// `nmsrs` means entry number (return value) is not a feature MSR. Errors: EFAULT (`msrs`
/// NULL), E2BIG (`nmsrs` above the kernel's limit), and those of opening /dev/kvm.
#[no_mangle]
pub extern "C" fn kvm_get_msr_features(msrs: *mut kvm_msrs) -> c_int {
    c_int(|| {
        output(msrs)?;
        // SAFETY: non-NULL; the caller promises `nmsrs` entries, as for the ioctl.
        unsafe { vm_state::msr_features(msrs) }
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
        unsafe { vm_state::system_ioctl(request as u64, arg as c_ulong) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Errno;

    #[test]
    fn bad_vm_is_ebadf_and_null_is_efault() {
        assert_eq!(kvm_get_clock(-1, std::ptr::null_mut()), -1);
        assert_eq!(Errno::last(), Errno(libc::EBADF));
        assert_eq!(kvm_get_msr_feature_index_list(std::ptr::null_mut()), -1);
        assert_eq!(Errno::last(), Errno(libc::EFAULT));
    }
}
