//! The one error type of the core, and the bridge from `Result` to `-1`/`errno` used by
//! every C entry point.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Once, OnceLock};

/// An errno value. The core returns `Result<T, Errno>`; the C layer stores it in `errno`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

/// Result of every fallible core function.
pub type Result<T> = std::result::Result<T, Errno>;

impl Errno {
    /// The calling thread's current `errno`, read right after a failed system call.
    pub fn last() -> Errno {
        Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }
}

impl From<kvm_ioctls::Error> for Errno {
    /// A failure always carries a positive errno: a kvm-ioctls error that does not (as its
    /// get_tsc_khz once produced, errno -1) becomes EIO rather than reaching C as errno <= 0.
    fn from(e: kvm_ioctls::Error) -> Errno {
        match e.errno() {
            n if n > 0 => Errno(n),
            _ => Errno(libc::EIO),
        }
    }
}

/// Turns the return value of a raw system call into a `Result`, reading `errno` on -1.
pub fn check(ret: libc::c_int) -> Result<libc::c_int> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// errno reported when an internal bug (a Rust panic) was caught at the C boundary.
pub(crate) const EPANIC: i32 = libc::ENOTRECOVERABLE;

fn set_errno(e: i32) {
    // SAFETY: __errno_location returns the calling thread's errno slot, valid for the
    // thread's lifetime.
    unsafe { *libc::__errno_location() = e };
}

static QUIET_PANICS: Once = Once::new();

/// libkvm must never print. Its copy of the Rust runtime is private to the shared
/// object, so replacing the panic hook here silences only libkvm's own panics (which the
/// C boundary turns into `ENOTRECOVERABLE`).
fn quiet_panics() {
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

/// Runs the body of a C entry point that returns `int`: `Ok(v)` gives `v`, `Err(e)` gives
/// -1 with `errno = e`, and a panic gives -1 with `errno = ENOTRECOVERABLE` instead of
/// unwinding into C.
pub fn c_int(f: impl FnOnce() -> Result<libc::c_int>) -> libc::c_int {
    quiet_panics();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(Errno(e))) => {
            set_errno(e);
            -1
        }
        Err(_) => {
            set_errno(EPANIC);
            -1
        }
    }
}

/// Like [`c_int`] for entry points that return a pointer: NULL with `errno` on error.
pub fn c_ptr<T>(f: impl FnOnce() -> Result<*mut T>) -> *mut T {
    quiet_panics();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(p)) => p,
        Ok(Err(Errno(e))) => {
            set_errno(e);
            std::ptr::null_mut()
        }
        Err(_) => {
            set_errno(EPANIC);
            std::ptr::null_mut()
        }
    }
}

/// Test-only fault injection: with `LIBKVM_TEST_PANIC=<fd>` in the environment (read
/// once, at the first lookup of a VM), every successful lookup of VM `<fd>` panics while
/// the registry lock is held. The tests use it to prove that an internal panic comes out of
/// every kind of entry point as `ENOTRECOVERABLE`, releases the locks it held, and
/// leaves the library working. Not exported; without the variable it costs one load.
pub(crate) fn test_panic_point(fd: libc::c_int) {
    static ARMED: OnceLock<Option<libc::c_int>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        std::env::var("LIBKVM_TEST_PANIC")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if *armed == Some(fd) {
        panic!("LIBKVM_TEST_PANIC: injected panic in the lookup of VM {fd}");
    }
}

/// ENOMEM, for an allocation that failed (`map_err(nomem)`).
pub(crate) fn nomem<E>(_: E) -> Errno {
    Errno(libc::ENOMEM)
}

/// `vec![v; n]` that fails with ENOMEM instead of aborting the process.
pub(crate) fn try_vec<T: Clone>(n: usize, v: T) -> Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(nomem)?;
    out.resize(n, v);
    Ok(out)
}

/// `s.to_vec()` that fails with ENOMEM instead of aborting the process.
pub(crate) fn try_to_vec<T: Clone>(s: &[T]) -> Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(s.len()).map_err(nomem)?;
    out.extend_from_slice(s);
    Ok(out)
}

