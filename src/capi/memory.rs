//! Guest memory: slots, the bounds-checked way to reach them, aliases, the dirty log
//! and coalesced MMIO.

use crate::capi::output;
use crate::capi::{vm_do_fds, vm_set};
use crate::error::c_int;
use crate::error::c_ptr;
use crate::error::Errno;
use crate::memory::kvm_memory_alias;
use crate::registry;
use crate::vm::fd_backing::Source;
use kvm_bindings::kvm_clear_dirty_log;
use kvm_bindings::kvm_coalesced_mmio;
use kvm_bindings::kvm_coalesced_mmio_zone;
use libc::c_int;
use libc::c_uint;
use libc::c_void;

/// Gives VM `vm` `size` bytes of zeroed memory, allocated and owned by libkvm, at
/// guest-physical `guest_phys_addr`, as memory slot `slot`. `flags`: 0 or
/// KVM_MEM_LOG_DIRTY_PAGES and/or KVM_MEM_READONLY. Size 0 deletes the slot (and frees its
/// memory; `guest_phys_addr` is then ignored). Calling it again for an existing slot with the same size changes its flags or
/// guest address, keeping its contents. Errors: EBADF (not a VM), EINVAL (address or size
/// not a multiple of 4096, range wrapping past 2^64, unknown flags, slot out of range, a
/// different size for an existing slot), EEXIST (overlaps another slot or a memory
/// alias), ENOENT (deleting a slot that does not exist), EBUSY (deleting or moving a slot
/// that a memory alias points into: delete the alias first), ENOMEM (also when deleting:
/// the memory could not be unmapped at vm.max_map_count; the slot is then unchanged but
/// for a dirty log that starts again empty).
#[no_mangle]
pub extern "C" fn kvm_set_memory_region(
    vm: c_int,
    slot: c_uint,
    flags: c_uint,
    guest_phys_addr: u64,
    size: u64,
) -> c_int {
    vm_do_fds(vm, |vm| {
        vm.set_memory_region(slot, flags, guest_phys_addr, size, Source::Anonymous)
    })
}

/// Like kvm_set_memory_region(), but the guest memory is the caller's, at host address
/// `host` (page-aligned, at least `size` bytes, kept mapped until the slot is deleted or
/// the VM destroyed). libkvm never frees it. Errors: those of kvm_set_memory_region(),
/// EFAULT (`host` NULL), EINVAL (`host` not page-aligned, or a different `host` for an
/// existing slot).
#[no_mangle]
pub extern "C" fn kvm_set_user_memory_region(
    vm: c_int,
    slot: c_uint,
    flags: c_uint,
    guest_phys_addr: u64,
    size: u64,
    host: *mut c_void,
) -> c_int {
    c_int(|| {
        // Deleting a slot may close a file's duplicate: fork() waits for it.
        registry::with_vm_changing_fds(vm, |vm| {
            if host.is_null() && size != 0 {
                return Err(Errno(libc::EFAULT));
            }
            let source = Source::User(host.cast());
            vm.set_memory_region(slot, flags, guest_phys_addr, size, source)
        })?;
        Ok(0)
    })
}

/// Like kvm_set_memory_region(), but the guest memory is `size` bytes of file descriptor
/// `fd` from byte `offset` (a multiple of 4096), which libkvm maps with `map_flags`:
/// MAP_SHARED (guest writes reach the file and every other mapping of it, such as another
/// process's) or MAP_PRIVATE (copy-on-write: the file is never written, and pages the
/// guest has not written are read from it on first access), optionally | MAP_POPULATE
/// (all pages read in now). `fd` may be a memfd, a regular or hugetlbfs file (the range
/// must lie inside the file; on hugetlbfs, offset and size are whole huge pages), or a
/// guest_memfd of this VM from kvm_create_guest_memfd() with LIBKVM_GUEST_MEMFD_MMAP and
/// LIBKVM_GUEST_MEMFD_INIT_SHARED (libkvm reads and writes the memory; private memory
/// would fault), which must be MAP_SHARED: the slot is then bound to it
/// (KVM_MEM_GUEST_MEMFD) and the guest's memory is that file's. libkvm keeps its own duplicate of `fd` (the caller
/// may close theirs at once) and unmaps and closes it when the slot is deleted or the VM
/// destroyed. The mapping is readable and writable and not inherited by fork().
/// kvm_guest_memory() reaches it like any slot's. Size 0 deletes the slot, whatever its
/// memory (`fd`, `offset`, `map_flags` are then ignored). Calling it again for an
/// existing slot with the same size, the same file, offset and MAP_SHARED/MAP_PRIVATE
/// changes its flags or guest address and keeps its contents. Errors: those of
/// kvm_set_memory_region(), EBADF (`fd` not an open descriptor), EINVAL (`offset` not a
/// multiple of 4096, the range not inside the file or wrapping, `map_flags` not
/// MAP_SHARED or MAP_PRIVATE with at most MAP_POPULATE added, a guest_memfd without
/// LIBKVM_GUEST_MEMFD_MMAP and LIBKVM_GUEST_MEMFD_INIT_SHARED or with MAP_PRIVATE,
/// different memory for an existing slot), ENODEV (the file cannot be memory-mapped),
/// EACCES (`fd` not open for reading, or MAP_SHARED of a file not open for writing),
/// EMFILE (no descriptor left for libkvm's duplicate).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn kvm_set_memory_region_fd(
    vm: c_int,
    slot: c_uint,
    flags: c_uint,
    guest_phys_addr: u64,
    size: u64,
    fd: c_int,
    offset: u64,
    map_flags: c_int,
) -> c_int {
    vm_do_fds(vm, |vm| {
        let source = Source::File {
            fd,
            offset,
            map_flags,
        };
        vm.set_memory_region(slot, flags, guest_phys_addr, size, source)
    })
}

