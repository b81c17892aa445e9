//! JSON → Arrow, four ways, on the same generated NDJSON: the code behind the
//! criterion bench `json_to_arrow` and the `json_to_arrow_events_per_s` figures of
//! `compare`, so both measure exactly the same thing.
//!
//! - [`arrow_json()`]: arrow-json's `ReaderBuilder::build_decoder` into 8,192-row
//!   batches of the 8 [`plain_schema`] columns (unknown fields skipped; no validation).
//!   The fastest peer a Rust user has.
//! - [`serde_json_builders`]: `serde_json` into a borrowed struct per line, then the
//!   same 8 Arrow builders. The "straightforward" baseline.
//! - [`ingest_core_plain`]: like for like with arrow-json — ingest-core's own wire
//!   parser (`Parser::parse_slice`: the fast path for flat event objects, falling back
//!   to simd-json's tape; all its limits, props and timings checks) over the same
//!   8,192-line chunks, read in place as arrow-json reads them, its `RawEvent`s appended into the same 8 builders; no URL
//!   normalization, no user agent, no hashing. ingest-core has no "plain" mode of its
//!   own: this is its parser, which every request goes through, plus the builders a
//!   user of `parse_own` would write; it is the fairest match for a decoder that does
//!   no validation (ours still validates, which only costs us).
//! - [`ingest_core_full`]: the whole per-request work of ingest-core through its
//!   fastest API — bodies of 100 lines (the default `max_events_per_request`), read in
//!   place (`Pipeline::process_slice_into`, which copies only events its parser's fast
//!   path cannot take: none here; parse, limits, URL/UTM/referrer normalization, user
//!   agent via the cache, visitor hash, event id), every accepted event appended
//!   straight into a `Batcher` that hands out 8,192-row schema-v1 batches (all 33
//!   columns); the rows equal those of `Pipeline::process` + `Batcher::push` (tested).
//!   The sink's tracker routes run this same path (`process_slice_into` into a
//!   per-request batcher).
//!
//! Each request in the full path runs under the user agent and IP of the first
//! non-bot record of its 100 lines, so every path turns all N events into rows and the
//! figures compare equal work (the generator's bots would otherwise drop whole
//! requests, which would flatter us).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder, UInt16Builder, UInt32Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ingest_core::{
    BatchConfig, Batcher, DailySalt, Format, Limits, Parser, Pipeline, PipelineConfig, RawEvent,
    RequestContext,
};
use serde::Deserialize;

use crate::gen::{write_event, GenConfig, Generator};

/// Rows per batch for every path (arrow-json's default batch size is 1024; 8192 is what
/// BASELINES.md measured and closer to a sink's batches).
pub const BATCH_ROWS: usize = 8192;
/// Events per request in the full pipeline (ingest-core's default limit).
pub const EVENTS_PER_REQUEST: usize = 100;
/// `received_at` of every row in the full pipeline (fixed: benches are reproducible).
pub const RECEIVED_AT_MS: i64 = 1_795_392_000_000;

/// The same N events in the shapes the four paths need.
#[derive(Debug, Clone)]
pub struct Workload {
    /// All events as NDJSON, `\n` after each line.
    pub ndjson: Vec<u8>,
    /// Byte ranges of [`BATCH_ROWS`]-line chunks of `ndjson`.
    pub chunks: Vec<Range<usize>>,
    /// Byte ranges of [`EVENTS_PER_REQUEST`]-line requests, with the user agent and
    /// IP the request is sent with.
    pub requests: Vec<(Range<usize>, &'static str, String)>,
    /// Number of events.
    pub events: usize,
}

impl Workload {
    /// `n` events from `seed`, in requests of [`EVENTS_PER_REQUEST`].
    pub fn new(seed: u64, n: usize) -> Self {
        Self::with_requests(seed, n, EVENTS_PER_REQUEST)
    }

