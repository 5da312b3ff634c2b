//! The layout of a KVM binary statistics fd (KVM_GET_STATS_FD, Documentation/virt/kvm/
//! api.rst "KVM_GET_STATS_FD"), pure: the header, the descriptors and where each
//! statistic's values are in the data block. Parsed once from the bytes the kernel gives;
//! unit-tested without KVM.
//!
//! The file: a header (`struct kvm_stats_header`, 24 bytes) at offset 0; `num_desc`
//! descriptors at `desc_offset`, each a `struct kvm_stats_desc` (16 bytes) followed by its
//! name in `name_size` bytes (NUL-terminated); the values at `data_offset`: statistic `i`
//! has `size` u64 values at `data_offset + offset`.

use crate::error::{Errno, Result};

/// Bytes of `struct kvm_stats_header`.
pub(crate) const HEADER_SIZE: usize = 24;
/// Bytes of `struct kvm_stats_desc` before the name.
const DESC_SIZE: usize = 16;
/// More statistics than any kernel has (x86 vcpus have about 50): a header claiming more
/// is not one libkvm can trust.
const MAX_DESCS: u32 = 1 << 16;
/// Longer names than any kernel uses (KVM_STATS_NAME_SIZE is 48).
const MAX_NAME_SIZE: u32 = 4096;

/// What the header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Bytes of each name, NUL included.
    pub name_size: u32,
    /// Number of statistics.
    pub num_desc: u32,
    /// Where the descriptors start.
    pub desc_offset: u32,
    /// Where the values start.
    pub data_offset: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Header {
    /// The header in its 24 bytes; EIO if it is not one libkvm understands.
    pub fn parse(b: &[u8; HEADER_SIZE]) -> Result<Header> {
        let h = Header {
            name_size: u32_at(b, 4),
            num_desc: u32_at(b, 8),
            desc_offset: u32_at(b, 16),
            data_offset: u32_at(b, 20),
        };
        let sane = h.name_size > 0 && h.name_size <= MAX_NAME_SIZE && h.num_desc <= MAX_DESCS;
        if sane {
            Ok(h)
        } else {
            Err(Errno(libc::EIO))
        }
    }

    /// Bytes of the descriptor block.
    pub fn desc_bytes(&self) -> usize {
        self.num_desc as usize * (DESC_SIZE + self.name_size as usize)
    }
}

/// One statistic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    /// KVM_STATS_TYPE_*, KVM_STATS_UNIT_*, KVM_STATS_BASE_*.
    pub flags: u32,
    /// The unit's power of `base`.
    pub exponent: i16,
    /// Number of values (1, or a histogram's buckets).
    pub size: u32,
    /// Byte offset of its values in the data block.
    pub offset: u32,
    /// Index of its first value among all statistics' values in index order.
    pub first: u32,
}

/// Every statistic of one VM or vcpu: descriptors, names, and how to read them all.
#[derive(Debug)]
pub struct Table {
    descs: Vec<Desc>,
    /// The names, each in `name_size` bytes ending in NUL.
    names: Vec<u8>,
    name_size: usize,
    /// Where the values start in the file.
    pub data_offset: u32,
    /// Number of values of all statistics.
    pub total: usize,
    /// Bytes of the data block that hold every value (the end of the last one).
    pub span: usize,
    /// Whether the values lie in index order without gaps, so that all of them are one
    /// read of `total` values at `data_offset` straight into the caller's array.
    pub in_order: bool,
}

impl Table {
    /// The table of the descriptor block `b` (`h.desc_bytes()` bytes); EIO for a layout
    /// libkvm cannot use, ENOMEM without memory for it.
    pub fn parse(h: &Header, b: &[u8]) -> Result<Table> {
        if b.len() != h.desc_bytes() {
            return Err(Errno(libc::EIO));
        }
        let ns = h.name_size as usize;
        let n = h.num_desc as usize;
        let mut descs = Vec::new();
        descs.try_reserve_exact(n).map_err(crate::error::nomem)?;
        let mut names = crate::error::try_vec(n * ns, 0u8)?;
        let (mut first, mut span, mut in_order) = (0u64, 0u64, true);
        for (i, d) in b.chunks_exact(DESC_SIZE + ns).enumerate() {
            let size = u32::from(u16::from_ne_bytes([d[6], d[7]]));
            let offset = u32_at(d, 8);
            if size == 0 || offset % 8 != 0 {
                return Err(Errno(libc::EIO));
            }
            in_order &= u64::from(offset) == first * 8;
            let name = &mut names[i * ns..(i + 1) * ns];
            name.copy_from_slice(&d[DESC_SIZE..]);
            name[ns - 1] = 0; // a name that fills its bytes is cut, never unterminated
            descs.push(Desc {
                flags: u32_at(d, 0),
                exponent: i16::from_ne_bytes([d[4], d[5]]),
                size,
                offset,
                first: u32::try_from(first).map_err(|_| Errno(libc::EIO))?,
            });
            first += u64::from(size);
            span = span.max(u64::from(offset) + 8 * u64::from(size));
        }
        let too_big = |v: u64| usize::try_from(v).map_err(|_| Errno(libc::EIO));
        Ok(Table {
            descs,
            names,
            name_size: ns,
            data_offset: h.data_offset,
            total: too_big(first)?,
            span: too_big(span)?,
            in_order,
        })
    }

    /// Number of statistics.
    pub fn len(&self) -> usize {
        self.descs.len()
    }

    /// Statistic `i`; ERANGE past the last.
    pub fn desc(&self, i: usize) -> Result<&Desc> {
        self.descs.get(i).ok_or(Errno(libc::ERANGE))
    }

