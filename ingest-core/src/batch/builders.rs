//! The columns of one batch: a [`Row`] of schema v1 in, appended to one builder per
//! column ([`Builders`]), a [`RecordBatch`] out. When a batch is handed out is the
//! [`super::Batcher`]'s business.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, FixedSizeBinaryArray, ListArray, RecordBatch, TimestampMillisecondArray, UInt16Array,
    UInt64Array,
};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field};

use super::numbers::Numbers;
use crate::event::{Event, Timings};
use crate::schema;
use crate::strcol::StrCol;

/// Estimated Arrow bytes of one row without its strings: the fixed-width values, one
/// 4-byte offset per string and list column, and validity bits.
pub(super) const ROW_OVERHEAD: usize = 16 + 8 + 19 * 4 + 2 + 8 + 6 * 4 + 1 + 4 + 2 * 4 + 2;

pub(super) fn row_bytes(strings: &[&str; 19], props: &[(Cow<'_, str>, Cow<'_, str>)]) -> usize {
    let strings: usize = strings.iter().map(|s| s.len()).sum();
    let props: usize = props.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    ROW_OVERHEAD + strings + props
}

/// One row of schema v1 by reference: what [`Builders`] appends. The pipeline's
/// direct path ([`crate::Pipeline::process_into`]) fills it from a `RawEvent` and
/// per-request values without materializing an owned [`Event`]; [`super::Batcher::push`]
/// fills it from an [`Event`]. Both go through the same append, so rows are equal.
pub(crate) struct Row<'r> {
    pub event_id: [u8; 16],
    pub received_at_ms: i64,
    /// The 19 string columns in schema order (`site_id` ..= `device`).
    pub strings: [&'r str; 19],
    pub screen_width: u16,
    pub visitor_id: u64,
    pub timings: Timings,
    pub scroll_depth: Option<u8>,
    pub engagement_ms: Option<u32>,
    pub props: &'r [(Cow<'r, str>, Cow<'r, str>)],
    /// The per-request columns ([`REQUEST_COLUMNS`]) hold the same values as in the
    /// row appended before this one (the direct path sets it for the second and later
    /// rows of a request), so they are appended as cheap repeats.
    pub repeat: bool,
}

/// Indexes into [`Row::strings`] of the columns that come from the request, not the
/// event: `country`, `region`, `city`, `browser`, `browser_version`, `os`, `os_version`.
const REQUEST_COLUMNS: std::ops::Range<usize> = 11..18;

impl<'r> Row<'r> {
    pub(super) fn of(ev: &'r Event<'_>) -> Self {
        Row {
            event_id: ev.event_id,
            received_at_ms: ev.received_at_ms,
            strings: string_columns(ev),
            screen_width: ev.screen_width,
            visitor_id: ev.visitor_id,
            timings: ev.timings,
            scroll_depth: ev.scroll_depth,
            engagement_ms: ev.engagement_ms,
            props: &ev.props,
            repeat: false,
        }
    }
}

/// The 19 string columns of schema v1, in schema order (`site_id` ..= `device`).
pub(super) fn string_columns<'e>(ev: &'e Event<'_>) -> [&'e str; 19] {
    [
        &ev.site_id,
        &ev.name,
        &ev.hostname,
        &ev.pathname,
        &ev.referrer_host,
        &ev.referrer_source,
        &ev.utm_source,
        &ev.utm_medium,
        &ev.utm_campaign,
        &ev.utm_content,
        &ev.utm_term,
        &ev.country,
        &ev.region,
        &ev.city,
        &ev.browser,
        &ev.browser_version,
        &ev.os,
        &ev.os_version,
        &ev.device,
    ]
}

/// One builder per column of schema v1.
pub(super) struct Builders {
    // The never-null fixed-width columns are plain `Vec`s: a push is all they need,
    // where arrow's builders also track validity per row.
    pub(super) event_id: Vec<u8>,
    pub(super) received_at: Vec<i64>,
    pub(super) strings: [StrCol; 19],
    pub(super) screen_width: Vec<u16>,
    pub(super) visitor_id: Vec<u64>,
    /// The eight nullable number columns (arrow's eight builders took a value and a
    /// validity bit each, per row).
    pub(super) numbers: Numbers,
    /// The two list columns share their offsets (one key per value).
    pub(super) prop_keys: StrCol,
    pub(super) prop_values: StrCol,
    pub(super) prop_offsets: Vec<i32>,
}

impl Builders {
    /// Builders sized for `rows` rows of about `bytes` string bytes.
    pub(super) fn with_capacity(rows: usize, bytes: usize) -> Self {
        let per_string = bytes / 19;
        let mut prop_offsets = Vec::with_capacity(rows + 1);
        prop_offsets.push(0);
        Builders {
            event_id: Vec::with_capacity(rows * 16),
            received_at: Vec::with_capacity(rows),
            strings: std::array::from_fn(|_| StrCol::with_capacity(rows, per_string)),
            screen_width: Vec::with_capacity(rows),
            visitor_id: Vec::with_capacity(rows),
            numbers: Numbers::new(),
            prop_keys: StrCol::with_capacity(0, 0),
            prop_values: StrCol::with_capacity(0, 0),
            prop_offsets,
        }
    }