/// Makes a guest_memfd of VM `vm`: a file of `size` bytes (a multiple of 4096) of memory
/// that KVM hands out, and returns its descriptor (close-on-exec; the caller closes it).
/// `flags` are the kernel's: 0, or LIBKVM_GUEST_MEMFD_MMAP (the host may mmap() it) and
/// LIBKVM_GUEST_MEMFD_INIT_SHARED (its memory starts shared with the host; without it a
/// host access faults, SIGBUS): kvm_set_memory_region_fd() needs both, as far as the VM
/// reports them (kvm_check_extension(vm, LIBKVM_CAP_GUEST_MEMFD_FLAGS)). Errors: EBADF (not a VM),
/// EOPNOTSUPP (the kernel has no guest_memfd: LIBKVM_CAP_GUEST_MEMFD is 0), EINVAL (a flag the
/// VM does not report, `size` 0 or not a multiple of 4096), ENOMEM, EMFILE.
#[no_mangle]
pub extern "C" fn kvm_create_guest_memfd(vm: c_int, size: u64, flags: u64) -> c_int {
    // fork() waits until the new fd is close-on-exec.
    c_int(|| registry::with_vm_changing_fds(vm, |vm| vm.create_guest_memfd(size, flags)))
}

/// kvm_create_guest_memfd() flag GUEST_MEMFD_FLAG_MMAP: the host may mmap() the file.
pub const LIBKVM_GUEST_MEMFD_MMAP: u64 = 1;

/// kvm_create_guest_memfd() flag GUEST_MEMFD_FLAG_INIT_SHARED: the file's memory starts
/// shared with the host (with LIBKVM_GUEST_MEMFD_MMAP, readable and writable through a
/// mapping).
pub const LIBKVM_GUEST_MEMFD_INIT_SHARED: u64 = 2;

/// The capability KVM_CAP_GUEST_MEMFD (kvm_check_extension()): non-zero where the kernel
/// has guest_memfd (kvm_create_guest_memfd()).
pub const LIBKVM_CAP_GUEST_MEMFD: c_int = 234;

/// The capability KVM_CAP_GUEST_MEMFD_FLAGS (kvm_check_extension() on a VM): the
/// kvm_create_guest_memfd() flags the VM takes (LIBKVM_GUEST_MEMFD_MMAP, ...).
pub const LIBKVM_CAP_GUEST_MEMFD_FLAGS: c_int = 244;

const _: () = assert!(
    LIBKVM_CAP_GUEST_MEMFD as u32 == kvm_bindings::KVM_CAP_GUEST_MEMFD
        && LIBKVM_CAP_GUEST_MEMFD_FLAGS as libc::c_long == crate::vm::CAP_GUEST_MEMFD_FLAGS
);

const _: () = assert!(
    LIBKVM_GUEST_MEMFD_MMAP == crate::vm::GUEST_MEMFD_FLAG_MMAP
        && LIBKVM_GUEST_MEMFD_INIT_SHARED == crate::vm::GUEST_MEMFD_FLAG_INIT_SHARED
);

/// Returns the host address of guest-physical `[guest_phys_addr, guest_phys_addr + len)`.
/// The whole range must lie inside one memory slot: a guest-chosen address never yields a
/// pointer outside guest memory. The pointer is valid until that slot is deleted or the VM
/// destroyed. Errors (NULL returned): EBADF (not a VM), EFAULT (range not inside one slot,
/// `len` 0, or the range wraps past 2^64).
#[no_mangle]
pub extern "C" fn kvm_guest_memory(vm: c_int, guest_phys_addr: u64, len: u64) -> *mut c_void {
    c_ptr(|| Ok(registry::vm(vm)?.guest_memory(guest_phys_addr, len)?.cast()))
}

