//! libkvm: a stable, syscall-style C interface to Linux KVM.
//!
//! The crate has two layers:
//! - the core (`snapshot`, `registry`, `current`, `vm`, `vcpu`, `system`, `ioctl`,
//!   `error`), plain Rust that returns `Result<T, Errno>`;
//! - the C ABI (`capi`), thin `extern "C"` functions that check arguments, call the
//!   core and turn errors into `-1`/`errno`. Nothing else is exported.
//!
//! Where each piece lives and which way dependencies point: ARCHITECTURE.md.
//!
//! Conventions every function follows are in `man/man7/libkvm.7`.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::missing_safety_doc)]

pub mod capi;
mod cancel;
mod current;
mod error;
mod exit_reason;
mod ioctl;
mod memory;
mod registry;
mod snapshot;
mod stats;
mod system;
mod user_copy;
mod vcpu;
mod vm;

pub use error::Errno;
