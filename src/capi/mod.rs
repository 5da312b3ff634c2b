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

// One file per area of the public API. Declaration order is the order of the header.
pub mod version;
pub mod system;
pub mod vm;
pub mod memory;
pub mod vcpu;
pub mod registers;
pub mod interrupts;
pub mod debug;
pub mod kick;
pub mod snapshot;
pub mod stats;
pub mod raw;

use crate::current::with_current;
use crate::error::{c_int, Errno, Result};
use crate::registry;
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use std::sync::Arc;

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

// The shapes most exported functions share, in the order every one of them checks:
// the VM fd (EBADF), then the pointer (EFAULT), then the calling thread's vcpu (ESRCH).

/// A call on the calling thread's vcpu that fills `*out`.
pub(crate) fn vcpu_get<T>(out: *mut T, f: impl FnOnce(&Arc<Vcpu>) -> Result<T>) -> libc::c_int {
    c_int(|| {
        let out = output(out)?;
        *out = with_current(f)?;
        Ok(0)
    })
}

/// A call on the calling thread's vcpu that takes `*arg`.
pub(crate) fn vcpu_set<T>(
    arg: *const T,
    f: impl FnOnce(&Arc<Vcpu>, &T) -> Result<()>,
) -> libc::c_int {
    c_int(|| {
        let arg = input(arg)?;
        with_current(|v| f(v, arg))?;
        Ok(0)
    })
}

/// A call on VM `vm` that fills `*out`.
pub(crate) fn vm_get<T>(
    vm: libc::c_int,
    out: *mut T,
    f: impl FnOnce(&Vm) -> Result<T>,
) -> libc::c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        let out = output(out)?;
        *out = f(&vm)?;
        Ok(0)
    })
}

/// A call on VM `vm` that takes `*arg`.
pub(crate) fn vm_set<T>(
    vm: libc::c_int,
    arg: *const T,
    f: impl FnOnce(&Vm, &T) -> Result<()>,
) -> libc::c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        f(&vm, input(arg)?)?;
        Ok(0)
    })
}

/// A call on the calling thread's vcpu that returns 0 on success.
pub(crate) fn vcpu_do<R>(f: impl FnOnce(&Arc<Vcpu>) -> Result<R>) -> libc::c_int {
    c_int(|| {
        with_current(f)?;
        Ok(0)
    })
}

/// A call on VM `vm` that returns 0 on success.
pub(crate) fn vm_do<R>(vm: libc::c_int, f: impl FnOnce(&Vm) -> Result<R>) -> libc::c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        f(&vm)?;
        Ok(0)
    })
}

/// Like `vm_do`, for a call that makes or closes fds the VM keeps: fork() waits for it
/// (`registry::with_vm_changing_fds`).
pub(crate) fn vm_do_fds<R>(vm: libc::c_int, f: impl FnOnce(&Vm) -> Result<R>) -> libc::c_int {
    c_int(|| {
        registry::with_vm_changing_fds(vm, f)?;
        Ok(0)
    })
}

/// A call on VM `vm` that reads and updates `*arg`.
pub(crate) fn vm_update<T>(
    vm: libc::c_int,
    arg: *mut T,
    f: impl FnOnce(&Vm, &mut T) -> Result<()>,
) -> libc::c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        f(&vm, output(arg)?)?;
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Errno;

    #[test]
    fn bad_vm_is_ebadf_and_null_is_efault() {
        assert_eq!(vm::kvm_get_clock(-1, std::ptr::null_mut()), -1);
        assert_eq!(Errno::last(), Errno(libc::EBADF));
        assert_eq!(
            system::kvm_get_msr_feature_index_list(std::ptr::null_mut()),
            -1
        );
        assert_eq!(Errno::last(), Errno(libc::EFAULT));
    }

    #[test]
    fn no_vcpu_is_esrch() {
        assert_eq!(registers::kvm_get_xsave_size(), -1);
        assert_eq!(Errno::last(), Errno(libc::ESRCH));
        assert_eq!(registers::kvm_kvmclock_ctrl(), -1);
        assert_eq!(Errno::last(), Errno(libc::ESRCH));
        assert_eq!(registers::kvm_get_xcrs(std::ptr::null_mut()), -1);
        assert_eq!(Errno::last(), Errno(libc::EFAULT));
    }
}
