//! Guest memory from a file descriptor (`kvm_set_memory_region_fd`): what a request may
//! ask, libkvm's own mapping and duplicate of the fd, and when a request names the same
//! memory as an existing slot (so that the slot changes in place).
//!
//! A slot's memory comes from one of three [`Source`]s: memory libkvm allocates, memory
//! the caller maps, or a file descriptor libkvm maps (a memfd, a regular or hugetlbfs
//! file, a guest_memfd). A source is checked ([`Source::check`]) before anything changes,
//! then turned into the slot's [`Backing`] ([`Checked::back`]).

use super::slots::{Backing, Dup, FileBacking, Mapping, Slot, PAGE_SIZE};
use crate::error::{Errno, Result};
use std::os::unix::io::RawFd;

/// hugetlbfs' `f_type` (statfs(2)).
const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// Where a slot's memory comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// Zeroed memory libkvm allocates (`kvm_set_memory_region`).
    Anonymous,
    /// The caller's memory at this host address (`kvm_set_user_memory_region`).
    User(*mut u8),
    /// `fd` from `offset`, mapped by libkvm with `map_flags` (`kvm_set_memory_region_fd`).
    File {
        /// The caller's descriptor (libkvm maps and keeps a duplicate of it).
        fd: RawFd,
        /// Byte offset into the file, a multiple of the page size.
        offset: u64,
        /// MAP_SHARED or MAP_PRIVATE, optionally | MAP_POPULATE.
        map_flags: i32,
    },
}

/// A [`Source`] checked against the slot's size and, for a file, against the file.
#[derive(Debug)]
pub enum Checked {
    /// See [`Source::Anonymous`].
    Anonymous,
    /// See [`Source::User`].
    User(*mut u8),
    /// A file that can be asked to back the slot.
    File(FileSpec),
}

/// A file descriptor request, checked: which file, where, how it is to be mapped.
#[derive(Debug)]
pub struct FileSpec {
    fd: RawFd,
    offset: u64,
    map_flags: i32,
    /// (st_dev, st_ino): which file it is, whatever descriptor names it.
    file: (u64, u64),
    /// Free bytes above the mapping: the file's page size (see `Mapping`).
    gap: u64,
    /// A guest_memfd of this VM: the slot is bound to it (KVM_MEM_GUEST_MEMFD).
    guest_memfd: bool,
}

/// A guest_memfd's creation flags (GUEST_MEMFD_FLAG_MMAP, GUEST_MEMFD_FLAG_INIT_SHARED).
pub(crate) type GuestMemfdFlags = u64;

impl Source {
    /// Checks the source for a slot of `size` bytes (already a non-zero multiple of the
    /// page size): EINVAL for a misaligned host address, a bad offset, range or
    /// `map_flags`, EBADF for a bad fd. `guest_memfd(file, file_size)` says whether a file
    /// is a guest_memfd of this VM, and with which creation flags.
    pub fn check(
        self,
        size: u64,
        guest_memfd: impl Fn((u64, u64), u64) -> Option<GuestMemfdFlags>,
    ) -> Result<Checked> {
        match self {
            Source::Anonymous => Ok(Checked::Anonymous),
            Source::User(h) => {
                if h as usize % PAGE_SIZE as usize != 0 {
                    return Err(Errno(libc::EINVAL));
                }
                (h as u64).checked_add(size).ok_or(Errno(libc::EINVAL))?;
                Ok(Checked::User(h))
            }
            Source::File {
                fd,
                offset,
                map_flags,
            } => check_file(fd, offset, map_flags, size, guest_memfd).map(Checked::File),
        }
    }
}

