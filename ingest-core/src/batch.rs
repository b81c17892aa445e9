//! Batching: validated events are appended straight into Arrow builders, and a
//! [`RecordBatch`] of schema v1 comes out at a row count, a byte size or an age,
//! whichever comes first. The caller passes the time in and owns the loop.

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::event::Event;

mod builders;
mod numbers;
pub(crate) use builders::Row;
use builders::{row_bytes, string_columns, Builders};

/// When a [`Batcher`] hands out a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// A batch is handed out by [`Batcher::push`] when it holds this many rows.
    /// Default 10 000.
    pub max_rows: usize,
    /// A batch is handed out by [`Batcher::push`] when its estimated Arrow size (see
    /// [`event_bytes`]) reaches this many bytes. Default 8 MiB.
    pub max_bytes: usize,
    /// A batch is handed out (by [`Batcher::poll`], or by the next push) when its oldest
    /// row was pushed this many ms ago or more. Default 1000.
    pub max_age_ms: i64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: 10_000,
            max_bytes: 8 << 20,
            max_age_ms: 1000,
        }
    }
}

/// The estimated size of one event in Arrow buffers, as counted against
/// [`BatchConfig::max_bytes`]: string bytes, their offsets, and the fixed-width values.
pub fn event_bytes(ev: &Event<'_>) -> usize {
    row_bytes(&string_columns(ev), &ev.props)
}

/// Accumulates events into Arrow builders and hands out [`RecordBatch`]es of schema v1
/// (version in the schema metadata).
///
/// ```
/// use ingest_core::{BatchConfig, Batcher, Event};
/// let mut b = Batcher::new(BatchConfig { max_rows: 2, ..BatchConfig::default() });
/// assert!(b.push(&Event::default(), 0).is_none());
/// let batch = b.push(&Event::default(), 1).expect("max_rows reached");
/// assert_eq!(batch.num_rows(), 2);
/// assert!(b.flush().is_none());
/// ```
pub struct Batcher {
    cfg: BatchConfig,
    builders: Builders,
    rows: usize,
    bytes: usize,
    /// When the oldest buffered row was pushed (caller's clock, ms).
    oldest_ms: Option<i64>,
    /// Rows of the largest batch handed out so far (sizes the builders).
    peak_rows: usize,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("cfg", &self.cfg)
            .field("rows", &self.rows)
            .field("bytes", &self.bytes)
            .field("oldest_ms", &self.oldest_ms)
            .finish_non_exhaustive()
    }
}

/// Rows preallocated for a batch before any was seen, at most; the builders grow past
/// it when needed, and later batches are preallocated like the largest one before.
const CAPACITY_ROWS: usize = 4096;

impl Batcher {
    /// An empty batcher.
    pub fn new(cfg: BatchConfig) -> Self {
        let rows = cfg.max_rows.clamp(1, CAPACITY_ROWS);
        let builders = Builders::with_capacity(rows, rows * 64);
        Batcher {
            cfg,
            builders,
            rows: 0,
            bytes: 0,
            oldest_ms: None,
            peak_rows: 0,
        }
    }

    /// Appends one event at `now_ms`; returns the batch (including this event) when it
    /// reached `max_rows`, `max_bytes`, or `max_age_ms`, whichever first.
    pub fn push(&mut self, ev: &Event<'_>, now_ms: i64) -> Option<RecordBatch> {
        self.push_row(&Row::of(ev), now_ms)
    }

    /// [`Batcher::push`] of a row by reference.
    pub(crate) fn push_row(&mut self, row: &Row<'_>, now_ms: i64) -> Option<RecordBatch> {
        self.bytes += self.builders.append(row);
        self.rows += 1;
        let oldest = *self.oldest_ms.get_or_insert(now_ms);
        let full = self.rows >= self.cfg.max_rows || self.bytes >= self.cfg.max_bytes;
        if full || now_ms.saturating_sub(oldest) >= self.cfg.max_age_ms {
            self.flush()
        } else {
            None
        }
    }