/// The layout of `Arc<T>`'s allocation: std's `ArcInner` is `#[repr(C)]` with the two
/// counts before the value.
#[repr(C)]
struct ArcInner<T> {
    _strong: std::sync::atomic::AtomicUsize,
    _weak: std::sync::atomic::AtomicUsize,
    _data: T,
}

/// `Arc::new(v)` that fails with ENOMEM instead of aborting the process.
///
/// Stable Rust has no fallible `Arc` constructor, so this asks the allocator for a block
/// of exactly the size `Arc::new` requests and gives it back just before `Arc::new` asks:
/// an allocator hands the same thread the block it just freed for a request of the same
/// size (glibc's per-thread cache does, deterministically), so when memory is exhausted the
/// failure is seen here, as ENOMEM, and `Arc::new` finds the block. Were that ever not so,
/// the result would be the abort this avoids, never unsoundness.
pub(crate) fn try_arc<T>(v: T) -> Result<std::sync::Arc<T>> {
    try_arc_or_back(v).map_err(|_| Errno(libc::ENOMEM))
}

/// [`try_arc`] that gives `v` back when there is no memory, for a caller that must undo
/// something with it (kvm_create_vcpu keeps the kernel vcpu for a retry).
pub(crate) fn try_arc_or_back<T>(v: T) -> std::result::Result<std::sync::Arc<T>, T> {
    let layout = std::alloc::Layout::new::<ArcInner<T>>();
    // SAFETY: the layout has a non-zero size (two counters at least).
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        return Err(v);
    }
    // The block escapes, so that the compiler cannot pair the alloc with the dealloc and
    // remove both (which it may do with an allocation nothing uses).
    let p = std::hint::black_box(p);
    // SAFETY: `p` was allocated just above with this layout and is not used.
    unsafe { std::alloc::dealloc(p, layout) };
    Ok(std::sync::Arc::new(v))
}

/// Converts a count or fd the kernel returned as `usize`/`u32`/`i64` into the `int` the C
/// ABI returns, refusing values that do not fit.
pub fn to_c_int<T: TryInto<libc::c_int>>(v: T) -> Result<libc::c_int> {
    v.try_into().map_err(|_| Errno(libc::EOVERFLOW))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_minus_one_and_errno() {
        assert_eq!(c_int(|| Err(Errno(libc::EBADF))), -1);
        assert_eq!(Errno::last(), Errno(libc::EBADF));
        assert_eq!(c_int(|| Ok(7)), 7);
    }

    #[test]
    fn a_panic_becomes_enotrecoverable() {
        assert_eq!(c_int(|| panic!("internal bug")), -1);
        assert_eq!(Errno::last(), Errno(EPANIC));
        let p: *mut u8 = c_ptr(|| panic!("internal bug"));
        assert!(p.is_null());
        assert_eq!(Errno::last(), Errno(EPANIC));
    }

    #[test]
    fn a_kvm_ioctls_error_without_a_positive_errno_is_eio() {
        assert_eq!(
            Errno::from(kvm_ioctls::Error::new(libc::EBADF)),
            Errno(libc::EBADF)
        );
        assert_eq!(Errno::from(kvm_ioctls::Error::new(-1)), Errno(libc::EIO));
        assert_eq!(Errno::from(kvm_ioctls::Error::new(0)), Errno(libc::EIO));
    }

    #[test]
    fn fallible_allocations_give_what_the_infallible_ones_do() {
        assert_eq!(try_vec(3, 7u8), Ok(vec![7u8; 3]));
        assert_eq!(try_to_vec(&[1u32, 2]), Ok(vec![1u32, 2]));
        assert_eq!(*try_arc(5u64).unwrap(), 5);
        assert_eq!(
            try_vec(usize::MAX / 2, 0u64).map(|v| v.len()),
            Err(Errno(libc::ENOMEM))
        );
    }

    #[test]
    fn check_reads_errno() {
        // SAFETY: closing an fd that cannot be open is harmless.
        let r = unsafe { libc::close(-1) };
        assert_eq!(check(r), Err(Errno(libc::EBADF)));
    }
}