fn check_file(
    fd: RawFd,
    offset: u64,
    map_flags: i32,
    size: u64,
    guest_memfd: impl Fn((u64, u64), u64) -> Option<GuestMemfdFlags>,
) -> Result<FileSpec> {
    let sharing = map_flags & !libc::MAP_POPULATE;
    if sharing != libc::MAP_SHARED && sharing != libc::MAP_PRIVATE {
        return Err(Errno(libc::EINVAL));
    }
    if fd < 0 {
        return Err(Errno(libc::EBADF));
    }
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one struct stat, which lives across the call.
    crate::error::check(unsafe { libc::fstat(fd, &mut st) })?;
    let end = offset.checked_add(size).ok_or(Errno(libc::EINVAL))?;
    if offset % PAGE_SIZE != 0 || i64::try_from(end).is_err() {
        return Err(Errno(libc::EINVAL));
    }
    // A regular file (memfd, tmpfs, hugetlbfs, guest_memfd) must hold the whole range: a
    // mapping past its end would fault (SIGBUS) on the host and for the guest.
    if st.st_mode & libc::S_IFMT == libc::S_IFREG && end > st.st_size as u64 {
        return Err(Errno(libc::EINVAL));
    }
    let mut gap = PAGE_SIZE;
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes one struct statfs, which lives across the call.
    if unsafe { libc::fstatfs(fd, &mut sfs) } == 0 && sfs.f_type as i64 == HUGETLBFS_MAGIC {
        // Huge pages: offset, size and the gap are whole huge pages (st_blksize).
        gap = (st.st_blksize as u64).max(PAGE_SIZE);
        if offset % gap != 0 || size % gap != 0 {
            return Err(Errno(libc::EINVAL));
        }
    }
    let file = (st.st_dev, st.st_ino);
    let gmem_flags = guest_memfd(file, st.st_size as u64);
    if let Some(flags) = gmem_flags {
        // A guest_memfd is the guest's memory only shared, and mapped by the host only
        // where it was created mappable; and its memory must start shared with the host
        // (INIT_SHARED): a host access to private memory is SIGBUS (the kernel's fault
        // handler), which libkvm's own reads (kvm_guest_memory, snapshots) would be.
        let needed = super::guest_memfd::FLAG_MMAP | super::guest_memfd::FLAG_INIT_SHARED;
        if sharing != libc::MAP_SHARED || flags & needed != needed {
            return Err(Errno(libc::EINVAL));
        }
    }
    Ok(FileSpec {
        fd,
        offset,
        map_flags,
        file,
        gap,
        guest_memfd: gmem_flags.is_some(),
    })
}

impl Checked {
    /// Whether `old`'s memory is what this source names, so that the slot may change its
    /// flags or guest address in place (same memory, same contents): libkvm's own memory
    /// again, the same caller address, or the same file at the same offset mapped the
    /// same way (shared or private).
    pub fn same_memory(&self, old: &Slot) -> bool {
        match (&old.backing, self) {
            (Backing::Owned(_), Checked::Anonymous) => true,
            (Backing::User, Checked::User(h)) => *h == old.host,
            (Backing::File(f), Checked::File(s)) => {
                (f.file, f.offset, f.shared) == (s.file, s.offset, s.shared())
            }
            _ => false,
        }
    }

    /// The host memory for a slot of `size` bytes: (host address, backing). ENOMEM, or
    /// for a file mmap's errno (ENODEV: the file cannot be mapped; EACCES: not opened for
    /// the access asked; EMFILE: no fd left for libkvm's duplicate).
    pub fn back(&self, size: u64) -> Result<(*mut u8, Backing)> {
        match self {
            Checked::Anonymous => {
                let m = Mapping::new(size)?;
                Ok((m.as_ptr(), Backing::Owned(m)))
            }
            Checked::User(h) => Ok((*h, Backing::User)),
            Checked::File(s) => {
                let fd = Dup::of(s.fd)?;
                // Private memory is committed page by page as the guest writes it, like
                // libkvm's own (MAP_NORESERVE); shared memory is the file's.
                let extra = if s.shared() { 0 } else { libc::MAP_NORESERVE };
                let mapping = Mapping::of_file(size, s.gap, s.map_flags | extra, fd.0, s.offset)?;
                let host = mapping.as_ptr();
                let f = FileBacking {
                    mapping,
                    fd,
                    file: s.file,
                    offset: s.offset,
                    shared: s.shared(),
                    guest_memfd: s.guest_memfd,
                };
                Ok((host, Backing::File(f)))
            }
        }
    }
}

