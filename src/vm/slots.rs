//! Guest memory of one VM: the slot table libkvm keeps beside the kernel's, the memory
//! libkvm allocates for `kvm_set_memory_region`, and the bounds-checked lookup that is
//! the only way from a guest-physical address to a host pointer.

use crate::error::{Errno, Result};
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Guest pages are 4 KiB: addresses and sizes of slots must be multiples of this.
pub(crate) const PAGE_SIZE: u64 = 4096;

/// Flags `kvm_set_memory_region` accepts (KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY).
pub(crate) const VALID_FLAGS: u32 =
    kvm_bindings::KVM_MEM_LOG_DIRTY_PAGES | kvm_bindings::KVM_MEM_READONLY;

/// Anonymous, zeroed, page-aligned memory libkvm owns; unmapped on drop.
///
/// Unmapping part of a kernel VMA (a mapping's entry in /proc/self/maps) splits it, which
/// needs a new VMA, and fails with ENOMEM once the process is at `vm.max_map_count`.
/// Adjacent anonymous mappings with the same flags merge into one VMA, so without care
/// the guest memory of many slots would be one VMA and deleting a slot in its middle
/// could fail. Each mapping is therefore made one page longer and that top page given
/// back at once: the free page above it keeps the next mapping (placed below it, or in
/// any gap: a libkvm mapping never fits in one page) from touching it. The gap costs
/// address space, not a VMA. Where a mapping still cannot be unmapped, the failure is
/// reported ([`Mapping::unmap`]) or the mapping is remembered and unmapped later
/// (`ORPHANS`): libkvm never loses track of memory it mapped.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory with no thread affinity; access to its contents is
// the guest's and the caller's business, as with any shared memory.
unsafe impl Send for Mapping {}
// SAFETY: as above; `Mapping` itself is never mutated after creation.
unsafe impl Sync for Mapping {}

/// Mappings (address, length) whose munmap failed when they were dropped: their pages
/// were given back with MADV_DONTNEED, and they are unmapped at the next chance (every
/// mapping made or unmapped, every VM destroyed), once the process has VMAs to spare.
static ORPHANS: parking_lot::Mutex<Vec<(usize, usize)>> = parking_lot::Mutex::new(Vec::new());
/// How many `ORPHANS` there are: without any, nobody takes the lock.
static NR_ORPHANS: AtomicUsize = AtomicUsize::new(0);

/// munmap(2) of `[ptr, ptr + len)`.
fn munmap(ptr: *mut u8, len: usize) -> Result<()> {
    // SAFETY: callers pass only ranges libkvm mapped itself and no longer uses.
    crate::error::check(unsafe { libc::munmap(ptr.cast(), len) }).map(|_| ())
}

/// Retries the munmap of every orphaned mapping; those that fail again stay listed. Never
/// waits for the lock: a busy list (or, in a fork() child, one the parent held) is retried
/// next time.
pub(crate) fn retry_orphans() {
    if NR_ORPHANS.load(Ordering::Acquire) == 0 {
        return;
    }
    let Some(mut orphans) = ORPHANS.try_lock() else {
        return;
    };
    orphans.retain(|&(p, len)| munmap(p as *mut u8, len).is_err());
    NR_ORPHANS.store(orphans.len(), Ordering::Release);
}

