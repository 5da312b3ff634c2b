//! The snapshot blob format (described in src/snapshot/mod.rs): header, sections, CRC-32
//! and the plain-old-data rule for the kernel structs stored in them. Pure: no KVM.

use crate::error::{nomem, try_vec, Errno, Result};
use kvm_bindings::{
    kvm_clock_data, kvm_cpuid_entry2, kvm_debugregs, kvm_irqchip, kvm_lapic_state, kvm_mp_state,
    kvm_msr_entry, kvm_pit_state2, kvm_regs, kvm_sregs, kvm_sregs2, kvm_vcpu_events, kvm_xcrs,
};
use std::mem::size_of;

pub(super) const MAGIC: &[u8; 8] = b"LIBKVMSN";
// The blob format's own numbers. Private: cbindgen exports every `pub const` into
// libkvm.h, where names like VERSION would collide with a program's config.h.
/// Format version this libkvm writes and reads.
pub(super) const VERSION: u16 = 1;
/// ELF machine number of x86-64.
pub(super) const ARCH: u16 = 62;
pub(super) const HEADER_LEN: usize = 32;
/// Blob kinds.
pub(super) const KIND_VCPU: u16 = 1;
/// Blob kinds.
pub(super) const KIND_VM: u16 = 2;

// vcpu sections.
pub(super) const T_CPUID: u32 = 0x0001;
pub(super) const T_REGS: u32 = 0x0002;
pub(super) const T_SREGS: u32 = 0x0003;
pub(super) const T_SREGS2: u32 = 0x0004;
pub(super) const T_XSAVE: u32 = 0x0005;
pub(super) const T_XCRS: u32 = 0x0006;
pub(super) const T_MSRS: u32 = 0x0007;
pub(super) const T_LAPIC: u32 = 0x0008;
pub(super) const T_EVENTS: u32 = 0x0009;
pub(super) const T_MP_STATE: u32 = 0x000a;
pub(super) const T_DEBUGREGS: u32 = 0x000b;
pub(super) const T_NESTED: u32 = 0x000c;
pub(super) const T_TSC_KHZ: u32 = 0x000d;
pub(super) const T_PENDING_IRQS: u32 = 0x000e;
// VM sections.
pub(super) const T_VM_INFO: u32 = 0x0101;
pub(super) const T_PIC_MASTER: u32 = 0x0102;
pub(super) const T_PIC_SLAVE: u32 = 0x0103;
pub(super) const T_IOAPIC: u32 = 0x0104;
pub(super) const T_PIT2: u32 = 0x0105;
pub(super) const T_CLOCK: u32 = 0x0106;
/// The GSI routing table last set with kvm_set_gsi_routing (absent: the kernel's default).
pub(super) const T_GSI_ROUTING: u32 = 0x0107;
/// The VM logs dirty pages in the dirty ring: a u32, the bytes of each vcpu's ring
/// (absent: the kernel's bitmaps).
pub(super) const T_DIRTY_RING: u32 = 0x0108;

pub(super) fn bad() -> Errno {
    Errno(libc::EBADMSG)
}

/// Kernel UAPI structs made only of integers (and unions and arrays of them), with no
/// padding the kernel leaves unwritten: any byte pattern is a valid value, and their
/// bytes can be stored and read back.
///
/// # Safety
/// Implement only for such plain-old-data types.
pub(super) unsafe trait Pod: Copy {}
// SAFETY: all of these are integer-only #[repr(C)] structs from <linux/kvm.h>.
unsafe impl Pod for kvm_regs {}
// SAFETY: as above.
unsafe impl Pod for kvm_sregs {}
// SAFETY: as above.
unsafe impl Pod for kvm_sregs2 {}
// SAFETY: as above.
unsafe impl Pod for kvm_xcrs {}
// SAFETY: as above.
unsafe impl Pod for kvm_lapic_state {}
// SAFETY: as above.
unsafe impl Pod for kvm_vcpu_events {}
// SAFETY: as above.
unsafe impl Pod for kvm_mp_state {}
// SAFETY: as above.
unsafe impl Pod for kvm_debugregs {}
// SAFETY: as above.
unsafe impl Pod for kvm_irqchip {}
// SAFETY: as above.
unsafe impl Pod for kvm_pit_state2 {}
// SAFETY: as above.
unsafe impl Pod for kvm_clock_data {}
// SAFETY: as above.
unsafe impl Pod for kvm_msr_entry {}
// SAFETY: as above.
unsafe impl Pod for kvm_cpuid_entry2 {}
// SAFETY: plain integers.
unsafe impl Pod for u32 {}
// SAFETY: plain integers.
unsafe impl Pod for u64 {}