    /// `n` events from `seed`, in requests of `per_request` events.
    pub fn with_requests(seed: u64, n: usize, per_request: usize) -> Self {
        let per_request = per_request.max(1);
        let mut g = Generator::new(GenConfig {
            seed,
            ..GenConfig::default()
        });
        let mut ndjson = Vec::with_capacity(n * 210);
        let mut chunks = Vec::new();
        let mut requests = Vec::new();
        let mut chunk_start = 0;
        let mut req_start = 0;
        let mut req_headers: Option<(&'static str, String)> = None;
        for i in 0..n {
            let (view, ua, ip, bot) = g.next_view();
            write_event(&view, crate::gen::WireFormat::Ndjson, &mut ndjson);
            ndjson.push(b'\n');
            if !bot && req_headers.is_none() {
                req_headers = Some((ua, ip));
            }
            if (i + 1) % per_request == 0 || i + 1 == n {
                let (ua, ip) = req_headers
                    .take()
                    .unwrap_or((crate::gen_data::UAS[0].ua, "203.0.113.7".to_owned()));
                requests.push((req_start..ndjson.len(), ua, ip));
                req_start = ndjson.len();
            }
            if (i + 1) % BATCH_ROWS == 0 || i + 1 == n {
                chunks.push(chunk_start..ndjson.len());
                chunk_start = ndjson.len();
            }
        }
        Workload {
            ndjson,
            chunks,
            requests,
            events: n,
        }
    }

    /// Bytes of NDJSON.
    pub fn bytes(&self) -> usize {
        self.ndjson.len()
    }
}

/// The 8 columns every like-for-like path produces.
pub fn plain_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("site", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("referrer", DataType::Utf8, true),
        Field::new("screen_width", DataType::UInt16, true),
        Field::new("ts", DataType::Int64, true),
        Field::new("ttfb_ms", DataType::UInt32, true),
        Field::new("lcp_ms", DataType::UInt32, true),
    ]))
}

/// arrow-json's decoder over the whole buffer; returns the rows decoded.
pub fn arrow_json(w: &Workload) -> usize {
    let mut decoder = arrow_json::ReaderBuilder::new(plain_schema())
        .with_batch_size(BATCH_ROWS)
        .build_decoder()
        .expect("arrow-json decoder for the plain schema");
    let mut rows = 0;
    let mut buf = &w.ndjson[..];
    while !buf.is_empty() {
        let read = decoder.decode(buf).expect("generated NDJSON decodes");
        buf = &buf[read..];
        if let Some(b) = decoder.flush().expect("flush") {
            rows += b.num_rows();
        }
    }
    if let Some(b) = decoder.flush().expect("flush") {
        rows += b.num_rows();
    }
    rows
}

/// The 8 builders of [`plain_schema`].
struct PlainBuilders {
    site: StringBuilder,
    url: StringBuilder,
    name: StringBuilder,
    referrer: StringBuilder,
    screen_width: UInt16Builder,
    ts: Int64Builder,
    ttfb_ms: UInt32Builder,
    lcp_ms: UInt32Builder,
}

impl PlainBuilders {
    fn new() -> Self {
        PlainBuilders {
            site: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16),
            url: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 64),
            name: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8),
            referrer: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 32),
            screen_width: UInt16Builder::with_capacity(BATCH_ROWS),
            ts: Int64Builder::with_capacity(BATCH_ROWS),
            ttfb_ms: UInt32Builder::with_capacity(BATCH_ROWS),
            lcp_ms: UInt32Builder::with_capacity(BATCH_ROWS),
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn append(
        &mut self,
        site: Option<&str>,
        url: Option<&str>,
        name: Option<&str>,
        referrer: Option<&str>,
        screen_width: Option<u16>,
        ts: Option<i64>,
        ttfb_ms: Option<u32>,
        lcp_ms: Option<u32>,
    ) {
        self.site.append_option(site);
        self.url.append_option(url);
        self.name.append_option(name);
        self.referrer.append_option(referrer);
        self.screen_width.append_option(screen_width);
        self.ts.append_option(ts);
        self.ttfb_ms.append_option(ttfb_ms);
        self.lcp_ms.append_option(lcp_ms);
    }

    /// The batch so far; the builders start again with their first capacity (arrow's
    /// `finish` leaves them empty, and regrowing them by doubling for every batch
    /// would charge reallocation to the parsers measured here).
    fn finish(&mut self, schema: &SchemaRef) -> RecordBatch {
        let mut b = std::mem::replace(self, PlainBuilders::new());
        let cols: Vec<ArrayRef> = vec![
            Arc::new(b.site.finish()),
            Arc::new(b.url.finish()),
            Arc::new(b.name.finish()),
            Arc::new(b.referrer.finish()),
            Arc::new(b.screen_width.finish()),
            Arc::new(b.ts.finish()),
            Arc::new(b.ttfb_ms.finish()),
            Arc::new(b.lcp_ms.finish()),
        ];
        RecordBatch::try_new(schema.clone(), cols).expect("plain columns match the schema")
    }
}

