//! Per-vcpu state beyond the registers: MSRs, CPUID, FPU, guest debugging, address
//! translation and interrupt injection, all on the calling thread's vcpu.
//!
//! Every ioctl here goes through `Vcpu::reading` / `Vcpu::writing`, so the sync-regs
//! cache stays exact (see `regs.rs`).

use crate::error::{Errno, Result};
use crate::ioctl;
use crate::registry;
use crate::vcpu::Vcpu;
use kvm_bindings::{
    kvm_cpuid2, kvm_fpu, kvm_guest_debug, kvm_interrupt, kvm_msi, kvm_msrs, kvm_sregs,
    kvm_translation, KVM_EXIT_HLT, KVM_EXIT_IRQ_WINDOW_OPEN,
};
use std::os::unix::io::AsRawFd;
use std::ptr::{addr_of, addr_of_mut};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// KVM_SET_GUEST_DEBUG control bits on x86.
const GUESTDBG_KNOWN: u32 = kvm_bindings::KVM_GUESTDBG_ENABLE
    | kvm_bindings::KVM_GUESTDBG_SINGLESTEP
    | kvm_bindings::KVM_GUESTDBG_USE_SW_BP
    | kvm_bindings::KVM_GUESTDBG_USE_HW_BP
    | kvm_bindings::KVM_GUESTDBG_INJECT_DB
    | kvm_bindings::KVM_GUESTDBG_INJECT_BP
    | kvm_bindings::KVM_GUESTDBG_BLOCKIRQ;

impl Vcpu {
    /// KVM_GET_MSRS on the caller's `struct kvm_msrs`: returns how many MSRs were read
    /// (the first that KVM does not know stops it).
    ///
    /// # Safety
    /// `msrs` points at a `struct kvm_msrs` followed by `nmsrs` entries.
    pub unsafe fn get_msrs(&self, msrs: *mut kvm_msrs) -> Result<i32> {
        self.reading(|fd| {
            // SAFETY: the kernel reads `nmsrs` (refusing more than it allows) and that
            // many entries, and writes their `data`, inside the caller's buffer.
            unsafe {
                ioctl::ioctl(
                    fd.as_raw_fd(),
                    ioctl::iowr::<kvm_msrs>(0x88),
                    msrs as libc::c_ulong,
                )
            }
        })
    }

    /// KVM_SET_MSRS from the caller's `struct kvm_msrs`: returns how many MSRs were
    /// written (the first that KVM refuses stops it).
    ///
    /// # Safety
    /// `msrs` points at a `struct kvm_msrs` followed by `nmsrs` entries.
    pub unsafe fn set_msrs(&self, msrs: *const kvm_msrs) -> Result<i32> {
        self.writing(|fd| {
            // SAFETY: the kernel only reads `nmsrs` and that many entries.
            unsafe {
                ioctl::ioctl(
                    fd.as_raw_fd(),
                    ioctl::iow::<kvm_msrs>(0x89),
                    msrs as libc::c_ulong,
                )
            }
        })
    }

    /// KVM_SET_CPUID2 from the caller's `struct kvm_cpuid2`.
    ///
    /// # Safety
    /// `cpuid` points at a `struct kvm_cpuid2` followed by `nent` entries.
    pub unsafe fn set_cpuid(&self, cpuid: *const kvm_cpuid2) -> Result<()> {
        self.writing(|fd| {
            // SAFETY: the kernel only reads `nent` (refusing more than it allows) and that
            // many entries.
            unsafe {
                ioctl::ioctl(
                    fd.as_raw_fd(),
                    ioctl::iow::<kvm_cpuid2>(0x90),
                    cpuid as libc::c_ulong,
                )
            }
        })?;
        Ok(())
    }

    /// KVM_GET_FPU.
    pub fn get_fpu(&self) -> Result<kvm_fpu> {
        self.reading(|fd| fd.get_fpu().map_err(Errno::from))
    }

    /// KVM_SET_FPU.
    pub fn set_fpu(&self, fpu: &kvm_fpu) -> Result<()> {
        self.writing(|fd| fd.set_fpu(fpu).map_err(Errno::from))
    }

