//! `kvm_save_vcpu` / `kvm_restore_vcpu`: what a vcpu blob holds, captured from and
//! applied to a vcpu the caller holds.

use super::blob::*;
use crate::error::{nomem, try_to_vec, try_vec, Errno, Result};
use crate::ioctl;
use crate::system;
use crate::vcpu::Vcpu;
use kvm_bindings::{
    kvm_cpuid2, kvm_cpuid_entry2, kvm_debugregs, kvm_lapic_state, kvm_mp_state, kvm_msr_entry,
    kvm_msr_list, kvm_msrs, kvm_nested_state, kvm_regs, kvm_sregs, kvm_sregs2, kvm_vcpu_events,
    kvm_xcrs, kvm_xsave,
};
use std::mem::size_of;
use std::os::unix::io::AsRawFd;
use std::ptr::{addr_of, addr_of_mut};
use std::sync::OnceLock;

const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_FEATURE_CONTROL: u32 = 0x3a;
const MSR_IA32_TSC_DEADLINE: u32 = 0x6e0;

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
        unsafe { ioctl::ioctl(fd.as_raw_fd(), ioctl::KVM_GET_CPUID2, p as _) }
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
    // reset the vcpu (`Vcpu::get_mp_state` is a writing call).
    let events = v.get_events()?;
    let mp_state = v.get_mp_state()?;
    let regs = v.get_regs()?;
    let size = v.xsave_size()?;
    let mut xsave = try_vec(size.div_ceil(8), 0u64)?;
    // SAFETY: the buffer holds `size` bytes, 8-aligned.
    unsafe { v.get_xsave(xsave.as_mut_ptr().cast::<kvm_xsave>(), size) }?;
    let xsave = try_to_vec(&bytes_of_slice(&xsave)[..size])?;
    let xcrs = if v.vm_extension(kvm_bindings::KVM_CAP_XCRS).unwrap_or(0) > 0 {
        Some(v.get_xcrs()?)
    } else {
        None
    };
    let (sregs, sregs2) = if v.vm_extension(kvm_bindings::KVM_CAP_SREGS2).unwrap_or(0) > 0 {
        (None, Some(v.get_sregs2()?))
    } else {
        (Some(v.get_sregs()?), None)
    };
    let msrs = get_msrs(v)?;
    let lapic = if v.apic.in_kernel() {
        Some(v.get_lapic()?)
    } else {
        None
    };
    let debugregs = if v.vm_extension(kvm_bindings::KVM_CAP_DEBUGREGS).unwrap_or(0) > 0 {
        Some(v.get_debugregs()?)
    } else {
        None
    };
    let nested = match v.nested_state_max()? {
        0 => None,
        max => {
            let mut buf = try_vec(max.div_ceil(8), 0u64)?;
            let st = buf.as_mut_ptr().cast::<kvm_nested_state>();
            // SAFETY: `st` points at `max` writable, aligned bytes; `size` says so.
            unsafe { addr_of_mut!((*st).size).write(max as u32) };
            // SAFETY: as above.
            unsafe { v.get_nested_state(st) }?;
            // SAFETY: the kernel wrote the size it used, at most `max`.
            let used = unsafe { addr_of!((*st).size).read() } as usize;
            Some(try_to_vec(&bytes_of_slice(&buf)[..used.min(max)])?)
        }
    };
    let tsc_khz = v.get_tsc_khz().ok();
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
            if b.len() < crate::vcpu::state::NESTED_HEADER || le32(b, 4) as usize != b.len() {
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
    if s.nested.is_some() && v.nested_state_max()? == 0 {
        return Err(Errno(libc::EOPNOTSUPP));
    }
    if s.lapic.is_some() && !v.apic.in_kernel() {
        return Err(Errno(libc::ENXIO));
    }
    if s.xsave.len() > v.xsave_size()? {
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
        let bytes = v.xsave_size()?.max(nested);
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
        (Some(s2), _) if v.vm_extension(kvm_bindings::KVM_CAP_SREGS2).unwrap_or(0) > 0 => {
            v.set_sregs2(s2)?
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
        unsafe { v.set_nested_state(p.cast::<kvm_nested_state>()) }?;
    }
    if let Some(khz) = s.tsc_khz {
        // As QEMU does, a frequency the kernel cannot give is not fatal: the guest's
        // TSC keeps the host's rate.
        if v.get_tsc_khz().ok() != Some(khz) {
            let _ = v.set_tsc_khz(khz);
        }
    }
    v.set_regs(&s.regs)?;
    let size = v.xsave_size()?;
    if b.bytes.len() * 8 < size || s.xsave.len() > size {
        return Err(Errno(libc::EINVAL)); // check_vcpu_fits and Scratch::new rule it out
    }
    let p = b.aligned(&s.xsave);
    // SAFETY: the buffer holds `size` bytes, 8-aligned: the saved area, then zeros.
    unsafe { v.set_xsave(p.cast::<kvm_xsave>(), size) }?;
    if let Some(x) = &s.xcrs {
        v.set_xcrs(x)?;
    }
    if let Some(l) = &s.lapic {
        v.set_lapic(l)?;
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
    v.set_mp_state(s.mp_state)?;
    if let Some(d) = &s.debugregs {
        v.set_debugregs(d)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