/// Copies the dirty log of memory slot `slot` of VM `vm` into `dirty_bitmap` and clears
/// it: bit i (bit i % 8 of byte i / 8) is set if the guest wrote page i (4 KiB) of the
/// slot since logging began or the log was last read, also through a memory alias into
/// the slot. The slot must log dirty pages (flag KVM_MEM_LOG_DIRTY_PAGES). The buffer
/// must hold one bit per page rounded up to whole 64-bit words, that is
/// (pages + 63) / 64 * 8 bytes. Errors: EBADF (not a VM), EFAULT (`dirty_bitmap` NULL),
/// ENOENT (no such slot), EINVAL (the slot does not log dirty pages).
#[no_mangle]
pub extern "C" fn kvm_get_dirty_log(vm: c_int, slot: c_uint, dirty_bitmap: *mut c_void) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        if dirty_bitmap.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        vm.get_dirty_log(slot, dirty_bitmap.cast())?;
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
    vm_set(vm, log, |vm, a| vm.clear_dirty_log(a))
}

/// Makes VM `vm` log dirty pages in the KVM dirty ring (KVM_CAP_DIRTY_LOG_RING, with
/// _ACQ_REL where the kernel has it), `bytes` per vcpu, instead of the kernel's bitmaps.
/// kvm_get_dirty_log() and kvm_clear_dirty_log() keep their meaning exactly: libkvm
/// harvests the rings into bitmaps of its own (resetting them before it reports a page),
/// also from kvm_run() when a ring is full (KVM_EXIT_DIRTY_RING_FULL never reaches the
/// caller). Call it before the VM's first vcpu. Errors: EBADF (not a VM), EBUSY (the VM
/// has or had a vcpu, or its ring is on already), EOPNOTSUPP (the kernel has no dirty
/// ring), EINVAL (`bytes` not a power of two, below 4096 or above what
/// KVM_CAP_DIRTY_LOG_RING reports, or too small for the kernel; or
/// KVM_DIRTY_LOG_INITIALLY_SET enabled), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_enable_dirty_ring(vm: c_int, bytes: u32) -> c_int {
    vm_do_fds(vm, |vm| vm.enable_dirty_ring(bytes))
}

/// Creates, replaces or deletes memory alias `alias->slot` (0 to 31, a namespace apart
/// from memory slots) of VM `vm`: guest-physical [guest_phys_addr, guest_phys_addr +
/// memory_size) then shows the same memory as [target_phys_addr, target_phys_addr +
/// memory_size), which must lie inside one memory slot; guest and host writes through
/// either range are seen through the other. Addresses and size must be multiples of 4096
/// and `flags` 0. The alias takes the target slot's flags (read-only, dirty logging:
/// writes through it show in the target slot's dirty log). `memory_size` 0 deletes the
/// alias. Errors: EBADF (not a VM), EFAULT (`alias` NULL, or the target range is not
/// inside one memory slot), EINVAL (slot not below 32, nonzero flags, unaligned address
/// or size, a range wrapping past 2^64), EEXIST (the alias overlaps a memory slot or
/// another alias), ENOENT (deleting an alias that does not exist), ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_set_memory_alias(vm: c_int, alias: *const kvm_memory_alias) -> c_int {
    vm_set(vm, alias, |vm, a| vm.set_memory_alias(a))
}

/// Reads memory alias `alias->slot` of VM `vm` into `*alias` (slot, flags 0, guest and
/// target addresses, size). Errors: EBADF (not a VM), EFAULT (`alias` NULL), EINVAL
/// (slot not below 32), ENOENT (no alias in that slot).
#[no_mangle]
pub extern "C" fn kvm_get_memory_alias(vm: c_int, alias: *mut kvm_memory_alias) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        let out = output(alias)?;
        *out = vm.get_memory_alias(out.slot)?;
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
    vm_set(vm, zone, |vm, a| vm.coalesced_zone(a, true))
}

/// Removes the coalesced zones (same `pio`) that contain all of `zone`, normally the zone
/// as registered (a range larger than a zone removes nothing); writes there exit again. Entries already in the ring stay there. Errors: EBADF (not a VM), EFAULT
/// (`zone` NULL).
#[no_mangle]
pub extern "C" fn kvm_unregister_coalesced_mmio(
    vm: c_int,
    zone: *const kvm_coalesced_mmio_zone,
) -> c_int {
    vm_set(vm, zone, |vm, a| vm.coalesced_zone(a, false))
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
        Ok(vm.coalesced_mmio_next(registry::any_vcpu_of(vm.raw_fd()), out)? as c_int)
    })
}