    /// KVM_SET_GUEST_DEBUG (the 2007 KVM_DEBUG_GUEST).
    pub fn set_guest_debug(&self, dbg: &kvm_guest_debug) -> Result<()> {
        // The kernel takes control bits it does not know without complaint (checked on
        // 6.18): libkvm refuses them, as kvm_debug_guest(3) says. The known ones are those
        // of <asm/kvm.h>, less any the kernel says (KVM_CAP_SET_GUEST_DEBUG2) it lacks.
        let supported =
            crate::system::check_extension(kvm_bindings::KVM_CAP_SET_GUEST_DEBUG2 as libc::c_long)
                .ok()
                .filter(|&m| m > 0)
                .map_or(GUESTDBG_KNOWN, |m| GUESTDBG_KNOWN & m as u32);
        if dbg.control & !supported != 0 {
            return Err(Errno(libc::EINVAL));
        }
        self.writing(|fd| fd.set_guest_debug(dbg).map_err(Errno::from))
    }

    /// KVM_TRANSLATE for the address, with the writeable and usermode bits (which the
    /// kernel always reports as 1 and 0) taken from a walk of the guest's page tables.
    pub fn translate(&self, linear: u64) -> Result<kvm_translation> {
        let mut tr = self.reading(|fd| fd.translate_gva(linear).map_err(Errno::from))?;
        if tr.valid == 0 {
            tr.writeable = 0;
            tr.usermode = 0;
            return Ok(tr);
        }
        let sregs = self.get_sregs()?;
        let vm = registry::vm(self.vm_fd())?;
        match walk(&sregs, linear, |gpa, len| vm.read_guest(gpa, len)) {
            Ok(Some(w)) if w.gpa == tr.physical_address => {
                tr.writeable = w.writeable.into();
                tr.usermode = w.usermode.into();
                Ok(tr)
            }
            // The kernel's walk and ours disagree: the tables changed in between.
            _ => Err(Errno(libc::EAGAIN)),
        }
    }

    /// `kvm_interrupt`: through the in-kernel local APIC if the VM has one, else
    /// with KVM_INTERRUPT as soon as the guest can take it (see [`IrqState`]).
    pub fn interrupt(&self, vector: u32) -> Result<()> {
        let vector = u8::try_from(vector).map_err(|_| Errno(libc::EINVAL))?;
        if self.apic.in_kernel() {
            let lapic = self.reading(|fd| fd.get_lapic().map_err(Errno::from))?;
            // APIC ID register (offset 0x20).
            let reg = u32::from_le_bytes(std::array::from_fn(|i| lapic.regs[0x20 + i] as u8));
            let x2apic =
                self.apic.x2apic_32bit_ids() && self.get_sregs()?.apic_base & APIC_BASE_EXTD != 0;
            let (id, address_hi) = if x2apic {
                // KVM_CAP_X2APIC_API with 32-bit IDs, APIC in x2APIC mode: the register
                // holds the whole ID; bits 31:8 of the destination go in address_hi.
                (reg & 0xff, reg & 0xffff_ff00)
            } else {
                // The ID in bits 31:24, as KVM_GET_LAPIC reports it otherwise.
                (reg >> 24, 0)
            };
            let msi = kvm_msi {
                // Physical destination `id`, fixed delivery, edge-triggered.
                address_lo: 0xfee0_0000 | id << 12,
                address_hi,
                data: u32::from(vector),
                ..Default::default()
            };
            // KVM_SIGNAL_MSI on the VM fd the vcpu keeps (no registry lock).
            // SAFETY: KVM_SIGNAL_MSI reads one struct kvm_msi, which lives across the call.
            let r = unsafe {
                ioctl::ioctl(
                    self.vm_fd(),
                    ioctl::iow::<kvm_msi>(0xa5),
                    &msi as *const _ as libc::c_ulong,
                )
            };
            return match r {
                Ok(n) if n > 0 => Ok(()),
                // 0: refused; EPERM: no APIC accepted it (software-disabled).
                Ok(_) | Err(Errno(libc::EPERM)) => Err(Errno(libc::EAGAIN)),
                Err(e) => Err(e),
            };
        }
        self.irq.add(vector);
        if let Err(e) = self.deliver_pending() {
            self.irq.remove(vector);
            return Err(e);
        }
        Ok(())
    }