/// One line as serde_json sees it: strings borrowed unless they hold escapes.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    site: Option<Cow<'a, str>>,
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    referrer: Option<Cow<'a, str>>,
    screen_width: Option<u16>,
    ts: Option<i64>,
    ttfb_ms: Option<u32>,
    lcp_ms: Option<u32>,
}

/// serde_json → structs → builders, one line at a time; returns the rows built.
pub fn serde_json_builders(w: &Workload) -> usize {
    let schema = plain_schema();
    let mut b = PlainBuilders::new();
    let mut rows = 0;
    let mut in_batch = 0;
    for line in w.ndjson.split(|&c| c == b'\n') {
        if line.is_empty() {
            continue;
        }
        let l: Line<'_> = serde_json::from_slice(line).expect("generated NDJSON parses");
        b.append(
            l.site.as_deref(),
            l.url.as_deref(),
            l.name.as_deref(),
            l.referrer.as_deref(),
            l.screen_width,
            l.ts,
            l.ttfb_ms,
            l.lcp_ms,
        );
        in_batch += 1;
        if in_batch == BATCH_ROWS {
            rows += b.finish(&schema).num_rows();
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        rows += b.finish(&schema).num_rows();
    }
    rows
}

/// Reusable state of [`ingest_core_plain`].
pub struct PlainState {
    parser: Parser,
    limits: Limits,
    builders: PlainBuilders,
    schema: SchemaRef,
}

impl Default for PlainState {
    fn default() -> Self {
        PlainState {
            parser: Parser::new(),
            // A chunk is one "request" of BATCH_ROWS lines; every other limit stays at
            // its default, so the per-field checks are all still done.
            limits: Limits {
                max_events_per_request: BATCH_ROWS,
                max_body_bytes: 64 << 20,
                ..Limits::default()
            },
            builders: PlainBuilders::new(),
            schema: plain_schema(),
        }
    }
}

/// ingest-core's wire parser → the 8 builders, per 8,192-line chunk; returns the rows.
pub fn ingest_core_plain(w: &Workload, st: &mut PlainState) -> usize {
    let mut rows = 0;
    for r in &w.chunks {
        // `parse_slice`: read in place like arrow-json (events the fast path cannot
        // take would be decoded from a copy; on this data there are none).
        let parsed = st
            .parser
            .parse_slice(Format::Own, &w.ndjson[r.clone()], &st.limits)
            .expect("generated NDJSON is a valid request");
        for (_, e) in &parsed.events {
            let RawEvent {
                site,
                url,
                name,
                referrer,
                screen_width,
                ts,
                timings,
                ..
            } = e;
            st.builders.append(
                site.as_deref(),
                Some(url),
                Some(name),
                referrer.as_deref(),
                *screen_width,
                *ts,
                timings.ttfb_ms,
                timings.lcp_ms,
            );
        }
        rows += st.builders.finish(&st.schema).num_rows();
    }
    rows
}

/// Reusable state of [`ingest_core_full`]: the pipeline (parser buffers, user-agent
/// cache), a batcher, the salt.
pub struct FullState {
    pipeline: Pipeline,
    batcher: Batcher,
    salt: DailySalt,
}

impl Default for FullState {
    fn default() -> Self {
        Self::with_batch_rows(BATCH_ROWS)
    }
}

impl FullState {
    /// State whose batcher hands out batches of `rows` rows (the benches use
    /// [`BATCH_ROWS`]; the `profile` binary can try others).
    pub fn with_batch_rows(rows: usize) -> Self {
        FullState {
            pipeline: Pipeline::new(PipelineConfig::default()),
            batcher: Batcher::new(BatchConfig {
                max_rows: rows,
                max_bytes: 64 << 20,
                max_age_ms: i64::MAX,
            }),
            salt: DailySalt::derive(b"bench secret", RECEIVED_AT_MS),
        }
    }
}

/// The whole ingest-core pipeline, request by request, into schema-v1 batches;
/// returns the rows batched.
pub fn ingest_core_full(w: &Workload, st: &mut FullState) -> usize {
    let mut rows = 0;
    for_each_request(w, st, |b| rows += b.num_rows());
    rows
}

/// The context request `i` of a workload runs under: its user agent and IP, a fixed
/// receive time and country, an event-id seed from its index.
pub fn request_context<'a>(
    i: usize,
    user_agent: &'a str,
    client_ip: &'a str,
    salt: &'a DailySalt,
) -> RequestContext<'a> {
    let mut id_seed = [0u8; 16];
    id_seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    RequestContext {
        received_at_ms: RECEIVED_AT_MS,
        client_ip,
        user_agent,
        country: "DE",
        region: "",
        city: "",
        id_seed,
        salt,
        sites: None,
    }
}

