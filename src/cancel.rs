//! Thread cancellation: no libkvm function is a cancellation point.
//!
//! A pthread_cancel() acted on at a cancellation point inside libkvm would unwind through
//! Rust frames, which a forced unwind cannot cross: the process aborts ("FATAL: exception
//! not rethrown"). So libkvm never lets the C library act on a cancellation:
//!
//! - the system calls libkvm makes itself that POSIX makes cancellation points (open,
//!   close, pread, sigtimedwait) are issued raw (`libc::syscall`), which the C library's
//!   cancellation never looks at;
//! - where a file descriptor is closed by a dependency (dropping kvm-ioctls' `VmFd` and
//!   `VcpuFd` closes through the C library's close(), a cancellation point), the caller
//!   holds a [`NoCancel`] for the drop;
//! - ioctl, mmap, munmap, madvise, tgkill and the futex calls of the locks are no
//!   cancellation points.
//!
//! A cancellation requested meanwhile stays pending and is acted on at the thread's next
//! cancellation point outside libkvm. Asynchronous cancellation (PTHREAD_CANCEL_ASYNCHRONOUS)
//! may strike anywhere, and POSIX allows it only around async-cancel-safe functions, which
//! libkvm's are not: libkvm(7) says so.

use crate::error::{Errno, Result};
use std::os::unix::io::RawFd;

/// An import that the libc crate lacks for Linux (POSIX, in every C library libkvm links
/// with); not part of libkvm's interface, so kept out of the header.
/// cbindgen:ignore
mod ffi {
    extern "C" {
        pub fn pthread_setcancelstate(
            state: libc::c_int,
            oldstate: *mut libc::c_int,
        ) -> libc::c_int;
    }
}
use ffi::pthread_setcancelstate;

/// PTHREAD_CANCEL_DISABLE (glibc and musl: 1).
const PTHREAD_CANCEL_DISABLE: libc::c_int = 1;

/// Cancellation disabled on the calling thread while it lives; the thread's earlier state
/// is restored on drop. Neither call is a cancellation point, and restoring a deferred
/// thread's state does not act on a pending cancellation.
pub struct NoCancel(libc::c_int);

impl NoCancel {
    /// Disables cancellation on the calling thread.
    pub fn new() -> NoCancel {
        let mut old = 0;
        // SAFETY: a valid state and a valid place for the old one; cannot fail.
        unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
        NoCancel(old)
    }
}

impl Drop for NoCancel {
    fn drop(&mut self) {
        let mut ignored = 0;
        // SAFETY: restores the state pthread_setcancelstate reported; cannot fail.
        unsafe { pthread_setcancelstate(self.0, &mut ignored) };
    }
}

/// close(2) without the C library's cancellation point. Errors are ignored as close's
/// are everywhere (the descriptor is gone either way on Linux).
///
/// # Safety
/// `fd` is a descriptor the caller owns and nothing uses afterwards.
pub unsafe fn close(fd: RawFd) {
    // SAFETY: the caller's promise; a plain system call.
    unsafe { libc::syscall(libc::SYS_close, libc::c_long::from(fd)) };
}

/// open(2) of `path` (NUL-terminated) with `flags`, without the cancellation point.
pub fn open(path: &std::ffi::CStr, flags: libc::c_int) -> Result<RawFd> {
    // SAFETY: `path` is NUL-terminated and lives across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::c_long::from(libc::AT_FDCWD),
            path.as_ptr(),
            libc::c_long::from(flags),
            0 as libc::c_long,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    RawFd::try_from(r).map_err(|_| Errno(libc::EBADF))
}

/// A close-on-exec duplicate of `fd` (fcntl F_DUPFD_CLOEXEC), owned by the caller: the one
/// way libkvm duplicates a descriptor (fcntl is no cancellation point).
pub fn dup_cloexec(fd: RawFd) -> Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC only makes a new descriptor (or fails with EBADF/EMFILE).
    crate::error::check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
}

/// pread(2) of up to `len` bytes at `offset` into `buf`, without the cancellation point:
/// the number of bytes read.
///
/// # Safety
/// `buf` is writable for `len` bytes and nothing else uses it during the call.
pub unsafe fn pread(fd: RawFd, buf: *mut u8, len: usize, offset: i64) -> Result<usize> {
    // SAFETY: the caller's promise for `buf`; a wrong fd only makes the kernel fail.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pread64,
            libc::c_long::from(fd),
            buf,
            len,
            offset as libc::c_long,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(r as usize)
}

/// sigtimedwait(2) with a zero timeout on `set`, without the cancellation point: the
/// signal taken, or None if none of `set` was pending.
pub fn take_pending(set: &libc::sigset_t) -> Option<libc::c_int> {
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // The kernel's sigset size on x86-64 (_NSIG / 8).
    const KERNEL_SIGSET: libc::c_long = 8;
    // SAFETY: valid set and timeout for the call; no siginfo is asked for.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigtimedwait,
            set as *const libc::sigset_t,
            std::ptr::null_mut::<libc::siginfo_t>(),
            &zero as *const libc::timespec,
            KERNEL_SIGSET,
        )
    };
    (r > 0).then_some(r as libc::c_int)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_close_raw() {
        let fd = open(c"/dev/null", libc::O_RDONLY | libc::O_CLOEXEC).unwrap();
        // SAFETY: F_GETFD on our own fd.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        // SAFETY: our own fd, unused afterwards.
        unsafe { close(fd) };
        // SAFETY: F_GETFD on a closed fd only fails.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_GETFD) }, -1);
        assert_eq!(
            open(c"/nonexistent/x", libc::O_RDONLY | libc::O_CLOEXEC),
            Err(Errno(libc::ENOENT))
        );
    }

    #[test]
    fn cancellation_is_disabled_and_restored() {
        let mut state = 0;
        {
            let _g = NoCancel::new();
            // SAFETY: sets and reads back the state.
            unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut state) };
            assert_eq!(state, PTHREAD_CANCEL_DISABLE);
        }
        // SAFETY: as above.
        unsafe { pthread_setcancelstate(0, &mut state) };
        assert_eq!(state, 0, "the enabled state is back");
    }
}
