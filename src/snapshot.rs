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

use crate::error::{nomem, try_to_vec, try_vec, Errno, Result};
use crate::ioctl;
use crate::registry;
use crate::system;
use crate::vcpu::Vcpu;
use crate::vcpu_state;
use crate::vm::Vm;
use crate::vm_state;
use kvm_bindings::{
    kvm_clock_data, kvm_cpuid2, kvm_cpuid_entry2, kvm_debugregs, kvm_irqchip, kvm_lapic_state,
    kvm_mp_state, kvm_msr_entry, kvm_msr_list, kvm_msrs, kvm_nested_state, kvm_pit_state2,
    kvm_regs, kvm_sregs, kvm_sregs2, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use std::mem::size_of;
use std::os::unix::io::AsRawFd;
use std::ptr::{addr_of, addr_of_mut};
use std::sync::OnceLock;

const MAGIC: &[u8; 8] = b"LIBKVMSN";
// The blob format's own numbers. Private: cbindgen exports every `pub const` into
// libkvm.h, where names like VERSION would collide with a program's config.h.
/// Format version this libkvm writes and reads.
const VERSION: u16 = 1;
/// ELF machine number of x86-64.
const ARCH: u16 = 62;
const HEADER_LEN: usize = 32;
/// Blob kinds.
const KIND_VCPU: u16 = 1;
/// Blob kinds.
const KIND_VM: u16 = 2;

// vcpu sections.
const T_CPUID: u32 = 0x0001;
const T_REGS: u32 = 0x0002;
const T_SREGS: u32 = 0x0003;
const T_SREGS2: u32 = 0x0004;
const T_XSAVE: u32 = 0x0005;
const T_XCRS: u32 = 0x0006;
const T_MSRS: u32 = 0x0007;
const T_LAPIC: u32 = 0x0008;
const T_EVENTS: u32 = 0x0009;
const T_MP_STATE: u32 = 0x000a;
const T_DEBUGREGS: u32 = 0x000b;
const T_NESTED: u32 = 0x000c;
const T_TSC_KHZ: u32 = 0x000d;
const T_PENDING_IRQS: u32 = 0x000e;
// VM sections.
const T_VM_INFO: u32 = 0x0101;
const T_PIC_MASTER: u32 = 0x0102;
const T_PIC_SLAVE: u32 = 0x0103;
const T_IOAPIC: u32 = 0x0104;
const T_PIT2: u32 = 0x0105;
const T_CLOCK: u32 = 0x0106;

const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_FEATURE_CONTROL: u32 = 0x3a;
const MSR_IA32_TSC_DEADLINE: u32 = 0x6e0;

const KVM_GET_CPUID2: u64 = ioctl::iowr::<kvm_cpuid2>(0x91);

fn bad() -> Errno {
    Errno(libc::EBADMSG)
}

/// Kernel UAPI structs made only of integers (and unions and arrays of them), with no
/// padding the kernel leaves unwritten: any byte pattern is a valid value, and their
/// bytes can be stored and read back.
///
/// # Safety
/// Implement only for such plain-old-data types.
unsafe trait Pod: Copy {}
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

fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T is plain old data (see `Pod`), so all its bytes are initialized.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

fn bytes_of_slice<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: as for `bytes_of`, for each element of a contiguous slice.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// A section's bytes as one `T`: EBADMSG unless the length is exactly right.
fn pod<T: Pod>(b: &[u8]) -> Result<T> {
    if b.len() != size_of::<T>() {
        return Err(bad());
    }
    // SAFETY: the length is checked, any bit pattern is a valid T (`Pod`), and the read
    // is unaligned-safe.
    Ok(unsafe { b.as_ptr().cast::<T>().read_unaligned() })
}

/// A section's bytes as an array of `T`: EBADMSG unless the length is a multiple.
fn pods<T: Pod>(b: &[u8]) -> Result<Vec<T>> {
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

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32()`).
pub fn crc32(parts: &[&[u8]]) -> u32 {
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
struct Writer {
    buf: Vec<u8>,
    kind: u16,
}

impl Writer {
    fn new(kind: u16) -> Result<Writer> {
        Ok(Writer {
            buf: try_vec(HEADER_LEN, 0)?,
            kind,
        })
    }

    fn section(&mut self, tag: u32, data: &[u8]) -> Result<()> {
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

    fn finish(mut self) -> Vec<u8> {
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
struct Sections<'a>(Vec<(u32, &'a [u8])>);

impl<'a> Sections<'a> {
    /// Checks everything about `blob` that does not depend on the target, in the order
    /// documented in kvm_restore_vcpu(3): ENODATA truncated, EBADMSG not a snapshot or
    /// corrupt, ENOEXEC another architecture, ENOTSUP a newer format, EINVAL the other
    /// kind.
    fn parse(blob: &'a [u8], kind: u16) -> Result<Sections<'a>> {
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

    fn get(&self, tag: u32) -> Option<&'a [u8]> {
        self.0.iter().find(|(t, _)| *t == tag).map(|(_, b)| *b)
    }

    fn need(&self, tag: u32) -> Result<&'a [u8]> {
        self.get(tag).ok_or_else(bad)
    }

    fn opt<T: Pod>(&self, tag: u32) -> Result<Option<T>> {
        self.get(tag).map(pod::<T>).transpose()
    }
}

// ---- vcpu ---------------------------------------------------------------------------

/// Everything `kvm_save_vcpu` records about one vcpu.
struct VcpuState {
    /// struct kvm_cpuid2 entries (the vcpu's CPUID as set by KVM_SET_CPUID2).
    cpuid: Vec<kvm_cpuid_entry2>,
    regs: kvm_regs,
    sregs: Option<kvm_sregs>,
    sregs2: Option<kvm_sregs2>,
    /// XSAVE area bytes (kvm_get_xsave_size() of the source).
    xsave: Vec<u8>,
    xcrs: Option<kvm_xcrs>,
    msrs: Vec<kvm_msr_entry>,
    lapic: Option<kvm_lapic_state>,
    events: kvm_vcpu_events,
    mp_state: kvm_mp_state,
    debugregs: Option<kvm_debugregs>,
    /// struct kvm_nested_state with its data, `size` bytes.
    nested: Option<Vec<u8>>,
    tsc_khz: Option<u32>,
    /// Vectors `kvm_interrupt` holds until the guest can take them (no in-kernel irqchip).
    pending_irqs: [u64; 4],
}

fn vm_extension(v: &Vcpu, cap: u32) -> i32 {
    // SAFETY: KVM_CHECK_EXTENSION takes its argument by value.
    unsafe { ioctl::ioctl(v.vm_fd(), ioctl::io(0x03), cap as libc::c_ulong) }.unwrap_or(0)
}

/// The MSR indices KVM_GET_MSR_INDEX_LIST names: the MSRs to save and restore.
fn msr_index_list() -> Result<&'static [u32]> {
    static LIST: OnceLock<Vec<u32>> = OnceLock::new();
    if let Some(l) = LIST.get() {
        return Ok(l);
    }
    let mut n: u32 = 0;
    loop {
        // Header (nmsrs) followed by `n` indices.
        let mut buf = try_vec(1 + n as usize, 0u32)?;
        buf[0] = n;
        // SAFETY: the buffer holds the header and `n` indices, as `nmsrs` says.
        match unsafe { system::msr_index_list(buf.as_mut_ptr().cast::<kvm_msr_list>()) } {
            Ok(()) => {
                let count = (buf[0] as usize).min(n as usize);
                let list = try_to_vec(&buf[1..1 + count])?;
                return Ok(LIST.get_or_init(|| list));
            }
            Err(Errno(libc::E2BIG)) if buf[0] > n => n = buf[0],
            Err(e) => return Err(e),
        }
    }
}

/// KVM_GET_MSRS / KVM_SET_MSRS on `entries`; returns how many the kernel processed.
/// `buf` is the room for the struct kvm_msrs: it allocates only if it has too little.
fn msrs_ioctl(
    v: &Vcpu,
    entries: &mut [kvm_msr_entry],
    set: bool,
    buf: &mut Vec<u64>,
) -> Result<usize> {
    if entries.is_empty() {
        return Ok(0);
    }
    // struct kvm_msrs: nmsrs, pad, then the entries (16 bytes each, 8-aligned).
    let need = 1 + 2 * entries.len();
    buf.clear();
    buf.try_reserve_exact(need).map_err(nomem)?;
    buf.resize(need, 0);
    buf[0] = entries.len() as u64;
    let ent = buf[1..].as_mut_ptr().cast::<kvm_msr_entry>();
    // SAFETY: `buf` holds the header and room for every entry, properly aligned.
    unsafe { std::ptr::copy_nonoverlapping(entries.as_ptr(), ent, entries.len()) };
    let msrs = buf.as_mut_ptr().cast::<kvm_msrs>();
    // SAFETY: a struct kvm_msrs with `nmsrs` entries, as both calls expect.
    let n = unsafe {
        if set {
            v.set_msrs(msrs)?
        } else {
            v.get_msrs(msrs)?
        }
    } as usize;
    // SAFETY: as above; the kernel wrote the data of the first `n` entries.
    unsafe { std::ptr::copy_nonoverlapping(ent, entries.as_mut_ptr(), entries.len()) };
    Ok(n.min(entries.len()))
}

/// Every MSR of the index list that this vcpu lets the host read.
fn get_msrs(v: &Vcpu) -> Result<Vec<kvm_msr_entry>> {
    let list = msr_index_list()?;
    let mut all = try_vec(list.len(), kvm_msr_entry::default())?;
    for (e, &index) in all.iter_mut().zip(list) {
        e.index = index;
    }
    let mut out = Vec::new();
    out.try_reserve_exact(all.len()).map_err(nomem)?;
    let mut buf = Vec::new();
    let mut at = 0;
    while at < all.len() {
        let n = msrs_ioctl(v, &mut all[at..], false, &mut buf)?;
        out.extend_from_slice(&all[at..at + n]);
        at += n + 1; // skip the MSR the vcpu refused
    }
    Ok(out)
}

/// Sets the MSRs in `all` (in order; the kernel's answers may overwrite them), with `buf`
/// as the room for the ioctl. An MSR the kernel refuses is an error (EINVAL) unless the
/// vcpu already holds the saved value.
fn set_msrs(v: &Vcpu, all: &mut [kvm_msr_entry], buf: &mut Vec<u64>) -> Result<()> {
    let mut at = 0;
    while at < all.len() {
        let n = msrs_ioctl(v, &mut all[at..], true, buf)?;
        at += n;
        if at < all.len() {
            let mut cur = [kvm_msr_entry {
                index: all[at].index,
                ..Default::default()
            }];
            if msrs_ioctl(v, &mut cur, false, buf)? != 1 || cur[0].data != all[at].data {
                return Err(Errno(libc::EINVAL));
            }
            at += 1;
        }
    }
    Ok(())
}

/// The most CPUID entries KVM_SET_CPUID2 takes (KVM_MAX_CPUID_ENTRIES).
const CPUID_MAX: usize = 256;
/// The most MSRs one KVM_GET_MSRS / KVM_SET_MSRS takes (KVM_MAX_MSR_ENTRIES): a capture
/// cannot save more.
const MSRS_MAX: usize = 255;

/// u32 words of one struct kvm_cpuid_entry2.
const ENTRY_WORDS: usize = size_of::<kvm_cpuid_entry2>() / 4;

/// Room for a struct kvm_cpuid2 with `CPUID_MAX` entries (10 KiB).
fn cpuid_room() -> Result<Vec<u32>> {
    try_vec(2 + CPUID_MAX * ENTRY_WORDS, 0)
}

/// KVM_GET_CPUID2 into `buf` (from `cpuid_room`); returns the entries' bytes.
fn get_cpuid_into<'b>(v: &Vcpu, buf: &'b mut [u32]) -> Result<&'b [u8]> {
    let room = (buf.len() - 2) / ENTRY_WORDS;
    buf[0] = room as u32;
    let p = buf.as_mut_ptr();
    v.reading(|fd| {
        // SAFETY: a struct kvm_cpuid2 with room for `nent` entries.
        unsafe { ioctl::ioctl(fd.as_raw_fd(), KVM_GET_CPUID2, p as _) }
    })?;
    let n = (buf[0] as usize).min(room);
    Ok(bytes_of_slice(&buf[2..2 + n * ENTRY_WORDS]))
}

fn get_cpuid(v: &Vcpu) -> Result<Vec<kvm_cpuid_entry2>> {
    let mut buf = cpuid_room()?;
    pods::<kvm_cpuid_entry2>(get_cpuid_into(v, &mut buf)?)
}

/// KVM_SET_CPUID2 of `entries`, built in `buf` (from `cpuid_room`).
fn set_cpuid(v: &Vcpu, entries: &[kvm_cpuid_entry2], buf: &mut [u32]) -> Result<()> {
    if 2 + entries.len() * ENTRY_WORDS > buf.len() {
        return Err(Errno(libc::EINVAL));
    }
    buf[0] = entries.len() as u32;
    buf[1] = 0;
    // SAFETY: the buffer holds the header and every entry (checked); u32 alignment
    // suffices.
    unsafe {
        std::ptr::copy_nonoverlapping(
            entries.as_ptr(),
            buf[2..].as_mut_ptr().cast::<kvm_cpuid_entry2>(),
            entries.len(),
        )
    };
    // SAFETY: a struct kvm_cpuid2 with `nent` entries.
    unsafe { v.set_cpuid(buf.as_ptr().cast::<kvm_cpuid2>()) }
}

/// Completes an I/O, MMIO or MSR exit still pending in the kernel before state is read
/// (`Vcpu::complete_pending`). EAGAIN if that produced a new exit (a split MMIO access),
/// which the caller must handle first.
fn complete_pending(v: &Vcpu) -> Result<()> {
    match v.complete_pending()? {
        None => Ok(()),
        Some(_) => Err(Errno(libc::EAGAIN)),
    }
}

fn capture_vcpu(v: &Vcpu) -> Result<VcpuState> {
    complete_pending(v)?;
    // Events first, then MP state (which can move CS:RIP of a vcpu waiting for SIPI)
    // before the registers: QEMU's order. KVM_GET_MP_STATE can accept a pending INIT and
    // reset the vcpu, so it is a `writing` ioctl (as in kvm_get_mp_state).
    let events = v.get_events()?;
    let mp_state = v.writing(|fd| fd.get_mp_state().map_err(Errno::from))?;
    let regs = v.get_regs()?;
    let size = vcpu_state::xsave_size(v)?;
    let mut xsave = try_vec(size.div_ceil(8), 0u64)?;
    // SAFETY: the buffer holds `size` bytes, 8-aligned.
    unsafe { vcpu_state::get_xsave(v, xsave.as_mut_ptr().cast::<kvm_xsave>(), size) }?;
    let xsave = try_to_vec(&bytes_of_slice(&xsave)[..size])?;
    let xcrs = if vm_extension(v, kvm_bindings::KVM_CAP_XCRS) > 0 {
        Some(vcpu_state::get_xcrs(v)?)
    } else {
        None
    };
    let (sregs, sregs2) = if vm_extension(v, kvm_bindings::KVM_CAP_SREGS2) > 0 {
        (None, Some(vcpu_state::get_sregs2(v)?))
    } else {
        (Some(v.get_sregs()?), None)
    };
    let msrs = get_msrs(v)?;
    let lapic = if v.apic.in_kernel() {
        Some(v.reading(|fd| fd.get_lapic().map_err(Errno::from))?)
    } else {
        None
    };
    let debugregs = if vm_extension(v, kvm_bindings::KVM_CAP_DEBUGREGS) > 0 {
        Some(vcpu_state::get_debugregs(v)?)
    } else {
        None
    };
    let nested = match vcpu_state::nested_state_max(v)? {
        0 => None,
        max => {
            let mut buf = try_vec(max.div_ceil(8), 0u64)?;
            let st = buf.as_mut_ptr().cast::<kvm_nested_state>();
            // SAFETY: `st` points at `max` writable, aligned bytes; `size` says so.
            unsafe { addr_of_mut!((*st).size).write(max as u32) };
            // SAFETY: as above.
            unsafe { vcpu_state::get_nested_state(v, st) }?;
            // SAFETY: the kernel wrote the size it used, at most `max`.
            let used = unsafe { addr_of!((*st).size).read() } as usize;
            Some(try_to_vec(&bytes_of_slice(&buf)[..used.min(max)])?)
        }
    };
    let tsc_khz = vcpu_state::get_tsc_khz(v).ok();
    let cpuid = get_cpuid(v)?;
    let pending_irqs = v.irq.pending();
    Ok(VcpuState {
        cpuid,
        regs,
        sregs,
        sregs2,
        xsave,
        xcrs,
        msrs,
        lapic,
        events,
        mp_state,
        debugregs,
        nested,
        tsc_khz,
        pending_irqs,
    })
}

fn encode_vcpu(s: &VcpuState) -> Result<Vec<u8>> {
    let mut w = Writer::new(KIND_VCPU)?;
    w.section(T_CPUID, bytes_of_slice(&s.cpuid))?;
    w.section(T_REGS, bytes_of(&s.regs))?;
    if let Some(x) = &s.sregs {
        w.section(T_SREGS, bytes_of(x))?;
    }
    if let Some(x) = &s.sregs2 {
        w.section(T_SREGS2, bytes_of(x))?;
    }
    w.section(T_XSAVE, &s.xsave)?;
    if let Some(x) = &s.xcrs {
        w.section(T_XCRS, bytes_of(x))?;
    }
    w.section(T_MSRS, bytes_of_slice(&s.msrs))?;
    if let Some(x) = &s.lapic {
        w.section(T_LAPIC, bytes_of(x))?;
    }
    w.section(T_EVENTS, bytes_of(&s.events))?;
    w.section(T_MP_STATE, bytes_of(&s.mp_state))?;
    if let Some(x) = &s.debugregs {
        w.section(T_DEBUGREGS, bytes_of(x))?;
    }
    if let Some(x) = &s.nested {
        w.section(T_NESTED, x)?;
    }
    if let Some(x) = s.tsc_khz {
        w.section(T_TSC_KHZ, &x.to_le_bytes())?;
    }
    if s.pending_irqs != [0; 4] {
        w.section(T_PENDING_IRQS, bytes_of_slice(&s.pending_irqs))?;
    }
    Ok(w.finish())
}

fn decode_vcpu(blob: &[u8]) -> Result<VcpuState> {
    let s = Sections::parse(blob, KIND_VCPU)?;
    let sregs: Option<kvm_sregs> = s.opt(T_SREGS)?;
    let sregs2: Option<kvm_sregs2> = s.opt(T_SREGS2)?;
    if sregs.is_none() && sregs2.is_none() {
        return Err(bad());
    }
    let xsave = try_to_vec(s.need(T_XSAVE)?)?;
    if xsave.len() < size_of::<kvm_xsave>() {
        return Err(bad());
    }
    let nested = match s.get(T_NESTED) {
        None => None,
        Some(b) => {
            // Its own `size` field must say how long it is.
            if b.len() < vcpu_state::NESTED_HEADER || le32(b, 4) as usize != b.len() {
                return Err(bad());
            }
            Some(try_to_vec(b)?)
        }
    };
    let tsc_khz = match s.get(T_TSC_KHZ) {
        None => None,
        Some(b) if b.len() == 4 => Some(le32(b, 0)),
        Some(_) => return Err(bad()),
    };
    // Counts checked before anything is allocated for them.
    let cpuid = s.get(T_CPUID).unwrap_or(&[]);
    if cpuid.len() > CPUID_MAX * size_of::<kvm_cpuid_entry2>() {
        return Err(bad());
    }
    let cpuid = pods::<kvm_cpuid_entry2>(cpuid)?;
    let msrs = s.get(T_MSRS).unwrap_or(&[]);
    if msrs.len() > MSRS_MAX * size_of::<kvm_msr_entry>() {
        return Err(bad());
    }
    let msrs = pods::<kvm_msr_entry>(msrs)?;
    let pending_irqs = match s.get(T_PENDING_IRQS) {
        None => [0; 4],
        Some(b) => pods::<u64>(b)?.try_into().map_err(|_| bad())?,
    };
    Ok(VcpuState {
        cpuid,
        regs: pod(s.need(T_REGS)?)?,
        sregs,
        sregs2,
        xsave,
        xcrs: s.opt(T_XCRS)?,
        msrs,
        lapic: s.opt(T_LAPIC)?,
        events: pod(s.need(T_EVENTS)?)?,
        mp_state: pod(s.need(T_MP_STATE)?)?,
        debugregs: s.opt(T_DEBUGREGS)?,
        nested,
        tsc_khz,
        pending_irqs,
    })
}

/// The special registers in the other form, for a kernel with only KVM_SET_SREGS.
fn sregs_from_sregs2(s2: &kvm_sregs2) -> kvm_sregs {
    kvm_sregs {
        cs: s2.cs,
        ds: s2.ds,
        es: s2.es,
        fs: s2.fs,
        gs: s2.gs,
        ss: s2.ss,
        tr: s2.tr,
        ldt: s2.ldt,
        gdt: s2.gdt,
        idt: s2.idt,
        cr0: s2.cr0,
        cr2: s2.cr2,
        cr3: s2.cr3,
        cr4: s2.cr4,
        cr8: s2.cr8,
        efer: s2.efer,
        apic_base: s2.apic_base,
        interrupt_bitmap: [0; 4],
    }
}

/// Checks, before anything changes, that `s` can be loaded into `v` at all.
fn check_vcpu_fits(v: &Vcpu, s: &VcpuState) -> Result<()> {
    if s.nested.is_some() && vcpu_state::nested_state_max(v)? == 0 {
        return Err(Errno(libc::EOPNOTSUPP));
    }
    if s.lapic.is_some() && !v.apic.in_kernel() {
        return Err(Errno(libc::ENXIO));
    }
    if s.xsave.len() > vcpu_state::xsave_size(v)? {
        return Err(Errno(libc::EINVAL));
    }
    if s.pending_irqs != [0; 4] && v.apic.in_kernel() {
        return Err(Errno(libc::EINVAL)); // they belong to a VM without in-kernel APICs
    }
    Ok(())
}

/// The buffers `apply_vcpu` needs, allocated before anything changes: a restore that
/// runs out of memory fails (ENOMEM) with the vcpu untouched, and putting the previous
/// state back after a refusal cannot run out of memory half-way.
struct Scratch {
    /// struct kvm_cpuid2 with room for `CPUID_MAX` entries.
    cpuid: Vec<u32>,
    /// The MSRs to set, in the order they are set.
    msrs: Vec<kvm_msr_entry>,
    /// struct kvm_msrs for them.
    msr_buf: Vec<u64>,
    /// An 8-aligned XSAVE area or nested state.
    bytes: Vec<u64>,
}

impl Scratch {
    /// Room to apply any of `states` to `v`.
    fn new(v: &Vcpu, states: &[&VcpuState]) -> Result<Scratch> {
        let nmsrs = states.iter().map(|s| s.msrs.len()).max().unwrap_or(0);
        let nested = states
            .iter()
            .filter_map(|s| s.nested.as_ref().map(|n| n.len()))
            .max()
            .unwrap_or(0);
        let bytes = vcpu_state::xsave_size(v)?.max(nested);
        let mut msrs = Vec::new();
        msrs.try_reserve_exact(nmsrs).map_err(nomem)?;
        Ok(Scratch {
            cpuid: cpuid_room()?,
            msrs,
            msr_buf: try_vec(1 + 2 * nmsrs, 0u64)?,
            bytes: try_vec(bytes.div_ceil(8), 0u64)?,
        })
    }

    /// `data` copied to the start of the 8-aligned buffer, zeros after it.
    fn aligned(&mut self, data: &[u8]) -> *const u8 {
        self.bytes.fill(0);
        let room = self.bytes.len() * 8;
        let n = data.len().min(room);
        // SAFETY: `bytes` has room for `room` >= `n` bytes; the regions are distinct.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.bytes.as_mut_ptr().cast::<u8>(), n)
        };
        self.bytes.as_ptr().cast::<u8>()
    }
}

/// Loads `s` into `v` in QEMU's order (kvm_arch_put_registers, with the LAPIC before
/// the MSRs so the TSC deadline survives), with the buffers of `b` (made for `s`): it
/// allocates nothing.
fn apply_vcpu(v: &Vcpu, s: &VcpuState, b: &mut Scratch) -> Result<()> {
    if get_cpuid_into(v, &mut b.cpuid)? != bytes_of_slice(&s.cpuid) {
        set_cpuid(v, &s.cpuid, &mut b.cpuid)?;
    }
    if let Some(fc) = s.msrs.iter().find(|m| m.index == MSR_IA32_FEATURE_CONTROL) {
        set_msrs(v, &mut [*fc], &mut b.msr_buf)?;
    }
    match (&s.sregs2, &s.sregs) {
        (Some(s2), _) if vm_extension(v, kvm_bindings::KVM_CAP_SREGS2) > 0 => {
            vcpu_state::set_sregs2(v, s2)?
        }
        (_, Some(s1)) => v.set_sregs(s1)?,
        (Some(s2), None) => v.set_sregs(&sregs_from_sregs2(s2))?,
        (None, None) => return Err(bad()),
    }
    if let Some(n) = &s.nested {
        // 8-aligned copy of the section for the kernel (the scratch holds `n.len()`).
        let p = b.aligned(n);
        // SAFETY: a struct kvm_nested_state whose `size` field (checked on decode) is
        // the length of the copy.
        unsafe { vcpu_state::set_nested_state(v, p.cast::<kvm_nested_state>()) }?;
    }
    if let Some(khz) = s.tsc_khz {
        // As QEMU does, a frequency the kernel cannot give is not fatal: the guest's
        // TSC keeps the host's rate.
        if vcpu_state::get_tsc_khz(v).ok() != Some(khz) {
            let _ = vcpu_state::set_tsc_khz(v, khz);
        }
    }
    v.set_regs(&s.regs)?;
    let size = vcpu_state::xsave_size(v)?;
    if b.bytes.len() * 8 < size || s.xsave.len() > size {
        return Err(Errno(libc::EINVAL)); // check_vcpu_fits and Scratch::new rule it out
    }
    let p = b.aligned(&s.xsave);
    // SAFETY: the buffer holds `size` bytes, 8-aligned: the saved area, then zeros.
    unsafe { vcpu_state::set_xsave(v, p.cast::<kvm_xsave>(), size) }?;
    if let Some(x) = &s.xcrs {
        vcpu_state::set_xcrs(v, x)?;
    }
    if let Some(l) = &s.lapic {
        v.writing(|fd| fd.set_lapic(l).map_err(Errno::from))?;
    }
    // The TSC before anything relative to it, the TSC deadline last, the rest in the
    // saved order (within the scratch's room: no allocation).
    b.msrs.clear();
    let rank = |m: &kvm_msr_entry| match m.index {
        MSR_IA32_FEATURE_CONTROL => None,
        MSR_IA32_TSC => Some(0),
        MSR_IA32_TSC_DEADLINE => Some(2),
        _ => Some(1),
    };
    for r in 0..3 {
        b.msrs
            .extend(s.msrs.iter().filter(|m| rank(m) == Some(r)).copied());
    }
    set_msrs(v, &mut b.msrs, &mut b.msr_buf)?;
    let mut events = s.events;
    events.flags |= kvm_bindings::KVM_VCPUEVENT_VALID_NMI_PENDING
        | kvm_bindings::KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    v.set_events(&events)?;
    v.writing(|fd| fd.set_mp_state(s.mp_state).map_err(Errno::from))?;
    if let Some(d) = &s.debugregs {
        vcpu_state::set_debugregs(v, d)?;
    }
    v.irq.set_pending(s.pending_irqs);
    Ok(())
}

/// `kvm_save_vcpu`: the blob of the calling thread's vcpu.
pub fn save_vcpu(v: &Vcpu) -> Result<Vec<u8>> {
    encode_vcpu(&capture_vcpu(v)?)
}

/// `kvm_restore_vcpu`: checks `blob` completely, then loads it; if the kernel refuses
/// part of it, puts back what the vcpu held before.
pub fn restore_vcpu(v: &Vcpu, blob: &[u8]) -> Result<()> {
    let s = decode_vcpu(blob)?;
    check_vcpu_fits(v, &s)?;
    let before = capture_vcpu(v)?;
    let mut scratch = Scratch::new(v, &[&s, &before])?;
    apply_vcpu(v, &s, &mut scratch).inspect_err(|_| {
        let _ = apply_vcpu(v, &before, &mut scratch);
    })
}

// ---- VM -----------------------------------------------------------------------------

/// Everything `kvm_save_vm` records about a VM (not its memory, not its vcpus).
struct VmState {
    nr_vcpus: u32,
    /// (slot, guest-physical start, size).
    layout: Vec<(u32, u64, u64)>,
    pic: Option<(kvm_irqchip, kvm_irqchip, kvm_irqchip)>,
    pit: Option<kvm_pit_state2>,
    clock: kvm_clock_data,
}

fn chip(vm: &Vm, id: u32) -> Result<kvm_irqchip> {
    let mut c = kvm_irqchip {
        chip_id: id,
        ..Default::default()
    };
    vm_state::get_irqchip(vm, &mut c)?;
    Ok(c)
}

fn capture_vm(vm: &Vm) -> Result<VmState> {
    let pic = if vm.has_irqchip() {
        Some((
            chip(vm, kvm_bindings::KVM_IRQCHIP_PIC_MASTER)?,
            chip(vm, kvm_bindings::KVM_IRQCHIP_PIC_SLAVE)?,
            chip(vm, kvm_bindings::KVM_IRQCHIP_IOAPIC)?,
        ))
    } else {
        None
    };
    let pit = match vm_state::get_pit2(vm) {
        Ok(p) => Some(p),
        Err(Errno(libc::ENXIO)) => None,
        Err(e) => return Err(e),
    };
    Ok(VmState {
        nr_vcpus: registry::nr_vcpus_of(vm.raw_fd()) as u32,
        layout: vm.memory_layout()?,
        pic,
        pit,
        clock: vm_state::get_clock(vm)?,
    })
}

fn encode_vm(s: &VmState) -> Result<Vec<u8>> {
    let mut w = Writer::new(KIND_VM)?;
    let mut info = Vec::new();
    // With the room reserved, the extends below do not allocate.
    info.try_reserve_exact(8 + 24 * s.layout.len())
        .map_err(nomem)?;
    info.extend_from_slice(&s.nr_vcpus.to_le_bytes());
    info.extend_from_slice(&(s.layout.len() as u32).to_le_bytes());
    for &(slot, gpa, size) in &s.layout {
        info.extend_from_slice(&slot.to_le_bytes());
        info.extend_from_slice(&0u32.to_le_bytes());
        info.extend_from_slice(&gpa.to_le_bytes());
        info.extend_from_slice(&size.to_le_bytes());
    }
    w.section(T_VM_INFO, &info)?;
    if let Some((m, sl, io)) = &s.pic {
        w.section(T_PIC_MASTER, bytes_of(m))?;
        w.section(T_PIC_SLAVE, bytes_of(sl))?;
        w.section(T_IOAPIC, bytes_of(io))?;
    }
    if let Some(p) = &s.pit {
        w.section(T_PIT2, bytes_of(p))?;
    }
    w.section(T_CLOCK, bytes_of(&s.clock))?;
    Ok(w.finish())
}

fn decode_vm(blob: &[u8]) -> Result<VmState> {
    let s = Sections::parse(blob, KIND_VM)?;
    let info = s.need(T_VM_INFO)?;
    if info.len() < 8 {
        return Err(bad());
    }
    let n = le32(info, 4) as usize;
    if (info.len() - 8) / 24 != n || (info.len() - 8) % 24 != 0 {
        return Err(bad());
    }
    let mut layout = Vec::new();
    layout.try_reserve_exact(n).map_err(nomem)?;
    layout.extend((0..n).map(|i| {
        let at = 8 + 24 * i;
        (le32(info, at), le64(info, at + 8), le64(info, at + 16))
    }));
    let pic = match (s.get(T_PIC_MASTER), s.get(T_PIC_SLAVE), s.get(T_IOAPIC)) {
        (None, None, None) => None,
        (Some(m), Some(sl), Some(io)) => Some((
            pod::<kvm_irqchip>(m)?,
            pod::<kvm_irqchip>(sl)?,
            pod::<kvm_irqchip>(io)?,
        )),
        _ => return Err(bad()),
    };
    let chips_ok = pic
        .as_ref()
        .is_none_or(|(m, sl, io): &(kvm_irqchip, _, _)| {
            m.chip_id == kvm_bindings::KVM_IRQCHIP_PIC_MASTER
                && sl.chip_id == kvm_bindings::KVM_IRQCHIP_PIC_SLAVE
                && io.chip_id == kvm_bindings::KVM_IRQCHIP_IOAPIC
        });
    if !chips_ok {
        return Err(bad());
    }
    Ok(VmState {
        nr_vcpus: le32(info, 0),
        layout,
        pic,
        pit: s.opt(T_PIT2)?,
        clock: pod(s.need(T_CLOCK)?)?,
    })
}

fn check_vm_fits(vm: &Vm, s: &VmState) -> Result<()> {
    if registry::nr_vcpus_of(vm.raw_fd()) as u32 != s.nr_vcpus || vm.memory_layout()? != s.layout {
        return Err(Errno(libc::EINVAL));
    }
    if s.pic.is_some() && !vm.has_irqchip() {
        return Err(Errno(libc::ENXIO));
    }
    if s.pit.is_some() {
        vm_state::get_pit2(vm)?; // ENXIO without a PIT
    }
    Ok(())
}

fn apply_vm(vm: &Vm, s: &VmState) -> Result<()> {
    if let Some((m, sl, io)) = &s.pic {
        vm_state::set_irqchip(vm, m)?;
        vm_state::set_irqchip(vm, sl)?;
        vm_state::set_irqchip(vm, io)?;
    }
    if let Some(p) = &s.pit {
        vm_state::set_pit2(vm, p)?;
    }
    // The clock continues from the saved value: guest time stands still while the VM is
    // saved.
    let clock = kvm_clock_data {
        clock: s.clock.clock,
        ..Default::default()
    };
    vm_state::set_clock(vm, &clock)
}

/// `kvm_save_vm`: the blob of VM `vm`'s device state.
pub fn save_vm(vm: &Vm) -> Result<Vec<u8>> {
    encode_vm(&capture_vm(vm)?)
}

/// `kvm_restore_vm`: checks `blob` completely and that it fits `vm`, then loads it;
/// puts back what the VM held if the kernel refuses part of it.
pub fn restore_vm(vm: &Vm, blob: &[u8]) -> Result<()> {
    let s = decode_vm(blob)?;
    check_vm_fits(vm, &s)?;
    let before = capture_vm(vm)?;
    apply_vm(vm, &s).inspect_err(|_| {
        let _ = apply_vm(vm, &before);
    })
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

    fn vcpu_blob(cpuid: usize, msrs: usize) -> Vec<u8> {
        encode_vcpu(&VcpuState {
            cpuid: vec![kvm_cpuid_entry2::default(); cpuid],
            regs: kvm_regs::default(),
            sregs: Some(kvm_sregs::default()),
            sregs2: None,
            xsave: vec![0; size_of::<kvm_xsave>()],
            xcrs: None,
            msrs: vec![kvm_msr_entry::default(); msrs],
            lapic: None,
            events: kvm_vcpu_events::default(),
            mp_state: kvm_mp_state::default(),
            debugregs: None,
            nested: None,
            tsc_khz: None,
            pending_irqs: [0; 4],
        })
        .unwrap()
    }

    fn decode_err(b: &[u8]) -> i32 {
        match decode_vcpu(b) {
            Err(Errno(e)) => e,
            Ok(_) => 0,
        }
    }

    #[test]
    fn vcpu_blobs_with_more_entries_than_the_kernel_takes_are_refused() {
        assert_eq!(decode_err(&vcpu_blob(256, 255)), 0);
        assert_eq!(decode_err(&vcpu_blob(257, 0)), libc::EBADMSG);
        assert_eq!(decode_err(&vcpu_blob(0, 256)), libc::EBADMSG);
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
