//! A walk of the guest's page tables, pure: it reads entries through a closure, so it is
//! unit-tested without KVM. `kvm_translate` uses it for the rights KVM_TRANSLATE does
//! not report (src/vcpu/cpu.rs).

use crate::error::Result;
use kvm_bindings::kvm_sregs;

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
