//! Code shared by the fuzz targets: arbitrary schema-v1 rows, and the independent
//! ClickHouse Native decoder `native_encode` checks the sink's encoder against.

use std::borrow::Cow;

use arbitrary::Arbitrary;
use ingest_core::{Event, Timings};

pub mod native_decode;

/// One schema-v1 row as the fuzzer makes it: every string column arbitrary, numbers
/// anywhere in their range, timings present or not, any props.
#[derive(Debug, Arbitrary)]
pub struct Row {
    pub id: [u8; 16],
    pub at: i64,
    pub strings: [String; 19],
    pub screen_width: u16,
    pub visitor_id: u64,
    pub timings: [Option<u32>; 5],
    pub cls: Option<u16>,
    pub scroll_depth: Option<u8>,
    pub engagement_ms: Option<u32>,
    pub props: Vec<(String, String)>,
}

/// The row as an [`Event`].
pub fn event(r: Row) -> Event<'static> {
    let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, s, t] = r.strings.map(Cow::Owned);
    Event {
        event_id: r.id,
        received_at_ms: r.at,
        site_id: a,
        name: b,
        hostname: c,
        pathname: d,
        referrer_host: e,
        referrer_source: f,
        utm_source: g,
        utm_medium: h,
        utm_campaign: i,
        utm_content: j,
        utm_term: k,
        country: l,
        region: m,
        city: n,
        browser: o,
        browser_version: p,
        os: q,
        os_version: s,
        device: t,
        screen_width: r.screen_width,
        visitor_id: r.visitor_id,
        timings: Timings {
            ttfb_ms: r.timings[0],
            fcp_ms: r.timings[1],
            lcp_ms: r.timings[2],
            inp_ms: r.timings[3],
            load_ms: r.timings[4],
            // Finite values only: NaN != NaN would make equality meaningless.
            cls: r.cls.map(|c| f32::from(c) / 100.0),
        },
        scroll_depth: r.scroll_depth,
        engagement_ms: r.engagement_ms,
        props: r
            .props
            .into_iter()
            .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
            .collect(),
    }
}
