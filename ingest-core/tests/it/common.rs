//! Shared test data: proptest strategies for events.

use std::borrow::Cow;

use ingest_core::{Event, Timings};
use proptest::prelude::*;

/// Any printable string, short (Arrow and Parquet must keep it byte for byte).
pub fn arb_str() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn arb_timings() -> impl Strategy<Value = Timings> {
    (
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        prop::option::of(0.0f32..50.0),
    )
        .prop_map(|(ttfb_ms, fcp_ms, lcp_ms, inp_ms, load_ms, cls)| Timings {
            ttfb_ms,
            fcp_ms,
            lcp_ms,
            inp_ms,
            load_ms,
            cls,
        })
}

/// Any event: every column, nulls included; the site id canonical.
pub fn arb_event() -> impl Strategy<Value = Event<'static>> {
    (
        any::<[u8; 16]>(),
        any::<i64>(),
        prop::collection::vec(arb_str(), 19),
        any::<u16>(),
        any::<u64>(),
        arb_timings(),
        any::<Option<u8>>(),
        any::<Option<u32>>(),
        prop::collection::vec((arb_str(), arb_str()), 0..4),
    )
        .prop_map(
            |(event_id, received_at_ms, s, screen_width, visitor_id, timings, sd, eng, props)| {
                let mut s = s.into_iter().map(Cow::<str>::Owned);
                let mut n = || s.next().expect("19 strings");
                Event {
                    event_id,
                    received_at_ms,
                    // A site id as the pipeline stores it, not empty (`conform` refuses
                    // any other).
                    site_id: Cow::Owned(format!("s{}", n().trim_ascii().to_ascii_lowercase())),
                    name: n(),
                    hostname: n(),
                    pathname: n(),
                    referrer_host: n(),
                    referrer_source: n(),
                    utm_source: n(),
                    utm_medium: n(),
                    utm_campaign: n(),
                    utm_content: n(),
                    utm_term: n(),
                    country: n(),
                    region: n(),
                    city: n(),
                    browser: n(),
                    browser_version: n(),
                    os: n(),
                    os_version: n(),
                    device: n(),
                    screen_width,
                    visitor_id,
                    timings,
                    scroll_depth: sd,
                    engagement_ms: eng,
                    props: props
                        .into_iter()
                        .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
                        .collect(),
                }
            },
        )
}

/// A realistic page view, numbered.
pub fn pageview(i: u32) -> Event<'static> {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&i.to_le_bytes());
    Event {
        event_id: id,
        received_at_ms: 1_793_491_200_000 + i64::from(i),
        site_id: "example.com".into(),
        name: "pageview".into(),
        hostname: "example.com".into(),
        pathname: format!("/blog/post-{i}").into(),
        referrer_host: "news.ycombinator.com".into(),
        referrer_source: "Hacker News".into(),
        country: "DE".into(),
        browser: "Firefox".into(),
        browser_version: "133.0".into(),
        os: "Linux".into(),
        device: "desktop".into(),
        screen_width: 1920,
        visitor_id: u64::from(i) * 7919,
        timings: Timings {
            ttfb_ms: Some(120),
            cls: Some(0.05),
            ..Timings::default()
        },
        props: vec![("plan".into(), "pro".into())],
        ..Event::default()
    }
}
