//! The C ABI: every exported function, nothing else.
//!
//! Each function here only checks its arguments, calls the core and maps the result to
//! the system-call convention through `error::c_int` / `error::c_ptr` (which also stop
//! panics at the boundary). The doc comments become `include/libkvm.h` (cbindgen).
//!
//! Pointer arguments follow libc's rule: NULL is refused with EFAULT; any other invalid
//! pointer is the caller's bug, as it is for `read(2)`.

// The C caller's contract for pointers is the man page; marking every entry point
// `unsafe` would change nothing for C and hide the real unsafe blocks.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

// Declaration order is the order of the header.
pub mod version;
pub mod system;
pub mod vm;
pub mod memory;
pub mod vcpu;
pub mod cpu;
pub mod irq;
pub mod kick;
pub mod raw;
pub mod vm_state;
pub mod vcpu_state;
pub mod snapshot;

use crate::error::{Errno, Result};

/// The object behind a caller's pointer for reading; EFAULT for NULL.
pub(crate) fn input<'a, T>(p: *const T) -> Result<&'a T> {
    // SAFETY: non-NULL pointers from C are taken to point at a valid, aligned T for the
    // duration of the call, as the man pages require.
    unsafe { p.as_ref() }.ok_or(Errno(libc::EFAULT))
}

/// The object behind a caller's pointer for writing; EFAULT for NULL.
pub(crate) fn output<'a, T>(p: *mut T) -> Result<&'a mut T> {
    // SAFETY: as for `input`, and the caller does not touch it during the call.
    unsafe { p.as_mut() }.ok_or(Errno(libc::EFAULT))
}
