//! The batcher's eight nullable number columns, kept sparse (see [`Numbers`]).

use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, UInt32Array, UInt8Array};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, ScalarBuffer};

use crate::event::Timings;

/// The eight nullable number columns (ttfb, fcp, lcp, inp, load, cls, scroll_depth,
/// engagement), kept sparse: only a row with at least one of them (web vitals come
/// with a third of page views, scroll and engagement with engagement events) is
/// pushed, once, as a [`NumberRow`]; a finished batch scatters those into zeroed
/// columns; a column without gaps gets no validity bitmap, one without values an
/// all-null one, and only a column with both has its bitmap built from the rows. Eight pushes per row into eight vectors (one write stream each) were 4.8% of
/// the full path; before that, rows of all eight split per column at `finish` were
/// eight strided passes, the most cache misses of its reads.
pub(super) struct Numbers {
    /// Rows appended since the last finish, with values or not.
    rows: usize,
    /// The rows with a value, in row order; kept (cleared) from batch to batch.
    sparse: Vec<NumberRow>,
}

/// One row's eight values (0 where absent) and which are present.
#[derive(Clone, Copy)]
struct NumberRow {
    row: usize,
    /// Bit `k`: `values[k]` is present (k < 7; cls as its `f32` bits at 5), bit
    /// [`SCROLL`]: `scroll_depth` is.
    present: u8,
    scroll_depth: u8,
    /// ttfb, fcp, lcp, inp, load, cls bits, engagement: schema order without scroll.
    values: [u32; 7],
}

/// The presence bit of scroll_depth.
const SCROLL: usize = 7;

impl Numbers {
    pub(super) fn new() -> Self {
        Numbers {
            rows: 0,
            sparse: Vec::new(),
        }
    }

    #[inline]
    pub(super) fn push(
        &mut self,
        t: &Timings,
        scroll_depth: Option<u8>,
        engagement_ms: Option<u32>,
    ) {
        let values = [
            t.ttfb_ms,
            t.fcp_ms,
            t.lcp_ms,
            t.inp_ms,
            t.load_ms,
            t.cls.map(f32::to_bits),
            engagement_ms,
        ];
        let mut present = u8::from(scroll_depth.is_some()) << SCROLL;
        for (k, v) in values.iter().enumerate() {
            present |= u8::from(v.is_some()) << k;
        }
        if present != 0 {
            self.sparse.push(NumberRow {
                row: self.rows,
                present,
                scroll_depth: scroll_depth.unwrap_or(0),
                values: values.map(|v| v.unwrap_or(0)),
            });
        }
        self.rows += 1;
    }

    /// Moves `other`'s rows to the end of these; `other` is left empty.
    pub(super) fn append(&mut self, other: &mut Numbers) {
        let base = self.rows;
        self.sparse
            .extend(other.sparse.drain(..).map(|r| NumberRow {
                row: base + r.row,
                ..r
            }));
        self.rows += std::mem::take(&mut other.rows);
    }

    /// The validity of the column of presence bit `bit` (`None`: no gaps).
    fn nulls(&self, bit: usize, all: u8, any: u8) -> Option<NullBuffer> {
        let mask = 1u8 << bit;
        if all & mask != 0 {
            return None;
        }
        if any & mask == 0 {
            return Some(NullBuffer::new_null(self.rows));
        }
        let mut valid = BooleanBufferBuilder::new(self.rows);
        valid.append_n(self.rows, false);
        for r in self.sparse.iter().filter(|r| r.present & mask != 0) {
            valid.set_bit(r.row, true);
        }
        Some(NullBuffer::new(valid.finish()))
    }

    /// Pushes the eight columns in schema order; `self` is left empty.
    pub(super) fn finish(&mut self, cols: &mut Vec<ArrayRef>) {
        let rows = self.rows;
        let (mut all, mut any) = (
            if self.sparse.len() == rows {
                u8::MAX
            } else {
                0
            },
            0,
        );
        let mut values: [Vec<u32>; 7] = std::array::from_fn(|_| vec![0; rows]);
        let mut scroll = vec![0u8; rows];
        for r in &self.sparse {
            all &= r.present;
            any |= r.present;
            for (col, v) in values.iter_mut().zip(r.values) {
                if let Some(slot) = col.get_mut(r.row) {
                    *slot = v;
                }
            }
            if let Some(slot) = scroll.get_mut(r.row) {
                *slot = r.scroll_depth;
            }
        }
        let [ttfb, fcp, lcp, inp, load, cls, engagement] = values;
        let nulls = |bit| self.nulls(bit, all, any);
        let u32s =
            |v: Vec<u32>, bit| -> ArrayRef { Arc::new(UInt32Array::new(v.into(), nulls(bit))) };
        cols.push(u32s(ttfb, 0));
        cols.push(u32s(fcp, 1));
        cols.push(u32s(lcp, 2));
        cols.push(u32s(inp, 3));
        cols.push(u32s(load, 4));
        // The bits as `f32`s: the same size and alignment, so the buffer is kept as is.
        let cls = ScalarBuffer::<f32>::new(Buffer::from_vec(cls), 0, rows);
        cols.push(Arc::new(Float32Array::new(cls, nulls(5))));
        cols.push(Arc::new(UInt8Array::new(scroll.into(), nulls(SCROLL))));
        cols.push(u32s(engagement, 6));
        self.rows = 0;
        self.sparse.clear();
    }
}
