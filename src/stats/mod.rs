//! A VM's or a vcpu's binary statistics (KVM_GET_STATS_FD): the statistics fd, opened
//! once and closed with its VM or vcpu; the descriptors, read once, on first use, and
//! kept; and the read path, one pread(2) of the data block that allocates nothing.
//!
//! Reading needs no lock of the VM or vcpu and no ownership: the kernel copies the
//! counters out of its live statistics structure, with no exit of the vcpu. Opening is
//! the one step the kernel serialises with KVM_RUN (KVM_GET_STATS_FD on a vcpu fd takes
//! the vcpu's mutex), so a vcpu's fd is opened when the vcpu is made, before it can run
//! (`StatsCell::open_fd`): a first call made while the vcpu is inside KVM_RUN would wait
//! for that KVM_RUN, and it holds the lock fork() waits for (a fork waiting behind it
//! would hold up every later vcpu creation, among them perhaps the thread that would
//! wake the vcpu). A VM's fd, whose ioctl waits for nothing, is opened on first use.

mod descriptors;

use crate::error::{Errno, Result};
use crate::ioctl;
use descriptors::{Header, Table, HEADER_SIZE};
use parking_lot::Mutex;
use std::ffi::CStr;
use std::os::unix::io::RawFd;
use std::sync::OnceLock;

/// The statistics fd; closed on drop.
#[derive(Debug)]
struct StatsFd(RawFd);

impl Drop for StatsFd {
    fn drop(&mut self) {
        // SAFETY: the fd is this object's alone.
        unsafe { crate::cancel::close(self.0) };
    }
}

/// The statistics fd, for reading (the `StatsFd` of the same cell owns it).
#[derive(Debug)]
struct StatsFile(RawFd);

impl StatsFile {
    /// Fills `buf` from offset `at` of the file; EIO if the file ends first.
    fn read_exact(&self, buf: &mut [u8], at: usize) -> Result<()> {
        let at = i64::try_from(at).map_err(|_| Errno(libc::EIO))?;
        // SAFETY: `buf` is writable for its length, exclusively borrowed across the call.
        let n = unsafe { crate::cancel::pread(self.0, buf.as_mut_ptr(), buf.len(), at) }?;
        if n == buf.len() {
            Ok(())
        } else {
            Err(Errno(libc::EIO))
        }
    }

    /// Fills `values` from offset `at` of the file.
    fn read_values(&self, values: &mut [u64], at: usize) -> Result<()> {
        // SAFETY: the u64s of `values` are plain bytes for the kernel to write, any bit
        // pattern a valid u64; the byte view lives only for this call.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u8>(), values.len() * 8)
        };
        self.read_exact(bytes, at)
    }
}

/// The statistics of one VM or vcpu.
#[derive(Debug)]
pub struct Stats {
    fd: StatsFile,
    table: Table,
    /// The data block, for reading every statistic where the values do not lie in index
    /// order (allocated at open; empty where they do, the kernel's layout today).
    scratch: Mutex<Vec<u64>>,
}

impl Stats {
    /// The header and descriptors of statistics fd `fd`.
    fn parse(fd: RawFd) -> Result<Stats> {
        let fd = StatsFile(fd);
        let mut h = [0u8; HEADER_SIZE];
        fd.read_exact(&mut h, 0)?;
        let header = Header::parse(&h)?;
        let mut descs = crate::error::try_vec(header.desc_bytes(), 0u8)?;
        fd.read_exact(&mut descs, header.desc_offset as usize)?;
        let table = Table::parse(&header, &descs)?;
        let scratch = if table.in_order {
            Vec::new()
        } else {
            crate::error::try_vec(table.span.div_ceil(8), 0u64)?
        };
        Ok(Stats {
            fd,
            table,
            scratch: Mutex::new(scratch),
        })
    }

    /// The index of statistic `name`; ENOENT if the kernel has none of that name.
    pub fn lookup(&self, name: &CStr) -> Result<usize> {
        self.table.lookup(name.to_bytes())
    }

    /// The name of statistic `i`; ERANGE past the last. Lives as long as `self`.
    pub fn name(&self, i: usize) -> Result<&CStr> {
        self.table.name(i)
    }

