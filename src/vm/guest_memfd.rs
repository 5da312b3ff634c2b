//! guest_memfd: memory only KVM hands out (KVM_CREATE_GUEST_MEMFD), the VM's record of
//! the ones it created (so that `kvm_set_memory_region_fd` recognises them, whatever
//! descriptor names them), and slots bound to one (KVM_SET_USER_MEMORY_REGION2 with
//! KVM_MEM_GUEST_MEMFD).
//!
//! The numbers are the kernel's (include/uapi/linux/kvm.h); kvm-bindings 0.14 has the
//! structs but not these flags.

use super::Vm;
use crate::error::{Errno, Result};
use kvm_bindings::{
    kvm_create_guest_memfd, kvm_userspace_memory_region, kvm_userspace_memory_region2,
    KVM_MEM_GUEST_MEMFD,
};
use parking_lot::Mutex;
use std::os::unix::io::RawFd;

/// KVM_CAP_GUEST_MEMFD_FLAGS: the flags KVM_CREATE_GUEST_MEMFD takes on this VM.
pub(crate) const CAP_GUEST_MEMFD_FLAGS: libc::c_long = 244;
/// GUEST_MEMFD_FLAG_MMAP: the host may mmap() the file.
pub(crate) const FLAG_MMAP: u64 = 1 << 0;
/// GUEST_MEMFD_FLAG_INIT_SHARED: its memory starts shared with the host.
pub(crate) const FLAG_INIT_SHARED: u64 = 1 << 1;

/// One guest_memfd a VM created: which file (st_dev, st_ino), its size (fixed at
/// creation) and creation flags.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Created {
    file: (u64, u64),
    size: u64,
    flags: u64,
}

/// The guest_memfds a VM created. An entry outlives the file (a caller may close it at
/// any time, unseen); a later file is taken for it only if it has the same device, inode
/// number and size, as an inode number is reused only once its file is gone.
#[derive(Debug, Default)]
pub struct GuestMemfds(Mutex<Vec<Created>>);

impl GuestMemfds {
    /// The creation flags of `file`, of `size` bytes, if this VM created it.
    pub fn flags_of(&self, file: (u64, u64), size: u64) -> Option<u64> {
        let created = self.0.lock();
        let found = created
            .iter()
            .rev()
            .find(|c| c.file == file && c.size == size);
        found.map(|c| c.flags)
    }

    /// Records the guest_memfd `make` creates (its fd, identity and flags), with the room
    /// for the record reserved first, so that a file made is always recorded.
    fn create(&self, flags: u64, make: impl FnOnce() -> Result<RawFd>) -> Result<RawFd> {
        let mut created = self.0.lock();
        created.try_reserve(1).map_err(crate::error::nomem)?;
        let fd = make()?;
        let (file, size) = match identity(fd) {
            Ok(id) => id,
            Err(e) => {
                // SAFETY: the new fd is ours alone until returned.
                unsafe { crate::cancel::close(fd) };
                return Err(e);
            }
        };
        // A reused inode number replaces its earlier entry.
        created.retain(|old| old.file != file);
        created.push(Created { file, size, flags });
        Ok(fd)
    }
}

/// (st_dev, st_ino, st_size) of `fd`.
fn identity(fd: RawFd) -> Result<((u64, u64), u64)> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one struct stat, which lives across the call.
    crate::error::check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(((st.st_dev, st.st_ino), st.st_size as u64))
}

/// The flags `kvm_create_guest_memfd` accepts where the VM reports `supported`
/// (KVM_CAP_GUEST_MEMFD_FLAGS), for a file of `size` bytes: EINVAL for others, for a
/// size of 0 or not a multiple of the page size.
fn check_request(size: u64, flags: u64, supported: u64) -> Result<()> {
    if size == 0 || size % super::slots::PAGE_SIZE != 0 || flags & !supported != 0 {
        return Err(Errno(libc::EINVAL));
    }
    Ok(())
}