pub(super) fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T is plain old data (see `Pod`), so all its bytes are initialized.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

pub(super) fn bytes_of_slice<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: as for `bytes_of`, for each element of a contiguous slice.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// A section's bytes as one `T`: EBADMSG unless the length is exactly right.
pub(super) fn pod<T: Pod>(b: &[u8]) -> Result<T> {
    if b.len() != size_of::<T>() {
        return Err(bad());
    }
    // SAFETY: the length is checked, any bit pattern is a valid T (`Pod`), and the read
    // is unaligned-safe.
    Ok(unsafe { b.as_ptr().cast::<T>().read_unaligned() })
}

/// A section's bytes as an array of `T`: EBADMSG unless the length is a multiple.
pub(super) fn pods<T: Pod>(b: &[u8]) -> Result<Vec<T>> {
    if b.len() % size_of::<T>() != 0 {
        return Err(bad());
    }
    let mut out = Vec::new();
    out.try_reserve_exact(b.len() / size_of::<T>())
        .map_err(nomem)?;
    for c in b.chunks_exact(size_of::<T>()) {
        out.push(pod::<T>(c)?);
    }
    Ok(out)
}

pub(super) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(super) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(super) fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32()`).
pub(super) fn crc32(parts: &[&[u8]]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for p in parts {
        for &b in *p {
            c = TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
        }
    }
    !c
}

/// Builds a blob section by section; out of memory is ENOMEM.
pub(super) struct Writer {
    buf: Vec<u8>,
    kind: u16,
}

impl Writer {
    pub(super) fn new(kind: u16) -> Result<Writer> {
        Ok(Writer {
            buf: try_vec(HEADER_LEN, 0)?,
            kind,
        })
    }

    pub(super) fn section(&mut self, tag: u32, data: &[u8]) -> Result<()> {
        let pad = (8 - data.len() % 8) % 8;
        // With the room reserved, the extends below do not allocate.
        self.buf.try_reserve(8 + data.len() + pad).map_err(nomem)?;
        self.buf.extend_from_slice(&tag.to_le_bytes());
        self.buf
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(data);
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        Ok(())
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        let body_len = (self.buf.len() - HEADER_LEN) as u64;
        let h = &mut self.buf[..HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8..10].copy_from_slice(&VERSION.to_le_bytes());
        h[10..12].copy_from_slice(&self.kind.to_le_bytes());
        h[12..14].copy_from_slice(&ARCH.to_le_bytes());
        h[14..16].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        h[16..24].copy_from_slice(&body_len.to_le_bytes());
        let crc = crc32(&[&self.buf[..24], &self.buf[28..]]);
        self.buf[24..28].copy_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

/// The checked sections of a blob, in order.
pub(super) struct Sections<'a>(Vec<(u32, &'a [u8])>);

impl<'a> Sections<'a> {
    /// Checks everything about `blob` that does not depend on the target, in the order
    /// documented in kvm_restore_vcpu(3): ENODATA truncated, EBADMSG not a snapshot or
    /// corrupt, ENOEXEC another architecture, ENOTSUP a newer format, EINVAL the other
    /// kind.
    pub(super) fn parse(blob: &'a [u8], kind: u16) -> Result<Sections<'a>> {
        if blob.len() < HEADER_LEN {
            return Err(Errno(libc::ENODATA));
        }
        if &blob[0..8] != MAGIC {
            return Err(bad());
        }
        let header_len = le16(blob, 14) as usize;
        let body_len = le64(blob, 16);
        if header_len < HEADER_LEN || header_len % 8 != 0 {
            return Err(bad());
        }
        // A body longer than the bytes given (up to 2^64 - 1 claimed) is a truncated
        // blob, as the pages say, whether or not header + body would wrap.
        let total = match (header_len as u64).checked_add(body_len) {
            Some(t) if t <= blob.len() as u64 => t,
            _ => return Err(Errno(libc::ENODATA)),
        };
        let body = &blob[header_len..total as usize];
        // The checksum covers the header up to itself, any header extension and the body.
        if crc32(&[&blob[..24], &blob[28..header_len], body]) != le32(blob, 24) {
            return Err(bad());
        }
        if le16(blob, 12) != ARCH {
            return Err(Errno(libc::ENOEXEC));
        }
        if le16(blob, 8) > VERSION {
            return Err(Errno(libc::ENOTSUP));
        }
        if le16(blob, 10) != kind {
            return Err(Errno(libc::EINVAL));
        }
        let mut out = Vec::new();
        let mut at = 0usize;
        while at < body.len() {
            if body.len() - at < 8 {
                return Err(bad());
            }
            let tag = le32(body, at);
            let len = le32(body, at + 4) as usize;
            let start = at + 8;
            let padded = len.checked_add((8 - len % 8) % 8).ok_or_else(bad)?;
            if body.len() - start < padded {
                return Err(bad());
            }
            out.try_reserve(1).map_err(nomem)?;
            out.push((tag, &body[start..start + len]));
            at = start + padded;
        }
        Ok(Sections(out))
    }

    pub(super) fn get(&self, tag: u32) -> Option<&'a [u8]> {
        self.0.iter().find(|(t, _)| *t == tag).map(|(_, b)| *b)
    }

    pub(super) fn need(&self, tag: u32) -> Result<&'a [u8]> {
        self.get(tag).ok_or_else(bad)
    }

    pub(super) fn opt<T: Pod>(&self, tag: u32) -> Result<Option<T>> {
        self.get(tag).map(pod::<T>).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[]), 0);
    }

    fn blob() -> Vec<u8> {
        let mut w = Writer::new(KIND_VM).unwrap();
        w.section(0x7777, b"abc").unwrap();
        w.section(T_CLOCK, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        w.finish()
    }

    #[test]
    fn sections_round_trip_and_unknown_ones_are_kept_aside() {
        let b = blob();
        assert_eq!(b.len(), HEADER_LEN + 16 + 16);
        let s = Sections::parse(&b, KIND_VM).unwrap();
        assert_eq!(s.get(0x7777), Some(&b"abc"[..]));
        assert_eq!(s.get(T_CLOCK), Some(&[1u8, 2, 3, 4, 5, 6, 7, 8][..]));
        assert_eq!(s.get(T_PIT2), None);
    }

    fn err(b: &[u8], kind: u16) -> i32 {
        match Sections::parse(b, kind) {
            Err(Errno(e)) => e,
            Ok(_) => 0,
        }
    }

    fn rechecksum(b: &mut [u8]) {
        let crc = crc32(&[&b[..24], &b[28..]]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn bad_blobs_are_refused_with_their_errno() {
        let b = blob();
        for cut in [0, 1, 31, 32, b.len() - 1] {
            assert_eq!(err(&b[..cut], KIND_VM), libc::ENODATA, "cut at {cut}");
        }
        for bit in 0..b.len() * 8 {
            let mut c = b.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            let e = err(&c, KIND_VM);
            assert!(
                e == libc::EBADMSG || e == libc::ENODATA,
                "bit {bit}: errno {e}"
            );
        }
        let mut c = b.clone();
        c[12] = 183; // EM_AARCH64
        rechecksum(&mut c);
        assert_eq!(err(&c, KIND_VM), libc::ENOEXEC);
        let mut c = b.clone();
        c[8] = 2;
        rechecksum(&mut c);
        assert_eq!(err(&c, KIND_VM), libc::ENOTSUP);
        assert_eq!(err(&b, KIND_VCPU), libc::EINVAL);
        let mut c = b.clone();
        c[HEADER_LEN + 4] = 200; // a section longer than the body
        rechecksum(&mut c);
        assert_eq!(err(&c, KIND_VM), libc::EBADMSG);
        let mut long = b.clone();
        long.extend_from_slice(&[0xAA; 100]); // room beyond the blob is ignored
        assert_eq!(err(&long, KIND_VM), 0);
        for claim in [u64::MAX, u64::MAX - 31, 1 << 63] {
            let mut c = b.clone();
            c[16..24].copy_from_slice(&claim.to_le_bytes());
            rechecksum(&mut c);
            assert_eq!(err(&c, KIND_VM), libc::ENODATA, "body length {claim:#x}");
        }
    }
}