    /// Appends `ev`; returns its size as [`super::event_bytes`] counts it (summed here, where
    /// each length is at hand: a pass of its own over the 19 strings cost 1%).
    pub(super) fn append(&mut self, ev: &Row<'_>) -> usize {
        self.event_id.extend_from_slice(&ev.event_id);
        self.received_at.push(ev.received_at_ms);
        // Three fixed ranges, so no per-column test and no bounds checks (zipping the
        // 19 strings by value copied the whole array first).
        let (cols, s) = (&mut self.strings, &ev.strings);
        let mut bytes = ROW_OVERHEAD;
        for i in 0..REQUEST_COLUMNS.start {
            cols[i].push(s[i]);
            bytes += s[i].len();
        }
        if ev.repeat {
            for i in REQUEST_COLUMNS {
                cols[i].push_same(s[i]);
                bytes += s[i].len();
            }
        } else {
            for i in REQUEST_COLUMNS {
                cols[i].push(s[i]);
                bytes += s[i].len();
            }
        }
        for i in REQUEST_COLUMNS.end..cols.len() {
            cols[i].push(s[i]);
            bytes += s[i].len();
        }
        self.screen_width.push(ev.screen_width);
        self.visitor_id.push(ev.visitor_id);
        self.numbers
            .push(&ev.timings, ev.scroll_depth, ev.engagement_ms);
        for (k, v) in ev.props {
            self.prop_keys.push(k);
            self.prop_values.push(v);
            bytes += k.len() + v.len() + 8;
        }
        self.prop_offsets
            .push(i32::try_from(self.prop_keys.len()).unwrap_or(i32::MAX));
        bytes
    }

    /// Moves every row to the end of `dst`'s, in order; `self` is left empty with its
    /// capacity.
    pub(super) fn drain_into(&mut self, dst: &mut Builders) {
        dst.event_id.append(&mut self.event_id);
        dst.received_at.append(&mut self.received_at);
        for (s, d) in self.strings.iter_mut().zip(&mut dst.strings) {
            s.drain_into(d);
        }
        dst.screen_width.append(&mut self.screen_width);
        dst.visitor_id.append(&mut self.visitor_id);
        dst.numbers.append(&mut self.numbers);
        // The pairs' offsets continue from `dst`'s last one.
        let base = dst.prop_offsets.last().copied().unwrap_or(0);
        dst.prop_offsets.extend(
            self.prop_offsets[1..]
                .iter()
                .map(|&o| base.saturating_add(o)),
        );
        self.prop_offsets.truncate(1);
        self.prop_keys.drain_into(&mut dst.prop_keys);
        self.prop_values.drain_into(&mut dst.prop_values);
    }

    /// The batch of everything appended. The builders are left empty, each with
    /// capacity for `next` rows like this batch's (string columns: of a little over
    /// their own average length; the props' columns: for as many pairs per row as
    /// this batch had), so a next batch of the same shape grows none of them: sizing
    /// all string columns alike, and for fewer rows than a batch holds, made every
    /// batch re-grow them, copying. (The number columns' sparse rows keep their
    /// vector's capacity.)
    pub(super) fn finish(&mut self, next: usize) -> RecordBatch {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema::COLUMNS.len());
        let next = next.max(1);
        cols.push(Arc::new(FixedSizeBinaryArray::new(
            16,
            Buffer::from_vec(std::mem::replace(
                &mut self.event_id,
                Vec::with_capacity(next * 16),
            )),
            None,
        )));
        cols.push(Arc::new(
            TimestampMillisecondArray::new(take(&mut self.received_at, next), None)
                .with_timezone("UTC"),
        ));
        for b in &mut self.strings {
            cols.push(Arc::new(b.finish(next)));
        }
        cols.push(Arc::new(UInt16Array::new(
            take(&mut self.screen_width, next),
            None,
        )));
        cols.push(Arc::new(UInt64Array::new(
            take(&mut self.visitor_id, next),
            None,
        )));
        self.numbers.finish(&mut cols);
        let offsets = std::mem::replace(&mut self.prop_offsets, Vec::with_capacity(next + 1));
        self.prop_offsets.push(0);
        // Non-decreasing by construction (one entry per row, after its pairs).
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        let item = Arc::new(Field::new("item", DataType::Utf8, false));
        // The pairs' columns are sized by pairs, not rows: sized for `next` *rows* of
        // this batch's average pair, one event with one long prop in a round of 10⁵
        // rows reserved hundreds of MB for the next round's props.
        let rows = offsets.len() - 1;
        let next_pairs = (self.prop_keys.len().saturating_mul(next) / rows.max(1)).max(1);
        for values in [&mut self.prop_keys, &mut self.prop_values] {
            cols.push(Arc::new(ListArray::new(
                item.clone(),
                offsets.clone(),
                Arc::new(values.finish(next_pairs)),
                None,
            )));
        }
        // The builders are typed exactly as schema v1 (a unit test holds this).
        RecordBatch::try_new(schema::schema(), cols).expect("builders match schema v1")
    }
}

/// The values of a `Vec` column as an Arrow buffer; the column is left with capacity
/// for `rows` rows.
fn take<T: arrow_buffer::ArrowNativeType>(v: &mut Vec<T>, rows: usize) -> ScalarBuffer<T> {
    ScalarBuffer::from(std::mem::replace(v, Vec::with_capacity(rows)))
}
