//! The dirty bitmap libkvm keeps for one logging slot while the VM logs in the dirty ring
//! (leaf): one bit per page, set by the harvest, handed out by `kvm_get_dirty_log`
//! and cleared by `kvm_clear_dirty_log`.
//!
//! A harvest costs what the guest dirtied, so handing the bitmap out must not cost what
//! the slot holds more than once: the words that became non-zero are listed (room for
//! every word is reserved up front, so the list never allocates), and taking the bitmap
//! zeroes the caller's buffer once and copies and clears only those words.

use crate::error::{nomem, try_vec, Errno, Result};

/// One slot's bitmap.
#[derive(Debug)]
pub struct Bitmap {
    pages: u64,
    words: Vec<u64>,
    /// Indices of the words that are not zero, each once.
    touched: Vec<u32>,
}

impl Bitmap {
    /// An empty bitmap of `pages` pages (ENOMEM without the memory).
    pub fn new(pages: u64) -> Result<Bitmap> {
        let n = usize::try_from(pages.div_ceil(64)).map_err(nomem)?;
        let mut touched = Vec::new();
        touched.try_reserve_exact(n).map_err(nomem)?;
        Ok(Bitmap {
            pages,
            words: try_vec(n, 0u64)?,
            touched,
        })
    }

    /// The slot's page count.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Marks page `page` dirty (a page past the end, from an entry of an older slot of the
    /// same number, is ignored).
    #[inline]
    pub fn mark(&mut self, page: u64) {
        if page >= self.pages {
            return;
        }
        let w = (page / 64) as usize;
        if self.words[w] == 0 {
            // Never allocates: room for every word was reserved.
            self.touched.push(w as u32);
        }
        self.words[w] |= 1 << (page % 64);
    }

