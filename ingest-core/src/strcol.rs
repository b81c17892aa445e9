//! A `Utf8` column builder for the batcher whose repeated values are cheap.
//!
//! Hand-written instead of arrow's `StringBuilder` because the per-request columns
//! (country, region, city, browser, os, …) hold the same value for every row of a
//! request: [`StrCol::push_same`] only counts a repeat, and the copies are written
//! in O(log n) `memcpy`s (doubling) when the run ends, instead of one small `memcpy`
//! per row and column, which was the largest single cost of appending a row.

use arrow_array::StringArray;
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};

/// Values and offsets of one non-null `Utf8` column.
#[derive(Debug)]
pub(crate) struct StrCol {
    values: Vec<u8>,
    /// `offsets[0] == 0`; one more entry per row.
    offsets: Vec<i32>,
    /// Byte length of the last written value (the start of a pending run).
    last_len: usize,
    /// Copies of the last written value still to write.
    pending: usize,
}

impl StrCol {
    /// A column for about `rows` rows of `bytes` bytes in all.
    pub(crate) fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        StrCol {
            values: Vec::with_capacity(bytes),
            offsets,
            last_len: 0,
            pending: 0,
        }
    }

    /// Appends `s`.
    #[inline]
    pub(crate) fn push(&mut self, s: &str) {
        if self.pending > 0 {
            self.settle();
        }
        // Empty values are common (UTM fields, region, city): no copy for them.
        if !s.is_empty() {
            self.values.extend_from_slice(s.as_bytes());
        }
        self.offsets.push(offset(self.values.len()));
        self.last_len = s.len();
    }

    /// Bytes the values buffer holds without growing.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.values.capacity()
    }

    /// Values appended (pending repeats included).
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1 + self.pending
    }

    /// Appends `s`, which the caller knows equals the last value appended (when the
    /// column is not empty): then only a repeat is counted.
    #[inline]
    pub(crate) fn push_same(&mut self, s: &str) {
        if self.offsets.len() > 1 {
            debug_assert_eq!(self.last_value(), s.as_bytes());
            self.pending += 1;
        } else {
            self.push(s);
        }
    }

    fn last_value(&self) -> &[u8] {
        let end = self.values.len();
        &self.values[end - self.last_len..end]
    }

    /// Writes the pending repeats of the last value.
    fn settle(&mut self) {
        let n = std::mem::take(&mut self.pending);
        let len = self.last_len;
        let start = self.values.len() - len;
        if len > 0 {
            self.values.reserve(n * len);
            // Doubling: copy what is written so far until the run is complete.
            let total = (n + 1) * len;
            while self.values.len() - start < total {
                let have = self.values.len() - start;
                let take = have.min(total - have);
                self.values.extend_from_within(start..start + take);
            }
        }
        // The run's offsets step by `len` from the end of its first value; checked once
        // (a saturated end makes `finish` refuse the column), then plain adds that
        // the compiler vectorizes.
        let first = offset(start + len);
        let end = start.saturating_add((n + 1).saturating_mul(len));
        // An end past i32::MAX means the values are too, which `finish` refuses; up to
        // it (i32::MAX itself included) every offset of the run is exact.
        let (Ok(step), Ok(runs), Ok(_)) =
            (i32::try_from(len), i32::try_from(n), i32::try_from(end))
        else {
            self.offsets.extend(std::iter::repeat_n(i32::MAX, n));
            return;
        };
        self.offsets.extend((1..=runs).map(|k| first + k * step));
    }

    /// Moves every value to the end of `dst`, in order; `self` is left empty, keeping
    /// its capacity (a request's column appended to a round's: one copy of the bytes,
    /// no allocation once both have grown).
    pub(crate) fn drain_into(&mut self, dst: &mut StrCol) {
        if self.pending > 0 {
            self.settle();
        }
        if self.offsets.len() == 1 {
            return;
        }
        if dst.pending > 0 {
            dst.settle();
        }
        let base = dst.values.len();
        dst.values.extend_from_slice(&self.values);
        match i32::try_from(base) {
            // Every offset of `self` is at most its length, so when the new end fits
            // in an i32 each rebased offset does too.
            Ok(b) if i32::try_from(dst.values.len()).is_ok() => {
                dst.offsets.extend(self.offsets[1..].iter().map(|&o| o + b));
            }
            // Past i32::MAX: saturated, which `finish` refuses, as for `push`.
            _ => dst.offsets.extend(
                self.offsets[1..]
                    .iter()
                    .map(|&o| offset(base.saturating_add(o as usize))),
            ),
        }
        dst.last_len = self.last_len;
        self.values.clear();
        self.offsets.truncate(1);
        self.last_len = 0;
    }

    /// The values appended so far, in order (pending repeats included).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        fn as_str(b: &[u8]) -> &str {
            std::str::from_utf8(b).expect("StrCol holds whole UTF-8 values")
        }
        let written = self
            .offsets
            .windows(2)
            .map(move |w| as_str(&self.values[w[0] as usize..w[1] as usize]));
        written.chain(std::iter::repeat_n(as_str(self.last_value()), self.pending))
    }

    /// The column of everything appended; the builder is left empty, with capacity for
    /// `next_rows` rows of a little over this column's average length (its own, not the
    /// batch's: columns differ tenfold).
    pub(crate) fn finish(&mut self, next_rows: usize) -> StringArray {
        if self.pending > 0 {
            self.settle();
        }
        let rows = self.offsets.len() - 1;
        let bytes = self.values.len();
        // An eighth more than the average: a batch of the same rows whose values run a
        // little longer (half of them) then grows nothing, where a grow copied the
        // whole column so far (1.3% of the full path's instructions).
        let next_bytes = bytes.saturating_mul(next_rows) / rows.max(1);
        let next_bytes = next_bytes.saturating_add(next_bytes / 8);
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(next_bytes));
        let offsets = std::mem::replace(&mut self.offsets, Vec::with_capacity(next_rows + 1));
        self.offsets.push(0);
        self.last_len = 0;
        assert!(
            i32::try_from(bytes).is_ok(),
            "a batch column outgrew Arrow's i32 offsets ({bytes} bytes): BatchConfig::max_bytes bounds it far below"
        );
        let offsets = ScalarBuffer::from(offsets);
        let values = Buffer::from_vec(values);
        // SAFETY: every value was appended whole from a `&str` (`push`) or copied whole
        // from one (`settle`), so `values` is UTF-8 and every offset is the end of one
        // value, a char boundary. Offsets start at 0, only grow, and (checked above)
        // none saturated, so they are non-decreasing and in bounds. `StringArray::new`
        // would check all of this again — a UTF-8 pass over every column and a
        // boundary test per offset, 3% of the full pipeline; debug builds (the tests)
        // still do, for every column they build.
        #[allow(unsafe_code)]
        let array = unsafe {
            StringArray::new_unchecked(OffsetBuffer::new_unchecked(offsets), values, None)
        };
        #[cfg(debug_assertions)]
        arrow_array::Array::to_data(&array)
            .validate_full()
            .expect("StrCol builds valid Utf8 columns");
        array
    }
}

