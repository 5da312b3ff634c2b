//! libkvm: a stable, syscall-style C interface to Linux KVM.
//!
//! The crate has two layers:
//! - the core (`system`, `vm`, `vcpu`, `cpu_state`, `memory`, `regs`), plain Rust that
//!   returns `Result<T, Errno>`;
//! - the C ABI (`capi`), thin `extern "C"` functions that check arguments, call the
//!   core and turn errors into `-1`/`errno`. Nothing else is exported.
//!
//! Conventions every function follows are in `man/man7/libkvm.7`.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod capi;
mod cancel;
mod cpu_state;
mod error;
mod fork;
mod ioctl;
mod kick;
mod memory;
mod registry;
mod regs;
mod snapshot;
mod system;
mod vcpu;
mod vcpu_state;
mod vm;
mod vm_state;

pub use error::Errno;