    /// Writes the bitmap to the caller's `out` (all its words) and, unless `keep`,
    /// clears it. EFAULT (the bitmap unchanged) unless `out` is mapped writable for all
    /// the words: it is zeroed through `user_copy::zero` first, then the non-zero words
    /// are written.
    ///
    /// # Safety
    /// `out` is a buffer of the caller's, which nothing in libkvm uses and which stays
    /// mapped during the call (the C contract); it need not be aligned.
    pub unsafe fn take(&mut self, out: *mut u8, keep: bool) -> Result<()> {
        // SAFETY: the caller's promise.
        unsafe { crate::user_copy::zero(out, self.words.len() * 8) }?;
        for &w in &self.touched {
            let w = w as usize;
            let bytes = self.words[w].to_ne_bytes();
            // SAFETY: word `w` lies inside the caller's buffer (w < words.len()), which
            // `zero` found mapped writable and which stays so (the caller's promise).
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.add(w * 8), 8) };
            if !keep {
                self.words[w] = 0;
            }
        }
        if !keep {
            self.touched.clear();
        }
        Ok(())
    }

    /// Marks every page marked in `other` (of any size: pages past the end are ignored).
    pub fn fold(&mut self, other: &Bitmap) {
        for &w in &other.touched {
            let mut bits = other.words[w as usize];
            while bits != 0 {
                self.mark(u64::from(w) * 64 + u64::from(bits.trailing_zeros()));
                bits &= bits - 1;
            }
        }
    }

    /// Marks every page whose bit is set in `bits` (a bitmap of the slot's size, as
    /// `take` writes it), for a report that did not happen after all.
    ///
    /// # Safety
    /// `bits` must be valid for reads of the bitmap's words; it need not be aligned.
    pub unsafe fn absorb(&mut self, bits: *const u8) {
        for w in 0..self.words.len() {
            let mut v = [0u8; 8];
            // SAFETY: the caller's promise: word `w` of the bitmap's.
            unsafe { std::ptr::copy_nonoverlapping(bits.add(w * 8), v.as_mut_ptr(), 8) };
            let v = u64::from_ne_bytes(v);
            if v != 0 {
                if self.words[w] == 0 {
                    // Never allocates: room for every word was reserved.
                    self.touched.push(w as u32);
                }
                self.words[w] |= v;
            }
        }
    }

    /// Whether pages `first .. first + num` are a range KVM_CLEAR_DIRTY_LOG takes:
    /// EINVAL if `first` is not a multiple of 64, if `num` is not one unless the range
    /// ends at the slot's end, or if the range is outside the slot.
    pub fn check_range(&self, first: u64, num: u64) -> Result<()> {
        let pages = self.pages;
        if first % 64 != 0
            || first > pages
            || num > pages - first
            || (num < pages - first && num % 64 != 0)
        {
            return Err(Errno(libc::EINVAL));
        }
        Ok(())
    }

    /// Clears the bits of pages `first .. first + num` that are set in `bits` (bit 0 =
    /// `first`; `num` bits rounded up to whole 64-bit words, as the kernel reads them),
    /// with KVM_CLEAR_DIRTY_LOG's rules (`check_range`).
    pub fn clear(&mut self, first: u64, num: u64, bits: &[u8]) -> Result<()> {
        self.check_range(first, num)?;
        for (w, mask) in bits
            .chunks_exact(8)
            .take(num.div_ceil(64) as usize)
            .enumerate()
        {
            let mut mask = u64::from_ne_bytes(mask.try_into().expect("chunks of 8"));
            let left = num - w as u64 * 64;
            if left < 64 {
                mask &= (1 << left) - 1;
            }
            self.words[(first / 64) as usize + w] &= !mask;
        }
        // Words cleared to zero leave the list, so that marking one again lists it once.
        let words = &self.words;
        self.touched.retain(|&w| words[w as usize] != 0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(b: &mut Bitmap, keep: bool) -> Vec<u64> {
        let mut out = vec![u64::MAX; b.words.len() + 1];
        // SAFETY: `out` has room for every word (and one more, which must stay).
        unsafe { b.take(out.as_mut_ptr().cast(), keep) }.unwrap();
        assert_eq!(out.pop(), Some(u64::MAX), "written past the bitmap");
        out
    }

    #[test]
    fn taking_reports_each_marked_page_once() {
        let mut b = Bitmap::new(130).unwrap();
        for p in [0, 63, 64, 129, 129, 130, 1 << 40] {
            b.mark(p);
        }
        assert_eq!(take(&mut b, true), vec![1 | 1 << 63, 1, 1 << 1]);
        assert_eq!(take(&mut b, false), vec![1 | 1 << 63, 1, 1 << 1]);
        assert_eq!(take(&mut b, false), vec![0, 0, 0]);
        b.mark(65);
        assert_eq!(take(&mut b, false), vec![0, 2, 0]);
        assert_eq!(b.touched.capacity(), 3, "the list never grows");
    }

    #[test]
    fn a_report_given_back_is_reported_next_time() {
        let mut b = Bitmap::new(130).unwrap();
        b.mark(3);
        let back = [1u64 << 5, 0, 1 << 1];
        // SAFETY: `back` holds the bitmap's three words.
        unsafe { b.absorb(back.as_ptr().cast()) };
        assert_eq!(take(&mut b, false), vec![1 << 3 | 1 << 5, 0, 1 << 1]);
        assert_eq!(take(&mut b, false), vec![0, 0, 0]);
    }

    #[test]
    fn clearing_follows_the_kernels_rules() {
        let mut b = Bitmap::new(130).unwrap();
        for p in 0..130 {
            b.mark(p);
        }
        let bits: Vec<u8> = [u64::MAX, 0b101u64, 0]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        let clear = |b: &mut Bitmap, first, num| b.clear(first, num, &bits);
        assert_eq!(clear(&mut b, 1, 64), Err(Errno(libc::EINVAL)));
        assert_eq!(clear(&mut b, 0, 65), Err(Errno(libc::EINVAL)));
        assert_eq!(clear(&mut b, 128, 3), Err(Errno(libc::EINVAL)));
        assert_eq!(clear(&mut b, 192, 0), Err(Errno(libc::EINVAL)));
        assert_eq!(clear(&mut b, 128, 0), Ok(()));
        // To the end of the slot: any count; only its bits count.
        assert_eq!(clear(&mut b, 64, 66), Ok(()));
        assert_eq!(take(&mut b, true), vec![u64::MAX, 0, 0b10]);
        // A word cleared to zero is listed once when marked again.
        b.mark(64);
        b.mark(65);
        assert_eq!(b.touched, vec![0, 2, 1]);
        assert_eq!(take(&mut b, false), vec![u64::MAX, 0b11, 0b10]);
    }
}
