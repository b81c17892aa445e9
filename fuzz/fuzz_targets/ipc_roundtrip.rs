//! Arbitrary events → Arrow batch → IPC stream (LZ4) → batch → events: equal.
#![no_main]
use std::borrow::Cow;

use arbitrary::Arbitrary;
use ingest_core::{batch_to_events, events_to_batch, read_ipc, write_ipc, Event, Timings};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Row {
    id: [u8; 16],
    at: i64,
    strings: [String; 19],
    screen_width: u16,
    visitor_id: u64,
    timings: [Option<u32>; 5],
    cls: Option<u16>,
    scroll_depth: Option<u8>,
    engagement_ms: Option<u32>,
    props: Vec<(String, String)>,
}

fn event(r: Row) -> Event<'static> {
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
        props: r.props.into_iter().map(|(k, v)| (Cow::Owned(k), Cow::Owned(v))).collect(),
    }
}

fuzz_target!(|rows: Vec<Row>| {
    let events: Vec<Event<'static>> = rows.into_iter().take(64).map(event).collect();
    let batch = events_to_batch(&events);
    let bytes = write_ipc(std::slice::from_ref(&batch)).expect("encode");
    let back = read_ipc(&bytes, 1_000).expect("decode what we encoded");
    let got: Vec<Event<'static>> = back.iter().flat_map(|b| batch_to_events(b).expect("v1")).collect();
    assert_eq!(got, events);
});
