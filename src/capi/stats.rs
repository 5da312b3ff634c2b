//! KVM's binary statistics of a VM or vcpu (KVM_GET_STATS_FD), read from any thread
//! without stopping the vcpu, and the names of exit reasons.

use crate::capi::output;
use crate::error::{c_int, c_ptr, to_c_int, Errno, Result};
use crate::registry;
use libc::{c_char, c_int};
use std::ffi::CStr;

/// Statistic `index` of a call that takes -1 for "all of them": None for -1, ERANGE for
/// another negative value (and `Stats` answers ERANGE past the last).
fn one_or_all(index: c_int) -> Result<Option<usize>> {
    match index {
        -1 => Ok(None),
        i => usize::try_from(i)
            .map(Some)
            .map_err(|_| Errno(libc::ERANGE)),
    }
}

/// Statistic `index`; ERANGE if negative.
fn one(index: c_int) -> Result<usize> {
    usize::try_from(index).map_err(|_| Errno(libc::ERANGE))
}

/// The index of the statistic the kernel calls `name` ("exits", "io_exits", "halt_exits"
/// on a vcpu; "remote_tlb_flush" on a VM) in the statistics of `fd`, a VM fd
/// (kvm_create_vm()) or a vcpu fd (kvm_create_vcpu(), any thread's). The first call of
/// kvm_stats_*() on a VM or vcpu opens its statistics (one fd, O_CLOEXEC, closed with
/// it). Errors: EBADF (`fd` is neither), EFAULT (`name` NULL), ENOENT (no statistic of
/// that name), EOPNOTSUPP (the kernel has no binary statistics), EMFILE, ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_stats_lookup(fd: c_int, name: *const c_char) -> c_int {
    c_int(|| {
        registry::with_stats(fd, |s| {
            if name.is_null() {
                return Err(Errno(libc::EFAULT));
            }
            // SAFETY: a non-NULL `name` is a NUL-terminated string, as the man page says.
            let name = unsafe { CStr::from_ptr(name) };
            to_c_int(s.lookup(name)?)
        })
    })
}

/// The name of statistic `index` of `fd` (a VM or vcpu fd), valid until the VM is
/// destroyed. Errors: NULL with EBADF (`fd` is neither), ERANGE (`index` negative or past
/// the last), EOPNOTSUPP, EMFILE, ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_stats_name(fd: c_int, index: c_int) -> *const c_char {
    c_ptr(|| registry::with_stats(fd, |s| Ok(s.name(one(index)?)?.as_ptr().cast_mut())))
}

/// Copies up to `n` values of statistic `index` of `fd` (a VM or vcpu fd, any thread's)
/// into `values` with one read of the kernel's counters, which neither stops nor
/// slows the vcpu; `index` -1 copies every statistic's values in index order. Returns
/// the number of values the statistic has (several for a histogram). `values` NULL with
/// `n` 0 returns that number and copies nothing. Errors: EBADF, ERANGE (`index` below -1
/// or past the last), EFAULT (`values` NULL with `n` > 0), E2BIG (`n` is smaller than
/// the number of values), EOPNOTSUPP, EMFILE, ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_stats_read(fd: c_int, index: c_int, values: *mut u64, n: usize) -> c_int {
    c_int(|| {
        registry::with_stats(fd, |s| {
            let index = one_or_all(index)?;
            let count = s.count(index)?;
            if values.is_null() {
                return if n == 0 {
                    to_c_int(count)
                } else {
                    Err(Errno(libc::EFAULT))
                };
            }
            if n < count {
                return Err(Errno(libc::E2BIG));
            }
            // SAFETY: a non-NULL `values` holds `n` >= `count` writable values that the
            // caller does not touch during the call, as the man page requires.
            let out = unsafe { std::slice::from_raw_parts_mut(values, count) };
            s.read(index, out)?;
            to_c_int(count)
        })
    })
}

/// What statistic `index` of `fd` is: its kernel flags (KVM_STATS_TYPE_*, _UNIT_*,
/// _BASE_* of <linux/kvm.h>) in `*flags`, the power of the base its unit carries in
/// `*exponent`, and its number of values in `*size`. Errors: EBADF, ERANGE, EFAULT (any
/// pointer NULL), EOPNOTSUPP, EMFILE, ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_stats_info(
    fd: c_int,
    index: c_int,
    flags: *mut u32,
    exponent: *mut i16,
    size: *mut u32,
) -> c_int {
    c_int(|| {
        registry::with_stats(fd, |s| {
            let (f, e, n) = s.info(one(index)?)?;
            let (flags, exponent, size) = (output(flags)?, output(exponent)?, output(size)?);
            (*flags, *exponent, *size) = (f, e, n);
            Ok(0)
        })
    })
}

/// The name of exit reason `reason` (what kvm_run() returns) without its KVM_EXIT_
/// prefix: "IO", "MMIO", "HLT", "SHUTDOWN", "INTERNAL_ERROR", ... for every KVM_EXIT_*
/// value the kernel defines, "UNKNOWN" for any other. A static string; never NULL.
#[no_mangle]
pub extern "C" fn kvm_exit_reason_name(reason: c_int) -> *const c_char {
    c_ptr(|| Ok(crate::exit_reason::name(reason).as_ptr().cast_mut()))
}