    /// Injects the highest pending vector with KVM_INTERRUPT if the guest can take it
    /// now: the last exit said it was ready, its IF is still set, and nothing was
    /// injected since that exit. Returns whether it injected one.
    fn deliver_pending(&self) -> Result<bool> {
        let Some(vector) = self.irq.highest() else {
            return Ok(false);
        };
        if self.irq.state.load(Relaxed) & INJECTED != 0 {
            return Ok(false);
        }
        let run = self.run_area();
        // SAFETY: owner-only field of the live run area, written by the kernel on exit.
        if unsafe { addr_of!((*run).ready_for_interrupt_injection).read() } == 0 {
            return Ok(false);
        }
        if self.get_regs()?.rflags & RFLAGS_IF == 0 {
            return Ok(false);
        }
        let irq = kvm_interrupt {
            irq: u32::from(vector),
        };
        self.writing(|fd| {
            // SAFETY: KVM_INTERRUPT reads one struct kvm_interrupt, which lives across
            // the call.
            unsafe {
                ioctl::ioctl(
                    fd.as_raw_fd(),
                    ioctl::iow::<kvm_interrupt>(0x86),
                    &irq as *const _ as libc::c_ulong,
                )
            }
        })?;
        self.irq.remove(vector);
        self.irq.state.fetch_or(INJECTED, Relaxed);
        Ok(true)
    }

    /// Called by `run` before KVM_RUN: with vectors pending, injects one if the guest
    /// can take it, and asks the kernel for an interrupt window for the rest. Free when
    /// nothing is pending.
    #[inline]
    pub(crate) fn irq_before_entry(&self) {
        if self.irq.any() {
            self.irq_before_entry_slow();
        }
    }

    #[cold]
    fn irq_before_entry_slow(&self) {
        // An error leaves the vector pending; the window below retries it.
        let _ = self.deliver_pending();
        if !self.irq.any() {
            return;
        }
        let run = self.run_area();
        // SAFETY: owner-only field of the live run area; the caller's value is put back
        // after the exit.
        let caller = unsafe { addr_of!((*run).request_interrupt_window).read() };
        let injected = self.irq.state.load(Relaxed) & INJECTED;
        self.irq
            .state
            .store(injected | OVERRIDE | u32::from(caller), Relaxed);
        // SAFETY: as above.
        unsafe { addr_of_mut!((*run).request_interrupt_window).write(1) };
    }

    /// Called by `run` after KVM_RUN with its result: puts the caller's
    /// request_interrupt_window back, and on an interrupt-window exit that libkvm asked
    /// for, or a HLT exit with IF set, injects a pending vector. Returns true if `run`
    /// should enter the guest again instead of returning (the exit was libkvm's own).
    #[inline]
    pub(crate) fn irq_after_exit(&self, result: &Result<i32>) -> bool {
        let st = self.irq.state.load(Relaxed);
        if st == 0 {
            return false;
        }
        self.irq_after_exit_slow(st, result)
    }

    #[cold]
    fn irq_after_exit_slow(&self, st: u32, result: &Result<i32>) -> bool {
        // A KVM_RUN happened: an earlier injection has been taken (or the run area says
        // the guest is not ready for another).
        self.irq.state.store(0, Relaxed);
        if st & OVERRIDE == 0 {
            return false;
        }
        let run = self.run_area();
        // SAFETY: owner-only field of the live run area.
        unsafe { addr_of_mut!((*run).request_interrupt_window).write(st as u8) };
        // Re-enter only when a vector went in: if none could (an error, or the guest
        // not ready), the exit goes to the caller rather than looping here.
        match *result {
            Ok(r) if r == KVM_EXIT_IRQ_WINDOW_OPEN as i32 => self.deliver_pending() == Ok(true),
            // The guest halted with a vector waiting: with IF set (`sti; hlt`, the idle
            // loop) a CPU would take the interrupt and wake, so it goes in now and the
            // handler's iret returns after the hlt (KVM has stepped over it). Returning
            // the HLT instead would let a VMM sleep on an interrupt it already sent. With
            // IF clear, deliver_pending declines and the HLT goes to the caller.
            Ok(r) if r == KVM_EXIT_HLT as i32 => self.deliver_pending() == Ok(true),
            _ => false,
        }
    }
}

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;
/// IA32_APIC_BASE.EXTD: the local APIC is in x2APIC mode.
const APIC_BASE_EXTD: u64 = 1 << 10;
/// `IrqState::state`: libkvm set request_interrupt_window for this KVM_RUN; the low byte
/// holds the caller's value, to put back after the exit.
const OVERRIDE: u32 = 1 << 8;
/// `IrqState::state`: KVM_INTERRUPT was issued since the last KVM_RUN.
const INJECTED: u32 = 1 << 9;