impl Vm {
    /// `kvm_create_guest_memfd`: a new guest_memfd of `size` bytes for this VM, close-on-
    /// exec. EOPNOTSUPP without KVM_CAP_GUEST_MEMFD, EINVAL for flags the VM does not
    /// report in KVM_CAP_GUEST_MEMFD_FLAGS or a bad size.
    pub fn create_guest_memfd(&self, size: u64, flags: u64) -> Result<RawFd> {
        let cap = libc::c_long::from(kvm_bindings::KVM_CAP_GUEST_MEMFD as i32);
        if self.check_extension(cap)? <= 0 {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        // A kernel with guest_memfd but no flags capability takes no flags.
        let supported = self.check_extension(CAP_GUEST_MEMFD_FLAGS)?.max(0) as u64;
        check_request(size, flags, supported)?;
        let gmem = kvm_create_guest_memfd {
            size,
            flags,
            ..Default::default()
        };
        self.guest_memfds.create(flags, || {
            let fd = self.fd().create_guest_memfd(gmem).map_err(Errno::from)?;
            // The kernel makes the fd without O_CLOEXEC; every fd libkvm makes has it.
            // SAFETY: F_SETFD on the fd just made.
            let r = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            if let Err(e) = crate::error::check(r) {
                // SAFETY: the new fd is ours alone.
                unsafe { crate::cancel::close(fd) };
                return Err(e);
            }
            Ok(fd)
        })
    }

    /// The creation flags of `file` (of `size` bytes) if it is a guest_memfd of this VM.
    pub(crate) fn guest_memfd_flags(&self, file: (u64, u64), size: u64) -> Option<u64> {
        self.guest_memfds.flags_of(file, size)
    }

    /// KVM_SET_USER_MEMORY_REGION2 of `region` bound to guest_memfd `gmem` from `offset`
    /// (KVM_MEM_GUEST_MEMFD); its host address is libkvm's shared mapping of that range.
    pub(crate) fn kvm_set_guest_memfd_slot(
        &self,
        region: &kvm_userspace_memory_region,
        (gmem, offset): (RawFd, u64),
    ) -> Result<()> {
        let region2 = kvm_userspace_memory_region2 {
            slot: region.slot,
            flags: region.flags | KVM_MEM_GUEST_MEMFD,
            guest_phys_addr: region.guest_phys_addr,
            memory_size: region.memory_size,
            userspace_addr: region.userspace_addr,
            guest_memfd_offset: offset,
            guest_memfd: gmem as u32,
            ..Default::default()
        };
        // SAFETY: the host address is libkvm's own mapping of the guest_memfd range the
        // slot is bound to, kept until the slot is deleted; the kernel checks the rest.
        unsafe { self.fd().set_user_memory_region2(region2) }.map_err(Errno::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reported_flags_and_whole_pages_are_asked_for() {
        let both = FLAG_MMAP | FLAG_INIT_SHARED;
        assert_eq!(check_request(4096, 0, 0), Ok(()));
        assert_eq!(check_request(4096, FLAG_MMAP, 0), Err(Errno(libc::EINVAL)));
        assert_eq!(check_request(4096, both, both), Ok(()));
        assert_eq!(check_request(4096, 4, both), Err(Errno(libc::EINVAL)));
        assert_eq!(check_request(0, 0, both), Err(Errno(libc::EINVAL)));
        assert_eq!(check_request(4095, 0, both), Err(Errno(libc::EINVAL)));
    }

    #[test]
    fn a_file_is_known_by_identity_and_size() {
        let t = GuestMemfds::default();
        // Any file stands in for a guest_memfd here: what is recorded is its identity.
        let fd = crate::cancel::open(c"/dev/null", libc::O_RDONLY | libc::O_CLOEXEC).unwrap();
        let (file, size) = identity(fd).unwrap();
        assert_eq!(t.create(FLAG_MMAP, || Ok(fd)), Ok(fd));
        assert_eq!(t.flags_of(file, size), Some(FLAG_MMAP));
        assert_eq!(t.flags_of(file, size + 4096), None);
        assert_eq!(t.flags_of((file.0, file.1 + 1), size), None);
        // The same inode again (a reused number) replaces the entry.
        assert_eq!(t.create(0, || Ok(fd)), Ok(fd));
        assert_eq!(t.flags_of(file, size), Some(0));
        assert_eq!(t.0.lock().len(), 1);
        // A failed creation records nothing.
        assert_eq!(
            t.create(0, || Err(Errno(libc::EINVAL))),
            Err(Errno(libc::EINVAL))
        );
        assert_eq!(t.0.lock().len(), 1);
        // SAFETY: our own fd, unused afterwards.
        unsafe { crate::cancel::close(fd) };
    }

    #[test]
    fn the_numbers_are_the_kernels() {
        // include/uapi/linux/kvm.h (Linux 6.18).
        assert_eq!(CAP_GUEST_MEMFD_FLAGS, 244);
        assert_eq!(kvm_bindings::KVM_CAP_GUEST_MEMFD, 234);
        assert_eq!(KVM_MEM_GUEST_MEMFD, 1 << 2);
        assert_eq!((FLAG_MMAP, FLAG_INIT_SHARED), (1, 2));
        assert_eq!(std::mem::size_of::<kvm_create_guest_memfd>(), 64);
        assert_eq!(std::mem::size_of::<kvm_userspace_memory_region2>(), 160);
    }
}
