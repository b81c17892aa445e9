//! Equality of short byte strings without a library call.
//!
//! `==` on slices of unknown length calls `memcmp`; for the hosts and site ids the
//! pipeline compares per event (8–16 bytes, most of them) that call, its set-up and
//! its return were 1.6% of the full path. Two overlapping 8-byte words cover every
//! byte of such a string, so two loads and a compare decide.

/// `a == b`.
#[inline]
pub(crate) fn short_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if (8..=16).contains(&a.len()) {
        let word = |s: &[u8], last: bool| {
            let chunk = if last {
                s.last_chunk::<8>()
            } else {
                s.first_chunk::<8>()
            };
            chunk.map(|c| u64::from_le_bytes(*c))
        };
        return word(a, false) == word(b, false) && word(a, true) == word(b, true);
    }
    a == b
}

#[cfg(test)]
mod tests {
    use super::short_eq;

    #[test]
    fn equals_slice_equality() {
        let words: Vec<Vec<u8>> = (0..40)
            .flat_map(|n: usize| {
                let base: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
                // The same length, one byte different at the start, the middle, the end.
                let mut out = vec![base.clone()];
                for at in [0, n / 2, n.saturating_sub(1)] {
                    if n > 0 {
                        let mut d = base.clone();
                        d[at] ^= 1;
                        out.push(d);
                    }
                }
                out
            })
            .collect();
        for a in &words {
            for b in &words {
                assert_eq!(short_eq(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }
}