impl Mapping {
    /// Maps `len` bytes of zeroed anonymous memory (MAP_NORESERVE: pages are only
    /// committed when touched, as guest RAM should be), not inherited by fork(), with a
    /// free page above it (see [`Mapping`]).
    pub fn new(len: u64) -> Result<Mapping> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // Whatever mmap says (ENOMEM, or EINVAL for a length no address space can hold),
        // for the caller it is memory that could not be had: ENOMEM.
        Mapping::map(len, PAGE_SIZE, flags, -1, 0).map_err(|_| Errno(libc::ENOMEM))
    }

    /// Maps `len` bytes of `fd` from `offset` with `flags` (MAP_SHARED or MAP_PRIVATE, ...),
    /// readable and writable, not inherited by fork(), with `gap` free bytes above it (a
    /// multiple of the file's page size: see [`Mapping`]). mmap's errno as it gives it.
    pub fn of_file(len: u64, gap: u64, flags: i32, fd: i32, offset: u64) -> Result<Mapping> {
        let offset = libc::off_t::try_from(offset).map_err(|_| Errno(libc::EINVAL))?;
        Mapping::map(len, gap, flags, fd, offset)
    }

    fn map(len: u64, gap: u64, flags: i32, fd: i32, offset: libc::off_t) -> Result<Mapping> {
        let len = usize::try_from(len).map_err(|_| Errno(libc::ENOMEM))?;
        let gap = usize::try_from(gap).map_err(|_| Errno(libc::ENOMEM))?;
        let with_gap = len.checked_add(gap).ok_or(Errno(libc::ENOMEM))?;
        retry_orphans();
        // SAFETY: a fresh mapping at an address the kernel chooses touches no existing
        // memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                with_gap,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let p = p.cast::<u8>();
        // Give back the top page: the end of a mapping never needs a new VMA.
        if munmap(p.wrapping_add(len), gap).is_err() {
            // No VMA to spare for the split: give it all back (dropping unmaps it whole).
            drop(Mapping {
                ptr: p,
                len: with_gap,
            });
            return Err(Errno(libc::ENOMEM));
        }
        let m = Mapping { ptr: p, len };
        // Guest RAM is not inherited by fork() children (see `fork`). On failure `m` is
        // dropped, unmapping it.
        // SAFETY: advising our own fresh mapping.
        crate::error::check(unsafe { libc::madvise(p.cast(), len, libc::MADV_DONTFORK) })?;
        Ok(m)
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Unmaps the memory now; if the kernel refuses (ENOMEM: no VMA to spare for
    /// splitting a merged mapping), the mapping is given back, still mapped and intact.
    pub fn unmap(self) -> std::result::Result<(), (Mapping, Errno)> {
        match munmap(self.ptr, self.len) {
            Ok(()) => {
                std::mem::forget(self);
                retry_orphans();
                Ok(())
            }
            Err(e) => Err((self, e)),
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // ptr/len are exactly what mmap returned (less the gap page), and the slot that
        // used them was removed from KVM before the mapping is dropped.
        if munmap(self.ptr, self.len).is_ok() {
            return;
        }
        // The memory goes back to the system now (MADV_DONTNEED never splits a VMA); the
        // address range is unmapped later.
        // SAFETY: our own mapping, no longer used by anyone.
        unsafe { libc::madvise(self.ptr.cast(), self.len, libc::MADV_DONTNEED) };
        let mut orphans = ORPHANS.lock();
        if orphans.try_reserve(1).is_ok() {
            orphans.push((self.ptr as usize, self.len));
            NR_ORPHANS.store(orphans.len(), Ordering::Release);
        }
        // Without even the memory to remember it, the range stays mapped (its pages were
        // given back): nothing better is possible.
    }
}

/// Where a slot's host memory comes from.
#[derive(Debug)]
pub enum Backing {
    /// Allocated by libkvm (`kvm_set_memory_region`), freed with the slot.
    Owned(#[allow(dead_code)] Mapping),
    /// Provided by the caller (`kvm_set_user_memory_region`), never freed by libkvm.
    User,
    /// A mapping of a file descriptor (`kvm_set_memory_region_fd`), unmapped and closed
    /// with the slot.
    File(FileBacking),
    /// A memory alias (`kvm_set_memory_alias`): the host memory of guest-physical
    /// `target` onwards, which lies inside user slot `slot`.
    Alias {
        /// The memory slot the alias points into.
        slot: u32,
        /// Guest-physical address of the target range.
        target: u64,
    },
}

impl Backing {
    /// Unmaps the memory libkvm mapped for the slot (and closes its file) now; if the
    /// kernel refuses to unmap (ENOMEM at vm.max_map_count), the backing is given back
    /// intact with the error. Nothing to do for the caller's memory or an alias.
    pub fn unmap(self) -> std::result::Result<(), (Backing, Errno)> {
        match self {
            Backing::Owned(m) => m.unmap().map_err(|(m, e)| (Backing::Owned(m), e)),
            Backing::File(f) => f.unmap().map_err(|(f, e)| (Backing::File(f), e)),
            Backing::User | Backing::Alias { .. } => Ok(()),
        }
    }

    /// The guest_memfd (fd, offset) the slot is bound to, if any.
    pub fn guest_memfd(&self) -> Option<(i32, u64)> {
        match self {
            Backing::File(f) => f.guest_memfd(),
            _ => None,
        }
    }
}

/// One memory slot as libkvm knows it.
#[derive(Debug)]
pub struct Slot {
    /// Guest-physical start.
    pub gpa: u64,
    /// Length in bytes, a multiple of [`PAGE_SIZE`].
    pub size: u64,
    /// KVM_MEM_* flags.
    pub flags: u32,
    /// Host address of the first byte.
    pub host: *mut u8,
    /// Who owns the host memory.
    pub backing: Backing,
}

// SAFETY: `host` points into memory that outlives the slot (owned mapping or caller
// memory); the pointer is only handed out, never dereferenced by libkvm.
unsafe impl Send for Slot {}

impl Slot {
    /// One past the last guest-physical byte (never wraps: checked on insert).
    pub fn end(&self) -> u64 {
        self.gpa + self.size
    }
}

/// Checks a requested range: page-aligned start and size, non-zero, no wrap past 2^64.
pub fn check_range(gpa: u64, size: u64) -> Result<()> {
    if gpa % PAGE_SIZE != 0 || size % PAGE_SIZE != 0 || size == 0 {
        return Err(Errno(libc::EINVAL));
    }
    gpa.checked_add(size).ok_or(Errno(libc::EINVAL))?;
    Ok(())
}

/// The slots of one VM, keyed by KVM slot number: a vector sorted by slot number rather
/// than a map, so that every allocation is fallible (`reserve` before a change that adds
/// a slot; out of memory is ENOMEM, not an abort).
#[derive(Debug, Default)]
pub struct MemoryMap {
    slots: Vec<(u32, Slot)>,
}

impl Drop for MemoryMap {
    fn drop(&mut self) {
        // The VM's own mappings first, then any that could not be unmapped before: a VM
        // destroyed frees VMAs, which may be what they were waiting for.
        drop(std::mem::take(&mut self.slots));
        retry_orphans();
    }
}

impl MemoryMap {
    fn index(&self, slot: u32) -> std::result::Result<usize, usize> {
        self.slots.binary_search_by_key(&slot, |&(n, _)| n)
    }

    /// The slot with this KVM slot number.
    pub fn get(&self, slot: u32) -> Option<&Slot> {
        self.index(slot).ok().map(|i| &self.slots[i].1)
    }

    /// The slot with this KVM slot number, to change it in place.
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Slot> {
        self.index(slot).ok().map(|i| &mut self.slots[i].1)
    }

    /// Makes room for one more slot, so that the next `insert` cannot fail: call it before
    /// asking KVM for a change that adds one.
    pub fn reserve(&mut self) -> Result<()> {
        self.slots.try_reserve(1).map_err(crate::error::nomem)
    }

    /// A slot other than `except` whose guest range overlaps `[gpa, gpa + size)`.
    pub fn overlapping(&self, gpa: u64, size: u64, except: u32) -> Option<u32> {
        let end = gpa + size;
        self.slots
            .iter()
            .find(|(n, s)| *n != except && s.gpa < end && gpa < s.end())
            .map(|&(n, _)| n)
    }

    fn aliases(&self, slot: u32) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.slots.iter().filter_map(move |(n, s)| match s.backing {
            Backing::Alias { slot: t, target } if t == slot => Some((*n, target)),
            _ => None,
        })
    }

    /// Whether any alias points into slot `slot`.
    pub fn has_aliases(&self, slot: u32) -> bool {
        self.aliases(slot).next().is_some()
    }

    /// The KVM slot numbers and targets of the aliases that point into slot `slot`.
    pub fn aliases_of(&self, slot: u32) -> Result<Vec<(u32, u64)>> {
        let mut out = Vec::new();
        out.try_reserve_exact(self.aliases(slot).count())
            .map_err(crate::error::nomem)?;
        out.extend(self.aliases(slot));
        Ok(out)
    }

    /// Records a slot (after KVM accepted it); returns the slot it replaced. Allocates
    /// only for a new slot number without a `reserve` before.
    pub fn insert(&mut self, slot: u32, s: Slot) -> Option<Slot> {
        match self.index(slot) {
            Ok(i) => Some(std::mem::replace(&mut self.slots[i].1, s)),
            Err(i) => {
                self.slots.insert(i, (slot, s));
                None
            }
        }
    }

    /// Forgets a slot (after KVM removed it); its owned memory is unmapped when the
    /// returned value is dropped.
    pub fn remove(&mut self, slot: u32) -> Option<Slot> {
        self.index(slot).ok().map(|i| self.slots.remove(i).1)
    }

    /// libkvm's descriptors of the files that back slots.
    pub fn file_fds(&self) -> impl Iterator<Item = i32> + '_ {
        self.slots.iter().filter_map(|(_, s)| match &s.backing {
            Backing::File(f) => Some(f.raw_fd()),
            _ => None,
        })
    }

    /// (slot number, guest-physical start, size) of every slot below `limit`, by slot
    /// number.
    pub fn layout(&self, limit: u32) -> Result<Vec<(u32, u64, u64)>> {
        let mut out = Vec::new();
        let n = self.slots.iter().take_while(|(n, _)| *n < limit).count();
        out.try_reserve_exact(n).map_err(crate::error::nomem)?;
        out.extend(self.slots[..n].iter().map(|(n, s)| (*n, s.gpa, s.size)));
        Ok(out)
    }

    /// (KVM slot number, flags, size) of every slot, aliases included.
    pub fn entries(&self) -> impl Iterator<Item = (u32, u32, u64)> + '_ {
        self.slots.iter().map(|(n, s)| (*n, s.flags, s.size))
    }

    /// The slot (number and entry) that holds all of `[gpa, gpa + len)`; EFAULT if none
    /// does (also for a zero length or a range that wraps past 2^64).
    pub fn containing(&self, gpa: u64, len: u64) -> Result<(u32, &Slot)> {
        let end = gpa.checked_add(len).ok_or(Errno(libc::EFAULT))?;
        if len == 0 {
            return Err(Errno(libc::EFAULT));
        }
        self.slots
            .iter()
            .find(|(_, s)| s.gpa <= gpa && end <= s.end())
            .map(|(n, s)| (*n, s))
            .ok_or(Errno(libc::EFAULT))
    }

    /// The host address of `[gpa, gpa + len)` if that whole range lies inside one slot;
    /// EFAULT otherwise (also for a zero length or a range that wraps past 2^64).
    pub fn host_address(&self, gpa: u64, len: u64) -> Result<*mut u8> {
        let (_, s) = self.containing(gpa, len)?;
        // The offset is below s.size, which fits the host mapping that backs the slot.
        Ok(s.host.wrapping_add((gpa - s.gpa) as usize))
    }
}

