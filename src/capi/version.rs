//! The library's version, for the compiler (LIBKVM_VERSION_* macros) and at run time
//! (kvm_get_library_version()).
//!
//! cbindgen writes a `pub const` with a literal value as a `#define`, but drops one computed
//! from `env!()`; so the numbers are written out here, and the build fails unless they are
//! Cargo.toml's version (its one source).

use libc::c_int;

/// The major version of the libkvm headers, from Cargo.toml. It is also the number in the
/// soname (libkvm.so.1): a program built against one major version runs only with it.
pub const LIBKVM_VERSION_MAJOR: c_int = 1;

/// The minor version of the libkvm headers. A minor release adds functions (in the version
/// node LIBKVM_<major>.<minor>) and changes none.
pub const LIBKVM_VERSION_MINOR: c_int = 1;

/// The patch level of the libkvm headers: fixes only, no new functions.
pub const LIBKVM_VERSION_PATCH: c_int = 0;

/// The version of the libkvm headers as one number, major * 10000 + minor * 100 + patch
/// (1.0.0 is 10000), to compare with `#if LIBKVM_VERSION >= ...` and with
/// kvm_get_library_version().
pub const LIBKVM_VERSION: c_int =
    LIBKVM_VERSION_MAJOR * 10000 + LIBKVM_VERSION_MINOR * 100 + LIBKVM_VERSION_PATCH;

const fn parse(s: &str) -> c_int {
    let b = s.as_bytes();
    let mut v: c_int = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version component is not a number");
        v = v * 10 + (b[i] - b'0') as c_int;
        i += 1;
    }
    v
}

const _: () = {
    assert!(
        LIBKVM_VERSION_MAJOR == parse(env!("CARGO_PKG_VERSION_MAJOR"))
            && LIBKVM_VERSION_MINOR == parse(env!("CARGO_PKG_VERSION_MINOR"))
            && LIBKVM_VERSION_PATCH == parse(env!("CARGO_PKG_VERSION_PATCH")),
        "LIBKVM_VERSION_* in src/capi/version.rs differ from Cargo.toml's version: update them and run make header"
    );
    assert!(
        LIBKVM_VERSION_MINOR < 100 && LIBKVM_VERSION_PATCH < 100,
        "minor and patch must stay below 100 for LIBKVM_VERSION"
    );
};

/// Returns the version of the libkvm library the program is running with, encoded like
/// LIBKVM_VERSION (major * 10000 + minor * 100 + patch). It can differ from LIBKVM_VERSION,
/// the version of the headers the program was built with: the program runs with any
/// libkvm.so of the same major version that has the symbol versions of the functions it
/// calls, older or newer. Never fails.
#[no_mangle]
pub extern "C" fn kvm_get_library_version() -> c_int {
    LIBKVM_VERSION
}