/// A byte position as an Arrow `i32` offset. A batch is limited far below 2 GiB by
/// `BatchConfig::max_bytes` in practice; past it the offset saturates and
/// [`StrCol::finish`] refuses the column (a panic that names the bug, not bad data).
fn offset(at: usize) -> i32 {
    i32::try_from(at).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn drained_columns_append_in_order_and_leave_the_source_empty() {
        let mut dst = StrCol::with_capacity(0, 0);
        dst.push("a");
        dst.push_same("a");
        let mut src = StrCol::with_capacity(0, 0);
        src.push("");
        src.push("bc");
        src.push_same("bc");
        assert_eq!(src.iter().collect::<Vec<_>>(), ["", "bc", "bc"]);
        src.drain_into(&mut dst);
        assert_eq!(src.len(), 0);
        src.drain_into(&mut dst); // nothing to move
        dst.push_same("bc"); // a run may continue across the drain
        src.push("d");
        src.drain_into(&mut dst);
        assert_eq!(
            dst.iter().collect::<Vec<_>>(),
            ["a", "a", "", "bc", "bc", "bc", "d"]
        );
        assert_eq!(
            dst.finish(1),
            StringArray::from(vec!["a", "a", "", "bc", "bc", "bc", "d"])
        );
        assert_eq!(src.finish(1).len(), 0);
    }

    #[test]
    fn runs_are_written_like_single_values() {
        let mut c = StrCol::with_capacity(2, 4);
        c.push_same("first"); // empty column: a plain push
        for n in [0usize, 1, 2, 3, 7, 100] {
            c.push("ab");
            for _ in 0..n {
                c.push_same("ab");
            }
            c.push("");
            for _ in 0..n {
                c.push_same("");
            }
        }
        c.push("x");
        c.push_same("x");
        let a = c.finish(4);
        let mut want = vec!["first"];
        for n in [0usize, 1, 2, 3, 7, 100] {
            want.extend(std::iter::repeat_n("ab", n + 1));
            want.extend(std::iter::repeat_n("", n + 1));
        }
        want.extend(["x", "x"]);
        assert_eq!(a, StringArray::from(want));
        assert_eq!(a.null_count(), 0);
        // Left empty and reusable; a run cannot continue across a finish.
        c.push_same("y");
        c.push_same("y");
        assert_eq!(c.finish(4), StringArray::from(vec!["y", "y"]));
        assert_eq!(c.finish(4).len(), 0);
    }
}