    /// Returns the buffered batch if its oldest row is `max_age_ms` old or more at
    /// `now_ms`. Call it from a timer.
    pub fn poll(&mut self, now_ms: i64) -> Option<RecordBatch> {
        match self.oldest_ms {
            Some(t) if now_ms.saturating_sub(t) >= self.cfg.max_age_ms => self.flush(),
            _ => None,
        }
    }

    /// Returns whatever is buffered (`None` if nothing is), e.g. at shutdown.
    pub fn flush(&mut self) -> Option<RecordBatch> {
        if self.rows == 0 {
            return None;
        }
        // The next batch is sized like the largest one so far: a batcher flushed per
        // request (the sink's) stays at a request's rows, one that fills its batches
        // stays at `max_rows`, and a partial batch (a flush by age) does not shrink it.
        self.peak_rows = self.peak_rows.max(self.rows);
        let batch = self.builders.finish(self.peak_rows);
        self.rows = 0;
        self.bytes = 0;
        self.oldest_ms = None;
        Some(batch)
    }

    /// Moves every buffered row to the end of `dst`, in order, and leaves this batcher
    /// empty, its builders keeping their capacity. `dst`'s limits are not applied here:
    /// its owner flushes it when it chooses. The sink builds each request's rows in a
    /// batcher of its own, checks them (rate limit, quotas), then moves them into the
    /// round its spool writer takes next: one copy, where a batch per request cost an
    /// allocation per column and request, a concatenation and as many frees.
    pub fn drain_into(&mut self, dst: &mut Batcher) {
        if self.rows == 0 {
            return;
        }
        self.builders.drain_into(&mut dst.builders);
        dst.rows += self.rows;
        dst.bytes += self.bytes;
        dst.oldest_ms = match (dst.oldest_ms, self.oldest_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.peak_rows = self.peak_rows.max(self.rows);
        self.rows = 0;
        self.bytes = 0;
        self.oldest_ms = None;
    }

    /// The `site_id` of every buffered row, in order.
    pub fn site_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.builders.strings[0].iter()
    }

    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Estimated bytes buffered (see [`event_bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the oldest buffered row was pushed, if any (to arm a timer).
    pub fn oldest_ms(&self) -> Option<i64> {
        self.oldest_ms
    }
}

/// All `events` as one batch of schema v1 (zero rows for an empty slice).
pub fn events_to_batch(events: &[Event<'_>]) -> RecordBatch {
    let bytes = events.iter().map(event_bytes).sum();
    let mut b = Builders::with_capacity(events.len(), bytes);
    for ev in events {
        b.append(&Row::of(ev));
    }
    b.finish(0)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use super::*;
    use crate::event::Timings;
    use crate::schema;

    fn ev(i: u8) -> Event<'static> {
        Event {
            event_id: [i; 16],
            received_at_ms: 1_700_000_000_000 + i64::from(i),
            site_id: Cow::Borrowed("example.com"),
            name: Cow::Borrowed("pageview"),
            props: vec![(Cow::Borrowed("k"), Cow::Borrowed("v"))],
            ..Event::default()
        }
    }

    #[test]
    fn builders_produce_schema_v1() {
        let b = events_to_batch(&[ev(1), ev(2)]);
        assert_eq!(b.schema(), schema::schema());
        assert_eq!(b.num_rows(), 2);
        let empty = events_to_batch(&[]);
        assert_eq!(empty.num_rows(), 0);
        assert_eq!(empty.schema(), schema::schema());
    }

    #[test]
    fn builders_are_sized_like_the_largest_batch_so_far() {
        let mut b = Batcher::new(BatchConfig {
            max_rows: usize::MAX,
            max_bytes: usize::MAX,
            max_age_ms: i64::MAX,
        });
        let batch_of = |b: &mut Batcher, n: u8| {
            for i in 0..n {
                assert!(b.push(&ev(i), 0).is_none());
            }
            assert_eq!(b.flush().expect("rows pushed").num_rows(), usize::from(n));
            let c = &b.builders;
            // Rows of the next batch, and bytes of its `site_id` column ("example.com").
            (c.received_at.capacity(), c.strings[0].capacity())
        };
        // Flushed per request (the sink's use): sized for the request's rows, not for
        // the thousands preallocated before the first batch.
        for _ in 0..3 {
            let (rows, site_bytes) = batch_of(&mut b, 3);
            assert!((3..16).contains(&rows), "{rows} rows");
            assert!((33..128).contains(&site_bytes), "{site_bytes} bytes");
        }
        // The props' columns are sized per pair: one long prop in a 100-row batch
        // does not reserve a long prop for each of the next batch's rows.
        for i in 0..100u8 {
            let mut e = ev(i);
            e.props = if i == 7 {
                vec![(Cow::Borrowed("k"), Cow::Owned("v".repeat(2000)))]
            } else {
                Vec::new()
            };
            assert!(b.push(&e, 0).is_none());
        }
        assert_eq!(b.flush().unwrap().num_rows(), 100);
        let cap = b.builders.prop_values.capacity();
        assert!(cap < 20_000, "{cap} bytes for the next batch's prop values");
        // A larger batch raises it; a smaller one after it does not lower it.
        assert!(batch_of(&mut b, 100).0 >= 100);
        let (rows, site_bytes) = batch_of(&mut b, 1);
        assert!((100..200).contains(&rows), "{rows} rows");
        assert!((1100..2200).contains(&site_bytes), "{site_bytes} bytes");
    }

    #[test]
    fn drained_rows_are_the_rows_pushed_in_order() {
        let cfg = BatchConfig {
            max_rows: usize::MAX,
            max_bytes: usize::MAX,
            max_age_ms: i64::MAX,
        };
        let (mut round, mut request) = (Batcher::new(cfg.clone()), Batcher::new(cfg));
        let mut all = Vec::new();
        for (n, at) in [(2u8, 7i64), (0, 9), (3, 4)] {
            for i in 0..n {
                let mut e = ev(all.len() as u8);
                e.site_id = Cow::Owned(format!("s{i}"));
                // Rows without props and with two, so the pairs' offsets are rebased.
                e.props = (0..i % 3)
                    .map(|k| (Cow::Owned(format!("k{k}")), Cow::Borrowed("v")))
                    .collect();
                assert!(request.push(&e, at).is_none());
                all.push(e);
            }
            let sites: Vec<String> = request.site_ids().map(str::to_owned).collect();
            assert_eq!(sites.len(), usize::from(n));
            let bytes = request.bytes();
            let before = round.bytes();
            request.drain_into(&mut round);
            assert!(request.is_empty() && request.flush().is_none());
            assert_eq!(round.bytes(), before + bytes);
        }
        assert_eq!(round.len(), 5);
        assert_eq!(round.oldest_ms(), Some(4));
        assert_eq!(
            round.site_ids().collect::<Vec<_>>(),
            ["s0", "s1", "s0", "s1", "s2"]
        );
        assert_eq!(round.flush().unwrap(), events_to_batch(&all));
        assert!(round.is_empty());
    }

    /// The sparse number columns against arrow's own arrays of the same options: rows
    /// with every value, none, and some, across drained requests, and columns with
    /// no value, some, and all of them.
    #[test]
    fn number_columns_hold_each_rows_values() {
        use arrow_array::{Array, Float32Array, UInt32Array, UInt8Array};
        let some = |i: usize, m: usize| (i % m != 0).then_some(i as u32 * 7);
        // By `i % 4`: 0 none of the eight, 1 all of them, 2 and 3 some.
        let numbered = |i: usize| {
            let (none, all) = (i % 4 == 0, i % 4 == 1);
            let pick = |v: Option<u32>| {
                if none {
                    None
                } else if all {
                    v.or(Some(1))
                } else {
                    v
                }
            };
            Event {
                timings: Timings {
                    ttfb_ms: pick(some(i, 3)),
                    fcp_ms: pick(some(i, 2)),
                    lcp_ms: pick(some(i, 5)),
                    inp_ms: pick(None),
                    load_ms: pick((i % 3 == 0).then_some(9)),
                    cls: pick((i % 3 == 1).then_some(i as u32)).map(|v| v as f32 / 8.0),
                },
                scroll_depth: pick((i % 7 == 3).then_some(i as u32 % 101)).map(|v| v as u8),
                engagement_ms: pick((i % 6 == 2).then_some(i as u32)),
                ..ev(1)
            }
        };
        let events: Vec<Event<'static>> = (0..300).map(numbered).collect();
        let cfg = BatchConfig {
            max_rows: usize::MAX,
            max_bytes: usize::MAX,
            max_age_ms: i64::MAX,
        };
        let (mut round, mut request) = (Batcher::new(cfg.clone()), Batcher::new(cfg));
        for chunk in events.chunks(37) {
            for e in chunk {
                assert!(request.push(e, 0).is_none());
            }
            request.drain_into(&mut round);
        }
        let batch = round.flush().unwrap();
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        let t = |f: fn(&Timings) -> Option<u32>| {
            UInt32Array::from(events.iter().map(|e| f(&e.timings)).collect::<Vec<_>>())
        };
        let want: [(&str, Arc<dyn Array>); 8] = [
            ("ttfb_ms", Arc::new(t(|t| t.ttfb_ms))),
            ("fcp_ms", Arc::new(t(|t| t.fcp_ms))),
            ("lcp_ms", Arc::new(t(|t| t.lcp_ms))),
            ("inp_ms", Arc::new(t(|t| t.inp_ms))),
            ("load_ms", Arc::new(t(|t| t.load_ms))),
            (
                "cls",
                Arc::new(Float32Array::from(
                    events.iter().map(|e| e.timings.cls).collect::<Vec<_>>(),
                )),
            ),
            (
                "scroll_depth",
                Arc::new(UInt8Array::from(
                    events.iter().map(|e| e.scroll_depth).collect::<Vec<_>>(),
                )),
            ),
            (
                "engagement_ms",
                Arc::new(UInt32Array::from(
                    events.iter().map(|e| e.engagement_ms).collect::<Vec<_>>(),
                )),
            ),
        ];
        for (name, want) in want {
            let got = col(name);
            assert_eq!(got.to_data(), want.to_data(), "{name}");
            assert_eq!(got.null_count(), want.null_count(), "{name}");
            assert!(
                got.null_count() > 0 && got.null_count() < events.len(),
                "{name}"
            );
        }
        // The same rows pushed straight into one batch.
        assert_eq!(batch, events_to_batch(&events));
        // A column with a value in every row has no bitmap, as arrow's builders leave
        // it; one with none is all null; one whose only gaps are rows without any of
        // the eight has them.
        let ttfb_only = |every: u32| -> Vec<Event<'static>> {
            (0..50)
                .map(|i| Event {
                    timings: Timings {
                        ttfb_ms: (i % every == 0).then_some(i),
                        ..Timings::default()
                    },
                    ..ev(1)
                })
                .collect()
        };
        let b = events_to_batch(&ttfb_only(1));
        let ttfb = b.column_by_name("ttfb_ms").unwrap();
        assert!(ttfb.nulls().is_none());
        assert_eq!(
            ttfb.to_data(),
            UInt32Array::from_iter_values(0..50).to_data()
        );
        assert_eq!(b.column_by_name("lcp_ms").unwrap().null_count(), 50);
        let b = events_to_batch(&ttfb_only(2));
        let want = UInt32Array::from_iter((0..50).map(|i| (i % 2 == 0).then_some(i)));
        assert_eq!(
            b.column_by_name("ttfb_ms").unwrap().to_data(),
            want.to_data()
        );
    }

    #[test]
    fn flush_resets_counters() {
        let mut b = Batcher::new(BatchConfig::default());
        assert!(b.push(&ev(1), 5).is_none());
        assert_eq!(b.len(), 1);
        assert_eq!(b.bytes(), event_bytes(&ev(1)));
        assert_eq!(b.oldest_ms(), Some(5));
        assert_eq!(b.flush().unwrap().num_rows(), 1);
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
        assert!(b.flush().is_none());
        assert!(b.poll(i64::MAX).is_none());
    }
}