impl FileSpec {
    fn shared(&self) -> bool {
        self.map_flags & libc::MAP_SHARED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::guest_memfd::{FLAG_INIT_SHARED, FLAG_MMAP};

    /// A memfd of `pages` pages (closed on drop).
    struct Memfd(Dup);

    fn memfd(pages: u64) -> Memfd {
        // SAFETY: a NUL-terminated name; the new fd is owned by the `Dup`.
        let fd = unsafe { libc::memfd_create(c"fd_backing".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        let m = Memfd(Dup(fd));
        // SAFETY: ftruncate of our own memfd.
        let r = unsafe { libc::ftruncate(fd, (pages * PAGE_SIZE) as i64) };
        assert_eq!(r, 0);
        m
    }

    fn file(fd: RawFd, offset: u64, map_flags: i32) -> Source {
        Source::File {
            fd,
            offset,
            map_flags,
        }
    }

    fn not_gmem(_: (u64, u64), _: u64) -> Option<u64> {
        None
    }

    fn err(r: Result<Checked>) -> Errno {
        r.map(|_| ()).unwrap_err()
    }

    #[test]
    fn map_flags_offsets_and_ranges_are_checked_before_anything_is_mapped() {
        let m = memfd(4);
        let fd = m.0 .0;
        let (s, p) = (libc::MAP_SHARED, libc::MAP_PRIVATE);
        for bad in [
            0,
            s | p,
            libc::MAP_POPULATE,
            s | libc::MAP_FIXED,
            p | libc::MAP_ANONYMOUS,
        ] {
            assert_eq!(
                err(file(fd, 0, bad).check(4096, not_gmem)),
                Errno(libc::EINVAL)
            );
        }
        assert_eq!(
            err(file(-1, 0, s).check(4096, not_gmem)),
            Errno(libc::EBADF)
        );
        assert_eq!(
            err(file(fd, 1, s).check(4096, not_gmem)),
            Errno(libc::EINVAL)
        );
        assert_eq!(
            err(file(fd, 4096, s).check(16384, not_gmem)),
            Errno(libc::EINVAL)
        );
        assert_eq!(
            err(file(fd, !4095, p).check(8192, not_gmem)),
            Errno(libc::EINVAL)
        );
        assert_eq!(
            err(file(fd, 1 << 63, p).check(4096, not_gmem)),
            Errno(libc::EINVAL)
        );
        assert!(file(fd, 4096, s | libc::MAP_POPULATE)
            .check(12288, not_gmem)
            .is_ok());
        assert!(file(fd, 0, p).check(16384, not_gmem).is_ok());
    }

    #[test]
    fn a_guest_memfd_must_be_mappable_and_shared() {
        let m = memfd(4);
        let fd = m.0 .0;
        let gmem = |flags| move |_: (u64, u64), _: u64| Some(flags);
        let no_mmap = file(fd, 0, libc::MAP_SHARED).check(4096, gmem(0));
        assert_eq!(err(no_mmap), Errno(libc::EINVAL));
        let both = FLAG_MMAP | FLAG_INIT_SHARED;
        let private = file(fd, 0, libc::MAP_PRIVATE).check(4096, gmem(both));
        assert_eq!(err(private), Errno(libc::EINVAL));
        // Mappable but private memory: the host's reads would be SIGBUS.
        let not_shared = file(fd, 0, libc::MAP_SHARED).check(4096, gmem(FLAG_MMAP));
        assert_eq!(err(not_shared), Errno(libc::EINVAL));
        let shared_only = file(fd, 0, libc::MAP_SHARED).check(4096, gmem(FLAG_INIT_SHARED));
        assert_eq!(err(shared_only), Errno(libc::EINVAL));
        let Ok(Checked::File(spec)) = file(fd, 0, libc::MAP_SHARED).check(4096, gmem(both)) else {
            panic!("a mappable guest_memfd, shared, is accepted");
        };
        assert!(spec.guest_memfd);
    }

    #[test]
    fn the_mapping_is_the_files_and_the_duplicate_goes_with_it() {
        let m = memfd(2);
        let fd = m.0 .0;
        let checked = file(fd, 4096, libc::MAP_SHARED)
            .check(4096, not_gmem)
            .unwrap();
        let (host, backing) = checked.back(4096).unwrap();
        let Backing::File(f) = &backing else {
            panic!("a file backing");
        };
        let dup = f.raw_fd();
        assert_ne!(dup, fd);
        assert_eq!(f.guest_memfd(), None);
        // SAFETY: F_GETFD on libkvm's duplicate.
        let fd_flags = unsafe { libc::fcntl(dup, libc::F_GETFD) };
        assert_eq!(fd_flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        // SAFETY: the page is mapped shared from offset 4096; pwrite/pread of our memfd.
        unsafe {
            *host = 0x5a;
            let mut b = 0u8;
            assert_eq!(libc::pread(fd, (&mut b as *mut u8).cast(), 1, 4096), 1);
            assert_eq!(b, 0x5a);
        }
        // The same file at the same offset, shared: the same memory, through any fd.
        let slot = Slot {
            gpa: 0,
            size: 4096,
            flags: 0,
            host,
            backing,
        };
        let again = file(dup, 4096, libc::MAP_SHARED)
            .check(4096, not_gmem)
            .unwrap();
        assert!(again.same_memory(&slot));
        let private = file(fd, 4096, libc::MAP_PRIVATE)
            .check(4096, not_gmem)
            .unwrap();
        assert!(!private.same_memory(&slot));
        let elsewhere = file(fd, 0, libc::MAP_SHARED).check(4096, not_gmem).unwrap();
        assert!(!elsewhere.same_memory(&slot));
        assert!(!Checked::Anonymous.same_memory(&slot));
        assert_eq!(slot.backing.unmap().map_err(|(_, e)| e), Ok(()));
        // SAFETY: F_GETFD of a closed fd only fails.
        assert_eq!(unsafe { libc::fcntl(dup, libc::F_GETFD) }, -1);
    }

    #[test]
    fn a_file_that_cannot_be_mapped_is_what_mmap_says() {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds, which the `Dup`s own.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (r, _w) = (Dup(fds[0]), Dup(fds[1]));
        let checked = file(r.0, 0, libc::MAP_PRIVATE)
            .check(4096, not_gmem)
            .unwrap();
        assert_eq!(checked.back(4096).map(|_| ()), Err(Errno(libc::ENODEV)));
    }
}