/// libkvm's own close-on-exec duplicate of a caller's fd, closed on drop (without the
/// C library's cancellation point).
#[derive(Debug)]
pub(super) struct Dup(pub(super) RawFd);

impl Dup {
    pub(super) fn of(fd: RawFd) -> Result<Dup> {
        crate::cancel::dup_cloexec(fd).map(Dup)
    }
}

impl Drop for Dup {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this object's alone.
        unsafe { crate::cancel::close(self.0) };
    }
}

/// The memory of a slot backed by a file descriptor: libkvm's mapping of it and its own
/// duplicate of the fd (so the caller may close theirs), both released with the slot.
#[derive(Debug)]
pub struct FileBacking {
    // Field order is drop order: unmapped, then closed.
    pub(super) mapping: Mapping,
    pub(super) fd: Dup,
    pub(super) file: (u64, u64),
    pub(super) offset: u64,
    pub(super) shared: bool,
    pub(super) guest_memfd: bool,
}

impl FileBacking {
    /// Unmaps and closes now; if the kernel refuses to unmap, the backing is given back
    /// intact (see `Mapping::unmap`).
    pub fn unmap(self) -> std::result::Result<(), (FileBacking, Errno)> {
        let FileBacking { mapping, .. } = self;
        match mapping.unmap() {
            // `fd` and the rest were moved out with `self` and are dropped: closed.
            Ok(()) => Ok(()),
            Err((mapping, e)) => Err((FileBacking { mapping, ..self }, e)),
        }
    }

