//! Snapshots of a vcpu and of a VM's device state, as self-describing, versioned blobs.
//!
//! A blob is a 32-byte header followed by tagged sections:
//!
//! ```text
//!  0  magic "LIBKVMSN"      16  body length (u64, bytes after the header)
//!  8  format version (u16)  24  CRC-32 (IEEE, as zlib's crc32) of all other bytes:
//!                               0..24, then 28 to the end of the body
//! 10  kind: 1 vcpu, 2 VM    28  reserved, 0
//! 12  arch: ELF machine (62 = x86-64)
//! 14  header length (32)
//! ```
//!
//! Each section is a u32 tag, a u32 length and that many bytes, padded with zeros to a
//! multiple of 8. All integers are little-endian; kernel structs are stored as the
//! kernel's x86-64 layout. A reader skips tags it does not know; a new kind of state gets
//! a new tag, and only an incompatible change bumps the format version.
//!
//! A blob is input that may come from disk and may be hostile: it is checked completely
//! (length, magic, checksum, architecture, version, kind, every section's length) before
//! anything is changed, and a restore that the kernel refuses part-way is undone by
//! putting back the state read just before it.
//!
//! The format is src/snapshot/blob.rs (pure, unit-tested without KVM); what a vcpu blob
//! holds and how it is captured and applied is src/snapshot/vcpu.rs, the same for a VM
//! src/snapshot/vm.rs.

mod blob;
mod vcpu;
mod vm;

pub use vcpu::{restore_vcpu, save_vcpu};
pub use vm::{restore_vm, save_vm};
