//! Fault-checked access to memory the caller handed over (leaf): where the kernel would
//! read or write a caller's buffer itself (and answer EFAULT for a bad one), libkvm does
//! the same through system calls, so that a wild pointer is EFAULT, never SIGSEGV.
//!
//! Zeroing goes through read(2) of /dev/zero, the cheapest system call that writes user
//! memory with the kernel's fault checks (one descriptor for the process, close-on-exec,
//! opened on first use): once it succeeded, the range is mapped and writable, and the
//! caller's words can be written to it directly for the rest of the call. Reading goes
//! through process_vm_readv(2) on the process itself (also for vm/irq.rs's routing
//! table).

use crate::error::{Errno, Result};
use std::os::unix::io::RawFd;
use std::sync::OnceLock;

static ZERO: OnceLock<RawFd> = OnceLock::new();

/// The process's /dev/zero descriptor, opened on first use.
pub fn ready() -> Result<RawFd> {
    if let Some(&fd) = ZERO.get() {
        return Ok(fd);
    }
    let fd = crate::cancel::open(c"/dev/zero", libc::O_RDONLY | libc::O_CLOEXEC)?;
    if ZERO.set(fd).is_err() {
        // Another thread was first: its descriptor stays, this one goes.
        // SAFETY: `fd` is ours alone and nothing else has it.
        unsafe { crate::cancel::close(fd) };
    }
    Ok(*ZERO.get().expect("set above"))
}

/// Zeroes the caller's `len` bytes at `out`: EFAULT (and maybe some zeroed) unless all
/// of them are mapped writable. Afterwards `out .. out + len` may be written directly
/// during the call (the caller's contract: the buffer stays while the call runs).
///
/// # Safety
/// `out .. out + len` is the caller's buffer (or no mapping at all), which nothing in
/// libkvm uses: the kernel zeroes whatever of it is mapped writable.
pub unsafe fn zero(out: *mut u8, len: usize) -> Result<()> {
    let fd = ready()?;
    let mut done = 0;
    while done < len {
        // SAFETY: the caller's promise for the range; the kernel writes only what is
        // mapped writable and fails with EFAULT for the rest.
        match unsafe { crate::cancel::pread(fd, out.wrapping_add(done), len - done, 0) } {
            Ok(0) => return Err(Errno(libc::EFAULT)),
            Ok(n) => done += n,
            Err(Errno(libc::EINTR)) => {}
            Err(_) => return Err(Errno(libc::EFAULT)),
        }
    }
    Ok(())
}

/// Copies the caller's `dst.len()` bytes at `src` (this process's memory) into `dst`
/// with process_vm_readv: EFAULT where any of them is not readable, instead of a fault.
pub fn read(src: *const u8, dst: &mut [u8]) -> Result<()> {
    let local = libc::iovec {
        iov_base: dst.as_mut_ptr().cast(),
        iov_len: dst.len(),
    };
    let remote = libc::iovec {
        iov_base: src as *mut libc::c_void,
        iov_len: dst.len(),
    };
    // SAFETY: `local` describes `dst`, writable for its length; the remote range is only
    // read, by the kernel, which checks it. Reading one's own memory needs no privilege,
    // and process_vm_readv is no cancellation point.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    match n {
        n if n >= 0 && n as usize == dst.len() => Ok(()),
        n if n >= 0 => Err(Errno(libc::EFAULT)), // a partial read: the rest is unreadable
        _ => Err(Errno::last()),
    }
}