    /// The (guest_memfd, offset) the slot is bound to, if it is a guest_memfd's.
    pub fn guest_memfd(&self) -> Option<(RawFd, u64)> {
        self.guest_memfd.then_some((self.fd.0, self.offset))
    }

    /// libkvm's descriptor of the file (for a fork() child, which closes its copy).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(gpa: u64, size: u64) -> Slot {
        Slot {
            gpa,
            size,
            flags: 0,
            host: 0x1000_0000 as *mut u8,
            backing: Backing::User,
        }
    }

    #[test]
    fn ranges_must_be_aligned_nonempty_and_not_wrap() {
        assert_eq!(check_range(0, 4096), Ok(()));
        assert_eq!(check_range(1, 4096), Err(Errno(libc::EINVAL)));
        assert_eq!(check_range(0, 4095), Err(Errno(libc::EINVAL)));
        assert_eq!(check_range(0, 0), Err(Errno(libc::EINVAL)));
        assert_eq!(check_range(u64::MAX - 4095, 8192), Err(Errno(libc::EINVAL)));
        assert_eq!(check_range(u64::MAX - 4095, 4096), Err(Errno(libc::EINVAL)));
        assert_eq!(check_range(u64::MAX - 8191, 4096), Ok(()));
    }

    #[test]
    fn overlap_is_found_in_both_directions() {
        let mut m = MemoryMap::default();
        m.insert(0, slot(0x10000, 0x10000));
        assert_eq!(m.overlapping(0x0, 0x10000, 9), None);
        assert_eq!(m.overlapping(0x20000, 0x1000, 9), None);
        assert_eq!(m.overlapping(0xF000, 0x2000, 9), Some(0));
        assert_eq!(m.overlapping(0x1F000, 0x1000, 9), Some(0));
        assert_eq!(m.overlapping(0x0, 0x100000, 9), Some(0));
        assert_eq!(m.overlapping(0x10000, 0x10000, 0), None);
    }

    #[test]
    fn the_table_stays_sorted_by_slot_number() {
        let mut m = MemoryMap::default();
        for n in [5, 1, 9, 3] {
            m.reserve().unwrap();
            assert!(m.insert(n, slot(u64::from(n) << 20, 0x1000)).is_none());
        }
        assert!(m.insert(3, slot(0x7000_0000, 0x2000)).is_some());
        assert_eq!(m.get(3).map(|s| s.size), Some(0x2000));
        assert!(m.remove(1).is_some());
        assert!(m.remove(1).is_none());
        assert!(m.get(4).is_none());
        assert_eq!(
            m.layout(9).unwrap(),
            vec![(3, 0x7000_0000, 0x2000), (5, 5 << 20, 0x1000)]
        );
        assert_eq!(m.layout(10).unwrap().len(), 3);
    }

    #[test]
    fn lookups_stay_inside_one_slot() {
        let mut m = MemoryMap::default();
        m.insert(0, slot(0x10000, 0x2000));
        m.insert(1, slot(0x12000, 0x1000));
        let base = 0x1000_0000usize;
        assert_eq!(m.host_address(0x10000, 1).unwrap() as usize, base);
        assert_eq!(m.host_address(0x11FFF, 1).unwrap() as usize, base + 0x1FFF);
        // Contiguous in the guest, but in two slots: refused.
        assert_eq!(m.host_address(0x11FFF, 2), Err(Errno(libc::EFAULT)));
        assert_eq!(m.host_address(0x13000, 1), Err(Errno(libc::EFAULT)));
        assert_eq!(m.host_address(0x10000, 0), Err(Errno(libc::EFAULT)));
        assert_eq!(m.host_address(u64::MAX, 2), Err(Errno(libc::EFAULT)));
        assert_eq!(m.host_address(0xFFFF, 1), Err(Errno(libc::EFAULT)));
    }

    /// Runs `f` in a fork()ed child, which has one thread: no other test's thread (nor
    /// the signal stack of a thread the test harness starts) maps memory where `f`
    /// looks. Returns the child's exit status: what `f` returned, or 99 for a panic.
    fn alone(f: fn() -> i32) -> i32 {
        // SAFETY: the child only runs `f` (mmap, munmap, mincore) and _exit()s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = std::panic::catch_unwind(f).unwrap_or(99);
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child, writing its status.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        }
    }

    /// Whether the page at `p` is unmapped (mincore's ENOMEM).
    fn unmapped(p: *mut u8) -> bool {
        let mut v = 0u8;
        // SAFETY: mincore only inspects the range; ENOMEM means it is not mapped.
        let r = unsafe { libc::mincore(p.cast(), PAGE_SIZE as usize, &mut v) };
        (r, Errno::last()) == (-1, Errno(libc::ENOMEM))
    }

    #[test]
    fn owned_memory_has_a_free_page_above_it() {
        let checks = || {
            let map = Mapping::new(PAGE_SIZE).unwrap();
            if !unmapped(map.as_ptr().wrapping_add(PAGE_SIZE as usize)) {
                return 1; // the page above is mapped
            }
            let p = map.as_ptr();
            if map.unmap().is_err() {
                return 2;
            }
            if !unmapped(p) {
                return 3; // still mapped after the unmap
            }
            0
        };
        assert_eq!(alone(checks), 0);
    }

    #[test]
    fn owned_memory_is_zeroed_and_writable() {
        let map = Mapping::new(2 * PAGE_SIZE).unwrap();
        // SAFETY: the mapping is 8 KiB of readable, writable memory we own.
        unsafe {
            assert_eq!(*map.as_ptr().add(8191), 0);
            *map.as_ptr().add(8191) = 7;
            assert_eq!(*map.as_ptr().add(8191), 7);
        }
    }
}
