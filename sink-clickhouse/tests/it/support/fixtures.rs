//! Fixtures of the ClickHouse suites (`clickhouse_loader`, `clickhouse_sort`,
//! `clickhouse_wire`, `clickhouse_26`): clients of the sink's ClickHouse client, and
//! deterministic events exercising every column with what the server must return.

use std::borrow::Cow;
use std::time::Duration;

use ingest_core::{Event, Timings};
use sink_clickhouse::clickhouse::{ClickHouseConfig, Client, WireCompression};

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Rows per Native block of the tests' clients: smaller than the sink's default
/// ([`sink_clickhouse::clickhouse::DEFAULT_BLOCK_ROWS`]), so that streamed inserts
/// stay quick to build here.
pub(crate) const BLOCK_ROWS: usize = 16_384;

/// A client sending LZ4-framed inserts (what `auto` does to a server on another host;
/// these servers are on loopback, where `auto` sends plain Native).
pub(crate) fn client(urls: Vec<String>, db: &str, table: &str) -> Client {
    client_with(urls, db, table, WireCompression::Lz4)
}

pub(crate) fn client_with(
    urls: Vec<String>,
    db: &str,
    table: &str,
    compression: WireCompression,
) -> Client {
    client_blocks(urls, db, table, compression, BLOCK_ROWS)
}

pub(crate) fn client_blocks(
    urls: Vec<String>,
    db: &str,
    table: &str,
    compression: WireCompression,
    block_rows: usize,
) -> Client {
    Client::new(ClickHouseConfig {
        urls,
        database: db.into(),
        table: table.into(),
        user: "default".into(),
        password: String::new(),
        timeout: Duration::from_secs(30),
        compression,
        block_rows,
        sort_inserts: true,
    })
    .unwrap()
}

/// Deterministic events that exercise every column: escapes, empty strings, nulls,
/// props, large ids.
pub(crate) fn sample_events(n: usize) -> Vec<Event<'static>> {
    (0..n)
        .map(|i| {
            let s = |v: String| Cow::Owned(v);
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            id[8..].copy_from_slice(&(0xfeed_0000_0000_0000u64 | i as u64).to_be_bytes());
            Event {
                event_id: id,
                received_at_ms: 1_700_000_000_000 + i as i64 * 1000,
                site_id: s(format!("site{}.com", i % 7)),
                name: s(if i % 10 == 0 {
                    "signup".into()
                } else {
                    "pageview".into()
                }),
                hostname: s(format!("site{}.com", i % 7)),
                pathname: s(format!("/p/{i}/tab\there 'quoted' \\ back")),
                referrer_host: s(if i % 3 == 0 {
                    String::new()
                } else {
                    "news.ycombinator.com".into()
                }),
                referrer_source: s(if i % 3 == 0 {
                    String::new()
                } else {
                    "Hacker News".into()
                }),
                utm_source: s(if i % 5 == 0 {
                    "newsletter".into()
                } else {
                    String::new()
                }),
                utm_medium: s(String::new()),
                utm_campaign: s(format!("c{}", i % 4)),
                utm_content: s(String::new()),
                utm_term: s("é ü 日本".into()),
                country: s(["DE", "US", "", "FR"][i % 4].into()),
                region: s(String::new()),
                city: s(String::new()),
                browser: s("Chrome".into()),
                browser_version: s("120.0".into()),
                os: s("Windows".into()),
                os_version: s("10".into()),
                device: s(["desktop", "mobile", "tablet"][i % 3].into()),
                screen_width: (300 + i % 2000) as u16,
                visitor_id: u64::MAX - i as u64,
                timings: Timings {
                    ttfb_ms: (i % 2 == 0).then_some(i as u32),
                    fcp_ms: None,
                    lcp_ms: (i % 3 == 0).then_some(1000 + i as u32),
                    inp_ms: None,
                    load_ms: Some(u32::MAX - i as u32),
                    cls: (i % 4 == 0).then_some(0.25),
                },
                scroll_depth: (i % 2 == 1).then_some((i % 101) as u8),
                engagement_ms: None,
                props: (0..i % 3)
                    .map(|k| (s(format!("k{k}")), s(format!("v{i}-{k}"))))
                    .collect(),
            }
        })
        .collect()
}

/// What the server must return for `SELECT <EXPECT_COLUMNS> … ORDER BY received_at`.
pub(crate) const EXPECT_COLUMNS: &str = "toString(event_id), toUnixTimestamp(received_at), site_id, name, pathname, \
     referrer_source, utm_source, utm_campaign, utm_term, country, device, screen_width, visitor_id, \
     ttfb_ms, lcp_ms, load_ms, cls, scroll_depth, prop_keys, prop_values";

pub(crate) fn expected_tsv(events: &[Event<'_>]) -> String {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\'', "\\'")
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "\\N".into());
    let arr = |v: Vec<&str>| {
        format!(
            "[{}]",
            v.iter()
                .map(|x| format!("'{}'", esc(x)))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let mut out = String::new();
    for e in events {
        let id = e
            .event_id
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let id = format!(
            "{}-{}-{}-{}-{}",
            &id[..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..]
        );
        let row = [
            id,
            (e.received_at_ms / 1000).to_string(),
            esc(&e.site_id),
            esc(&e.name),
            esc(&e.pathname),
            esc(&e.referrer_source),
            esc(&e.utm_source),
            esc(&e.utm_campaign),
            esc(&e.utm_term),
            esc(&e.country),
            esc(&e.device),
            e.screen_width.to_string(),
            e.visitor_id.to_string(),
            opt(e.timings.ttfb_ms.map(|v| v.to_string())),
            opt(e.timings.lcp_ms.map(|v| v.to_string())),
            opt(e.timings.load_ms.map(|v| v.to_string())),
            opt(e.timings.cls.map(|v| v.to_string())),
            opt(e.scroll_depth.map(|v| v.to_string())),
            arr(e.props.iter().map(|(k, _)| &**k).collect()),
            arr(e.props.iter().map(|(_, v)| &**v).collect()),
        ];
        out.push_str(&row.join("\t"));
        out.push('\n');
    }
    out
}