fn for_each_request(w: &Workload, st: &mut FullState, mut sink: impl FnMut(RecordBatch)) {
    for (i, (r, ua, ip)) in w.requests.iter().enumerate() {
        let ctx = request_context(i, ua, ip, &st.salt);
        st.pipeline
            .process_slice_into(
                Format::Own,
                &w.ndjson[r.clone()],
                &ctx,
                &mut st.batcher,
                RECEIVED_AT_MS,
                &mut sink,
            )
            .expect("generated request is valid");
    }
    if let Some(b) = st.batcher.flush() {
        sink(b);
    }
}

/// The full pipeline's schema-v1 batches of `rows_per_batch` rows (untimed input of
/// the loaders in `compare`).
pub fn pipeline_batches(w: &Workload, rows_per_batch: usize) -> Vec<RecordBatch> {
    let mut st = FullState {
        batcher: Batcher::new(BatchConfig {
            max_rows: rows_per_batch,
            max_bytes: usize::MAX,
            max_age_ms: i64::MAX,
        }),
        ..FullState::default()
    };
    let mut out = Vec::new();
    for_each_request(w, &mut st, |b| out.push(b));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_turns_every_event_into_a_row() {
        let w = Workload::new(5, 20_000);
        assert_eq!(arrow_json(&w), w.events);
        assert_eq!(serde_json_builders(&w), w.events);
        assert_eq!(ingest_core_plain(&w, &mut PlainState::default()), w.events);
        assert_eq!(ingest_core_full(&w, &mut FullState::default()), w.events);
    }

    /// The full path appends straight from `RawEvent`s (`Pipeline::process_into`); on
    /// the generator's data its batches equal those of the `Event` path
    /// (`Pipeline::process`, then `Batcher::push` of each row).
    #[test]
    fn direct_path_batches_equal_the_event_path() {
        let w = Workload::with_requests(11, 20_000, 37);
        let direct = pipeline_batches(&w, 4096);
        let mut st = FullState::default();
        let mut batcher = Batcher::new(BatchConfig {
            max_rows: 4096,
            max_bytes: usize::MAX,
            max_age_ms: i64::MAX,
        });
        let mut via_events = Vec::new();
        for (i, (r, ua, ip)) in w.requests.iter().enumerate() {
            let mut body = w.ndjson[r.clone()].to_vec();
            let ctx = request_context(i, ua, ip, &st.salt);
            let out = st.pipeline.process(Format::Own, &mut body, &ctx).unwrap();
            for ev in &out.accepted {
                via_events.extend(batcher.push(ev, RECEIVED_AT_MS));
            }
        }
        via_events.extend(batcher.flush());
        assert_eq!(direct.len(), via_events.len());
        assert_eq!(direct, via_events);
    }
}