    /// Flags, exponent and number of values of statistic `i`; ERANGE past the last.
    pub fn info(&self, i: usize) -> Result<(u32, i16, u32)> {
        let d = self.table.desc(i)?;
        Ok((d.flags, d.exponent, d.size))
    }

    /// Number of values of statistic `i`, or of all of them (`None`); ERANGE past the last.
    pub fn count(&self, i: Option<usize>) -> Result<usize> {
        match i {
            Some(i) => Ok(self.table.desc(i)?.size as usize),
            None => Ok(self.table.total),
        }
    }

    /// The values of statistic `i`, or of all of them in index order (`None`), into
    /// `out`, which holds exactly `count(i)` values: one pread, no allocation.
    pub fn read(&self, i: Option<usize>, out: &mut [u64]) -> Result<()> {
        let base = self.table.data_offset as usize;
        match i {
            Some(i) => self
                .fd
                .read_values(out, base + self.table.desc(i)?.offset as usize),
            None if self.table.in_order => self.fd.read_values(out, base),
            None => {
                let mut data = self.scratch.lock();
                self.fd.read_values(&mut data, base)?;
                self.table.gather(&data, out);
                Ok(())
            }
        }
    }
}

/// The statistics of a VM or vcpu: the fd (`open_fd`), the descriptors read on first use.
#[derive(Debug, Default)]
pub struct StatsCell {
    stats: OnceLock<Stats>,
    /// The statistics fd once opened, None if the kernel has no binary statistics. After
    /// `stats`, which reads it: dropped (closed) after it.
    fd: OnceLock<Option<StatsFd>>,
    /// Held while opening, so that two first calls open one fd.
    opening: Mutex<()>,
}

impl StatsCell {
    /// KVM_GET_STATS_FD on `owner` (the fd of the VM or vcpu holding this cell), unless
    /// done already; a kernel without binary statistics is no error here (the
    /// statistics calls then fail with EOPNOTSUPP).
    pub fn open_fd(&self, owner: RawFd) -> Result<()> {
        let _one = self.opening.lock();
        self.fd_or_open(owner).map(drop)
    }

    /// The fd, opened now if it is not yet (under `opening`); None without statistics.
    fn fd_or_open(&self, owner: RawFd) -> Result<Option<RawFd>> {
        if let Some(fd) = self.fd.get() {
            return Ok(fd.as_ref().map(|f| f.0));
        }
        // SAFETY: KVM_GET_STATS_FD takes no argument; the kernel returns a new fd
        // (O_CLOEXEC), which StatsFd owns from here.
        let fd = match unsafe { ioctl::ioctl(owner, ioctl::KVM_GET_STATS_FD, 0) } {
            Ok(fd) => Some(StatsFd(fd)),
            // A kernel without KVM_CAP_BINARY_STATS_FD: the ioctl is unknown to it.
            Err(Errno(libc::ENOTTY | libc::EINVAL)) => None,
            Err(e) => return Err(e),
        };
        Ok(self.fd.get_or_init(|| fd).as_ref().map(|f| f.0))
    }

    /// The statistics of `owner`, the fd opened if `open_fd` did not, the descriptors
    /// read by the first call. EOPNOTSUPP if the kernel has no binary statistics.
    pub fn get(&self, owner: RawFd) -> Result<&Stats> {
        if let Some(s) = self.stats.get() {
            return Ok(s);
        }
        let _one = self.opening.lock();
        if let Some(s) = self.stats.get() {
            return Ok(s);
        }
        let fd = self.fd_or_open(owner)?.ok_or(Errno(libc::EOPNOTSUPP))?;
        let s = Stats::parse(fd)?;
        Ok(self.stats.get_or_init(|| s))
    }

    /// Whether the fd is open (or known not to exist): `get` then makes no fd.
    pub fn is_open(&self) -> bool {
        self.fd.get().is_some()
    }

    /// The statistics fd, if it is open (for a fork child, which closes its copy).
    pub fn fd(&self) -> Option<RawFd> {
        self.fd.get().and_then(Option::as_ref).map(|f| f.0)
    }
}