/// Interrupts of `kvm_interrupt` on a VM without an in-kernel irqchip.
///
/// KVM_INTERRUPT injects at the next entry whether or not the guest can take an
/// interrupt, so libkvm issues it only when the last exit said the guest was ready
/// (`ready_for_interrupt_injection`) and IF is still set. Otherwise the vector waits
/// here, and `run` sets `request_interrupt_window` for the KVM_RUN; the
/// KVM_EXIT_IRQ_WINDOW_OPEN that follows is libkvm's own: it injects the vector and
/// enters the guest again without returning. So is a KVM_EXIT_HLT after which the guest
/// can take the vector (`sti; hlt`: the hlt exits before the window opens): the vector
/// wakes the hlt as on a CPU, and `run` never returns HLT while one is deliverable. Several vectors can wait; the highest goes
/// first, as a local APIC would deliver them. Only the owning thread touches this;
/// relaxed atomics make it safe Rust at the cost of plain loads and stores.
#[derive(Debug, Default)]
pub struct IrqState {
    /// Pending vectors, one bit each.
    pending: [AtomicU64; 4],
    /// OVERRIDE | INJECTED | the caller's request_interrupt_window.
    state: AtomicU32,
}

impl IrqState {
    fn any(&self) -> bool {
        self.pending.iter().any(|w| w.load(Relaxed) != 0)
    }

    fn add(&self, v: u8) {
        self.pending[usize::from(v / 64)].fetch_or(1 << (v % 64), Relaxed);
    }

    fn remove(&self, v: u8) {
        self.pending[usize::from(v / 64)].fetch_and(!(1 << (v % 64)), Relaxed);
    }

    /// The vectors waiting for the guest to be ready, one bit each (kvm_save_vcpu).
    pub(crate) fn pending(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.pending[i].load(Relaxed))
    }

    /// Replaces the waiting vectors (kvm_restore_vcpu).
    pub(crate) fn set_pending(&self, p: [u64; 4]) {
        for (w, v) in self.pending.iter().zip(p) {
            w.store(v, Relaxed);
        }
    }

    fn highest(&self) -> Option<u8> {
        (0..4u8).rev().find_map(|i| {
            let w = self.pending[usize::from(i)].load(Relaxed);
            (w != 0).then(|| i * 64 + (63 - w.leading_zeros() as u8))
        })
    }
}

/// The result of a page-table walk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Walk {
    pub gpa: u64,
    pub writeable: bool,
    pub usermode: bool,
}

const PRESENT: u64 = 1;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PS: u64 = 1 << 7;
const ADDR: u64 = 0x000f_ffff_ffff_f000;
const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;