    /// The name of statistic `i` with its NUL; ERANGE past the last.
    pub fn name(&self, i: usize) -> Result<&std::ffi::CStr> {
        self.desc(i)?;
        let bytes = &self.names[i * self.name_size..(i + 1) * self.name_size];
        std::ffi::CStr::from_bytes_until_nul(bytes).map_err(|_| Errno(libc::EIO))
    }

    /// The index of the statistic called `name`; ENOENT if there is none.
    pub fn lookup(&self, name: &[u8]) -> Result<usize> {
        (0..self.len())
            .find(|&i| self.name(i).is_ok_and(|n| n.to_bytes() == name))
            .ok_or(Errno(libc::ENOENT))
    }

    /// Every statistic's values in index order, out of the data block `data` (at least
    /// `span` bytes, as u64s), into `out` (at least `total` values).
    pub fn gather(&self, data: &[u64], out: &mut [u64]) {
        for d in &self.descs {
            let (from, to, n) = (d.offset as usize / 8, d.first as usize, d.size as usize);
            out[to..to + n].copy_from_slice(&data[from..from + n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor block as the kernel writes it: (flags, exponent, size, offset, name).
    fn block(name_size: usize, descs: &[(u32, i16, u16, u32, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for &(flags, exp, size, offset, name) in descs {
            b.extend_from_slice(&flags.to_ne_bytes());
            b.extend_from_slice(&exp.to_ne_bytes());
            b.extend_from_slice(&size.to_ne_bytes());
            b.extend_from_slice(&offset.to_ne_bytes());
            b.extend_from_slice(&0u32.to_ne_bytes()); // bucket_size
            let mut n = name.as_bytes().to_vec();
            n.resize(name_size, 0);
            b.extend_from_slice(&n);
        }
        b
    }

    fn header(name_size: u32, num_desc: u32) -> Header {
        let mut b = [0u8; HEADER_SIZE];
        b[4..8].copy_from_slice(&name_size.to_ne_bytes());
        b[8..12].copy_from_slice(&num_desc.to_ne_bytes());
        b[12..16].copy_from_slice(&24u32.to_ne_bytes());
        b[16..20].copy_from_slice(&72u32.to_ne_bytes());
        b[20..24].copy_from_slice(&1000u32.to_ne_bytes());
        Header::parse(&b).unwrap()
    }

    #[test]
    fn the_header_fields_are_where_the_kernel_puts_them() {
        let h = header(48, 3);
        assert_eq!(
            h,
            Header {
                name_size: 48,
                num_desc: 3,
                desc_offset: 72,
                data_offset: 1000
            }
        );
        assert_eq!(h.desc_bytes(), 3 * 64);
        let mut b = [0u8; HEADER_SIZE];
        assert_eq!(Header::parse(&b), Err(Errno(libc::EIO)), "name_size 0");
        b[4] = 48;
        b[8..12].copy_from_slice(&(MAX_DESCS + 1).to_ne_bytes());
        assert_eq!(Header::parse(&b), Err(Errno(libc::EIO)), "too many");
    }

    #[test]
    fn names_lookups_and_value_positions() {
        let h = header(16, 3);
        let b = block(
            16,
            &[
                (0, 0, 1, 0, "exits"),
                (0x104, -9, 4, 8, "halt_hist"),
                (1, 0, 1, 40, "fifteen_chars__"),
            ],
        );
        let t = Table::parse(&h, &b).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.name(0).unwrap().to_bytes(), b"exits");
        assert_eq!(t.name(2).unwrap().to_bytes(), b"fifteen_chars__");
        assert_eq!(t.name(3), Err(Errno(libc::ERANGE)));
        assert_eq!(t.lookup(b"halt_hist"), Ok(1));
        assert_eq!(t.lookup(b"halt"), Err(Errno(libc::ENOENT)));
        assert_eq!(t.lookup(b"exits\0"), Err(Errno(libc::ENOENT)));
        let d = t.desc(1).unwrap();
        assert_eq!(
            (d.flags, d.exponent, d.size, d.offset, d.first),
            (0x104, -9, 4, 8, 1)
        );
        assert_eq!(t.desc(2).unwrap().first, 5);
        assert_eq!((t.total, t.span, t.in_order), (6, 48, true));
    }

    #[test]
    fn values_out_of_order_are_gathered_in_index_order() {
        let h = header(8, 2);
        // The second statistic's values come first in the data block, after a gap.
        let b = block(8, &[(0, 0, 1, 24, "a"), (0, 0, 2, 8, "b")]);
        let t = Table::parse(&h, &b).unwrap();
        assert_eq!((t.total, t.span, t.in_order), (3, 32, false));
        let data = [0, 20, 21, 10];
        let mut out = [0u64; 3];
        t.gather(&data, &mut out);
        assert_eq!(out, [10, 20, 21]);
    }

    #[test]
    fn a_name_without_its_nul_is_cut_and_bad_layouts_are_refused() {
        let h = header(4, 1);
        let t = Table::parse(&h, &block(4, &[(0, 0, 1, 0, "abcd")])).unwrap();
        assert_eq!(t.name(0).unwrap().to_bytes(), b"abc");
        let zero = block(4, &[(0, 0, 0, 0, "z")]);
        assert_eq!(Table::parse(&h, &zero).err(), Some(Errno(libc::EIO)));
        let odd = block(4, &[(0, 0, 1, 4, "o")]);
        assert_eq!(Table::parse(&h, &odd).err(), Some(Errno(libc::EIO)));
        assert_eq!(Table::parse(&h, &zero[1..]).err(), Some(Errno(libc::EIO)));
    }
}