/// Walks the guest's page tables for `linear` in the paging mode `sregs` describe
/// (none, 32-bit, PAE, 4- or 5-level), reading entries with `read(gpa, bytes)`. Returns
/// None if the address is not mapped. `writeable`/`usermode`: the R/W and U/S bits are
/// set at every level (all true without paging).
pub(crate) fn walk(
    sregs: &kvm_sregs,
    linear: u64,
    mut read: impl FnMut(u64, usize) -> Result<u64>,
) -> Result<Option<Walk>> {
    if sregs.cr0 & CR0_PG == 0 {
        return Ok(Some(Walk {
            gpa: linear,
            writeable: true,
            usermode: true,
        }));
    }
    let mut rights = RW | US;
    if sregs.cr4 & CR4_PAE == 0 {
        // 32-bit paging: 4-byte entries, 4 MiB pages with CR4.PSE (PSE-36 high bits).
        let la = linear & 0xffff_ffff;
        let pde = read((sregs.cr3 & 0xffff_f000) + ((la >> 22) & 0x3ff) * 4, 4)?;
        if pde & PRESENT == 0 {
            return Ok(None);
        }
        rights &= pde;
        let gpa = if pde & PS != 0 && sregs.cr4 & CR4_PSE != 0 {
            (pde & 0xffc0_0000) | ((pde >> 13) & 0xff) << 32 | (la & 0x3f_ffff)
        } else {
            let pte = read((pde & 0xffff_f000) + ((la >> 12) & 0x3ff) * 4, 4)?;
            if pte & PRESENT == 0 {
                return Ok(None);
            }
            rights &= pte;
            (pte & 0xffff_f000) | (la & 0xfff)
        };
        return Ok(Some(Walk {
            gpa,
            writeable: rights & RW != 0,
            usermode: rights & US != 0,
        }));
    }
    let (mut table, levels, la) = if sregs.efer & EFER_LMA != 0 {
        let levels = if sregs.cr4 & CR4_LA57 != 0 { 5 } else { 4 };
        (sregs.cr3 & ADDR, levels, linear)
    } else {
        // PAE: four PDPTEs at CR3 (32-byte aligned), which have no R/W or U/S bits.
        let la = linear & 0xffff_ffff;
        let pdpte = read((sregs.cr3 & 0xffff_ffe0) + (la >> 30) * 8, 8)?;
        if pdpte & PRESENT == 0 {
            return Ok(None);
        }
        (pdpte & ADDR, 2, la)
    };
    for level in (1..=levels).rev() {
        let shift = 12 + 9 * (level - 1);
        let e = read(table + ((la >> shift) & 0x1ff) * 8, 8)?;
        if e & PRESENT == 0 {
            return Ok(None);
        }
        rights &= e;
        // Large pages: 1 GiB at level 3, 2 MiB at level 2.
        if level == 1 || (level <= 3 && e & PS != 0) {
            let offset = (1u64 << shift) - 1;
            return Ok(Some(Walk {
                gpa: (e & ADDR & !offset) | (la & offset),
                writeable: rights & RW != 0,
                usermode: rights & US != 0,
            }));
        }
        table = e & ADDR;
    }
    unreachable!("level 1 always returns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn reader(m: &HashMap<u64, u64>) -> impl FnMut(u64, usize) -> Result<u64> + '_ {
        |gpa, _| Ok(m.get(&gpa).copied().unwrap_or(0))
    }

    #[test]
    fn pending_vectors_go_highest_first() {
        let s = IrqState::default();
        assert_eq!(s.highest(), None);
        assert!(!s.any());
        s.add(0x20);
        s.add(0xff);
        s.add(0x80);
        assert_eq!(s.highest(), Some(0xff));
        s.remove(0xff);
        assert_eq!(s.highest(), Some(0x80));
        s.remove(0x80);
        s.remove(0x20);
        assert!(!s.any());
    }

    #[test]
    fn no_paging_is_identity() {
        let s = kvm_sregs::default();
        let w = walk(&s, 0x1234, |_, _| panic!("no reads")).unwrap();
        assert_eq!(
            w,
            Some(Walk {
                gpa: 0x1234,
                writeable: true,
                usermode: true
            })
        );
    }

    #[test]
    fn four_level_walk_with_large_pages_and_rights() {
        let mut m = HashMap::new();
        let s = kvm_sregs {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: EFER_LMA | 0x100,
            ..Default::default()
        };
        m.insert(0x1000, 0x2000 | 7); // PML4[0] -> PDPT, user, writable
        m.insert(0x2000, 0x3000 | 7); // PDPT[0] -> PD
        m.insert(0x2008, 0x4000_0000 | PS | 3); // PDPT[1]: 1 GiB page, supervisor
        m.insert(0x3000, 0x4000 | 5); // PD[0] -> PT, read-only user
        m.insert(0x3008, 0x20_0000 | PS | 7); // PD[1]: 2 MiB page
        m.insert(0x4000 + 5 * 8, 0x9000 | 7); // PT[5]
        let w = walk(&s, 0x5123, reader(&m)).unwrap().unwrap();
        assert_eq!((w.gpa, w.writeable, w.usermode), (0x9123, false, true));
        let w = walk(&s, 0x20_0042, reader(&m)).unwrap().unwrap();
        assert_eq!((w.gpa, w.writeable, w.usermode), (0x20_0042, true, true));
        let w = walk(&s, 0x4000_1234, reader(&m)).unwrap().unwrap();
        assert_eq!((w.gpa, w.writeable, w.usermode), (0x4000_1234, true, false));
        assert_eq!(walk(&s, 0x6000, reader(&m)).unwrap(), None);
    }

    #[test]
    fn thirty_two_bit_walk_with_4m_pages() {
        let mut m = HashMap::new();
        let s = kvm_sregs {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4: CR4_PSE,
            ..Default::default()
        };
        m.insert(0x1000 + 4, 0x2000 | 7); // PDE[1] -> PT
        m.insert(0x2000 + 3 * 4, 0x7000 | 1); // PTE[3]: read-only supervisor
        m.insert(0x1000 + 8, 0x0040_0000 | (1 << 13) | PS | 7); // PDE[2]: 4 MiB, PSE-36
        let w = walk(&s, 0x40_3abc, reader(&m)).unwrap().unwrap();
        assert_eq!((w.gpa, w.writeable, w.usermode), (0x7abc, false, false));
        let w = walk(&s, 0x80_1234, reader(&m)).unwrap().unwrap();
        assert_eq!(w.gpa, 0x1_0040_1234);
        assert_eq!(walk(&s, 0x40_4000, reader(&m)).unwrap(), None);
        assert_eq!(walk(&s, 0, reader(&m)).unwrap(), None);
    }

    /// NX (bit 63 of a PAE or long-mode entry) and the PAT bit of a large page.
    const NX: u64 = 1 << 63;
    const PAT_LARGE: u64 = 1 << 12;

    fn at(s: &kvm_sregs, m: &HashMap<u64, u64>, la: u64) -> Option<(u64, bool, bool)> {
        walk(s, la, reader(m))
            .unwrap()
            .map(|w| (w.gpa, w.writeable, w.usermode))
    }

    fn thirty_two_bit(cr4: u64) -> kvm_sregs {
        kvm_sregs {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4,
            ..Default::default()
        }
    }

    // 32-bit paging (Intel SDM vol. 3, 4.3 and 4.6): an address is writable only if R/W
    // is set in both the PDE and the PTE, user-accessible only if U/S is set in both; a
    // 4 MiB page's rights are its PDE's.
    #[test]
    fn thirty_two_bit_walk_takes_the_rights_of_the_pde_as_well_as_the_pte() {
        let s = thirty_two_bit(CR4_PSE);
        let mut m = HashMap::new();
        // PDE[0..4] point at one permissive page table; each PDE restricts differently.
        m.insert(0x1000, 0x2000 | 1); // read-only, supervisor
        m.insert(0x1004, 0x2000 | 1 | RW); // writable, supervisor
        m.insert(0x1008, 0x2000 | 1 | US); // read-only, user
        m.insert(0x100c, 0x2000 | 7); // writable, user
        m.insert(0x2000 + 5 * 4, 0x9000 | 7); // PTE[5]: writable, user
        m.insert(0x2000 + 6 * 4, 0xa000 | 1 | US); // PTE[6]: read-only, user
        m.insert(0x2000 + 7 * 4, 0xb000 | 1 | RW); // PTE[7]: writable, supervisor
        let pde = |i: u64, pte: u64| (i << 22) | (pte << 12) | 0x123;
        assert_eq!(at(&s, &m, pde(0, 5)), Some((0x9123, false, false)));
        assert_eq!(at(&s, &m, pde(1, 5)), Some((0x9123, true, false)));
        assert_eq!(at(&s, &m, pde(2, 5)), Some((0x9123, false, true)));
        assert_eq!(at(&s, &m, pde(3, 5)), Some((0x9123, true, true)));
        // The PTE restricts a permissive PDE, each bit on its own.
        assert_eq!(at(&s, &m, pde(3, 6)), Some((0xa123, false, true)));
        assert_eq!(at(&s, &m, pde(3, 7)), Some((0xb123, true, false)));
        // Both restrict: the intersection.
        assert_eq!(at(&s, &m, pde(1, 6)), Some((0xa123, false, false)));
        assert_eq!(at(&s, &m, pde(2, 7)), Some((0xb123, false, false)));
    }

    #[test]
    fn thirty_two_bit_4m_pages_take_their_pde_rights_and_address_bits() {
        let s = thirty_two_bit(CR4_PSE);
        let mut m = HashMap::new();
        m.insert(0x1000 + 4, 0x0040_0000 | PS | 1); // read-only, supervisor
        m.insert(0x1000 + 8, 0x0080_0000 | PS | 1 | US); // read-only, user
        m.insert(0x1000 + 12, 0x00c0_0000 | PS | 1 | RW); // writable, supervisor
                                                          // PAT (bit 12) is no address bit; bits 20:13 are physical bits 39:32 (PSE-36).
        m.insert(0x1000 + 16, 0xff00_0000 | (0x7f << 13) | PAT_LARGE | PS | 7);
        assert_eq!(at(&s, &m, 0x0040_1234), Some((0x0040_1234, false, false)));
        assert_eq!(at(&s, &m, 0x0080_0042), Some((0x0080_0042, false, true)));
        assert_eq!(at(&s, &m, 0x00ff_ffff), Some((0x00ff_ffff, true, false)));
        assert_eq!(at(&s, &m, 0x013f_fffc), Some((0x7f_ff3f_fffc, true, true)));
    }

    #[test]
    fn thirty_two_bit_ps_without_cr4_pse_is_a_page_table() {
        let s = thirty_two_bit(0);
        let mut m = HashMap::new();
        // Without CR4.PSE the PS bit is ignored: the PDE points at a page table.
        m.insert(0x1000 + 4, 0x0040_3000 | PS | 7);
        m.insert(0x0040_3000 + 2 * 4, 0x5000 | 1 | RW);
        assert_eq!(at(&s, &m, 0x0040_2abc), Some((0x5abc, true, false)));
        assert_eq!(at(&s, &m, 0x0040_3abc), None); // PTE[3] not present
    }

    #[test]
    fn thirty_two_bit_walk_ignores_what_the_mode_does_not_use() {
        // CR3's PWT/PCD and the linear address above bit 31 are not part of the walk;
        // an entry without P is not present whatever its other bits say.
        let mut s = thirty_two_bit(CR4_PSE);
        s.cr3 = 0x1018;
        let mut m = HashMap::new();
        m.insert(0x1000, 0x2000 | 7);
        m.insert(0x2000 + 4, 0x3000 | 7);
        m.insert(0x2000 + 8, 0x4000 | 6); // not present
        m.insert(0x1004, 0x0040_0000 | PS | 6); // not present
        assert_eq!(
            at(&s, &m, 0xffff_ffff_0000_1010),
            Some((0x3010, true, true))
        );
        assert_eq!(at(&s, &m, 0x2010), None);
        assert_eq!(at(&s, &m, 0x0040_0000), None);
    }

    fn pae() -> kvm_sregs {
        kvm_sregs {
            cr0: CR0_PG | 1,
            cr3: 0x1020, // 32-byte aligned: the four PDPTEs at 0x1020
            cr4: CR4_PAE,
            efer: 0x800, // NXE
            ..Default::default()
        }
    }

    // PAE paging (SDM 4.4, 4.6): the four PDPTEs have no R/W or U/S bits (they never
    // restrict), the PDE's and PTE's do; a 2 MiB page's are its PDE's; NX (bit 63) is
    // neither a right reported here nor an address bit.
    #[test]
    fn pae_walk_takes_the_rights_of_pde_and_pte_but_not_of_the_pdpte() {
        let s = pae();
        let mut m = HashMap::new();
        m.insert(0x1020, 0x2000 | 1); // PDPTE[0]: present, nothing else
        m.insert(0x1020 + 3 * 8, 0x1_0000_0000 | 1); // PDPTE[3]: a directory above 4 GiB
        m.insert(0x2000, 0x3000 | 7); // PDE[0] -> PT, permissive
        m.insert(0x2008, 0x3000 | 1 | US); // PDE[1] -> same PT, read-only
        m.insert(0x2010, 0x3000 | 1 | RW); // PDE[2] -> same PT, supervisor
        m.insert(0x3000 + 8, 0x9000 | 7 | NX); // PTE[1]: permissive, NX
        m.insert(0x3000 + 16, 0xa000 | 1 | US); // PTE[2]: read-only
        m.insert(0x3000 + 24, 0x2_3456_7000 | 1 | RW); // PTE[3]: supervisor, above 4 GiB
        let la = |pde: u64, pte: u64| (pde << 21) | (pte << 12) | 0x456;
        assert_eq!(at(&s, &m, la(0, 1)), Some((0x9456, true, true)));
        assert_eq!(at(&s, &m, la(1, 1)), Some((0x9456, false, true)));
        assert_eq!(at(&s, &m, la(2, 1)), Some((0x9456, true, false)));
        assert_eq!(at(&s, &m, la(0, 2)), Some((0xa456, false, true)));
        assert_eq!(at(&s, &m, la(0, 3)), Some((0x2_3456_7456, true, false)));
        assert_eq!(at(&s, &m, la(1, 3)), Some((0x2_3456_7456, false, false)));
        assert_eq!(at(&s, &m, la(0, 4)), None); // PTE[4] not present
                                                // PDPTE[3] (bits 31:30 of the address) with a 2 MiB page in its directory.
        m.insert(
            0x1_0000_0000 + 511 * 8,
            0x7fe0_0000 | PAT_LARGE | PS | 1 | US | NX,
        );
        assert_eq!(
            at(&s, &m, 0xffff_ffff_ffff_f00d),
            Some((0x7fff_f00d, false, true))
        );
        assert_eq!(at(&s, &m, 0x4000_0000), None); // PDPTE[1] not present
    }

    #[test]
    fn pae_2m_pages_take_their_pde_rights() {
        let s = pae();
        let mut m = HashMap::new();
        m.insert(0x1020, 0x2000 | 1);
        m.insert(0x2000, 0x0020_0000 | PS | 1); // read-only, supervisor
        m.insert(0x2008, 0x0040_0000 | PS | 1 | RW); // writable, supervisor
        m.insert(0x2010, 0x0060_0000 | PS | 1 | US); // read-only, user
        m.insert(0x2018, 0x0080_0000 | PS | 7 | NX);
        assert_eq!(at(&s, &m, 0x0000_1234), Some((0x0020_1234, false, false)));
        assert_eq!(at(&s, &m, 0x0020_1234), Some((0x0040_1234, true, false)));
        assert_eq!(at(&s, &m, 0x0040_1234), Some((0x0060_1234, false, true)));
        assert_eq!(at(&s, &m, 0x007f_ffff), Some((0x009f_ffff, true, true)));
    }

    #[test]
    fn four_level_walk_restricts_at_every_level() {
        let s = kvm_sregs {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: EFER_LMA | 0x100 | 0x800,
            ..Default::default()
        };
        // Four chains PML4E -> PDPTE -> PDE -> PTE, each restrictive at one level only.
        let mut m = HashMap::new();
        for (chain, restricted) in [(0u64, 3u64), (1, 2), (2, 1), (3, 0)] {
            let base = 0x10_0000 * (chain + 1);
            let bits = |level: u64, keep: u64| if level == restricted { keep } else { 7 };
            let keep = if chain % 2 == 0 { 1 | US } else { 1 | RW };
            m.insert(0x1000 + chain * 8, base | bits(3, keep));
            m.insert(base, (base + 0x1000) | bits(2, keep) | NX);
            m.insert(base + 0x1000, (base + 0x2000) | bits(1, keep));
            m.insert(base + 0x2000, 0x5000 | bits(0, keep));
        }
        let la = |chain: u64| chain << 39 | 0x77;
        // Chains 0 and 2 keep U/S only (read-only), 1 and 3 keep R/W only (supervisor).
        assert_eq!(at(&s, &m, la(0)), Some((0x5077, false, true)));
        assert_eq!(at(&s, &m, la(1)), Some((0x5077, true, false)));
        assert_eq!(at(&s, &m, la(2)), Some((0x5077, false, true)));
        assert_eq!(at(&s, &m, la(3)), Some((0x5077, true, false)));
    }
}
