//! The ClickHouse side against a real server (Debian's 18.16, from
//! `support::clickhouse`) and the 26.9 engine (PyPI `chdb-core`): migrate, Native + LZ4
//! inserts read back value by value, a user's own table, a type mismatch, failover, a
//! hostile table name.

use std::borrow::Cow;
use std::time::Duration;

use ingest_core::{events_to_batch, Event, Timings};
use sink_clickhouse::clickhouse::{
    encode_native, encode_native_parts, migrate, quote_ident, table_columns, ClickHouseConfig,
    Client, ServerVersion, TableLayout, WireCompression,
};

use crate::support::clickhouse::ClickHouse;

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

#[test]
fn migrate_then_native_lz4_insert_reads_back_every_value() {
    let ch = ClickHouse::start();
    let c = client(vec![ch.url()], "analytics", "events");
    let events = sample_events(5000);
    let batch = events_to_batch(&events);
    rt().block_on(async {
        migrate(&c, None).await.unwrap();
        migrate(&c, None).await.expect("migrate is idempotent");
        let layout = c.describe().await.unwrap();
        assert!(
            layout.skipped.is_empty() && layout.defaulted.is_empty(),
            "{layout:?}"
        );
        c.insert(&layout, &batch, Some("segment-1:0-0"))
            .await
            .unwrap();
    });
    let q = |sql: &str| ch.query(sql).unwrap();
    assert_eq!(
        q("SELECT count(), uniqExact(event_id) FROM analytics.events"),
        "5000\t5000\n"
    );
    let per_site =
        q("SELECT site_id, count() FROM analytics.events GROUP BY site_id ORDER BY site_id");
    assert_eq!(per_site.lines().count(), 7);
    assert!(per_site.starts_with("site0.com\t715\n"), "{per_site}");
    let want_sum: u64 = events.iter().map(|e| u64::from(e.screen_width)).sum();
    assert_eq!(
        q("SELECT sum(screen_width) FROM analytics.events").trim(),
        want_sum.to_string()
    );
    let got = q(&format!(
        "SELECT {EXPECT_COLUMNS} FROM analytics.events ORDER BY received_at FORMAT TabSeparated"
    ));
    let want = expected_tsv(&events);
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "row {i}");
    }
    assert_eq!(got.lines().count(), events.len());
}

#[test]
fn a_users_own_table_with_other_types_and_extra_columns() {
    let ch = ClickHouse::start();
    ch.query("CREATE DATABASE mine").unwrap();
    // LowCardinality is experimental on 18.16: a user's table opts in at CREATE.
    let r = reqwest::blocking::Client::new()
        .post(format!(
            "{}/?allow_experimental_low_cardinality_type=1",
            ch.url()
        ))
        .body(
            "CREATE TABLE mine.pv (\
               event_id FixedString(16), received_at DateTime, site_id LowCardinality(String), \
               pathname String, screen_width UInt64, lcp_ms Nullable(UInt64), cls Float64, \
               prop_keys Array(String), note String DEFAULT 'n/a', extra Nullable(UInt8)) \
             ENGINE = MergeTree ORDER BY site_id",
        )
        .send()
        .unwrap();
    assert!(
        r.status().is_success(),
        "create the user's table: {}",
        r.text().unwrap()
    );
    let c = client(vec![ch.url()], "mine", "pv");
    let events = sample_events(1000);
    let layout = rt().block_on(async {
        let layout = c.describe().await.unwrap();
        c.insert(&layout, &events_to_batch(&events), None)
            .await
            .unwrap();
        layout
    });
    assert_eq!(layout.defaulted, ["note", "extra"]);
    assert!(layout.skipped.contains(&"utm_source".to_string()));
    let got = ch
        .query("SELECT count(), uniqExact(site_id), sum(screen_width), countIf(lcp_ms IS NULL), any(note), countIf(extra IS NULL) FROM mine.pv")
        .unwrap();
    let want_sum: u64 = events.iter().map(|e| u64::from(e.screen_width)).sum();
    let nulls = events.iter().filter(|e| e.timings.lcp_ms.is_none()).count();
    assert_eq!(got, format!("1000\t7\t{want_sum}\t{nulls}\tn/a\t1000\n"));
    let first = ch
        .query("SELECT hex(event_id), toUnixTimestamp(received_at), pathname, cls, prop_keys FROM mine.pv WHERE screen_width = 300")
        .unwrap();
    assert_eq!(first, "0000000000000001FEED000000000000\t1700000000\t/p/0/tab\\there \\'quoted\\' \\\\ back\t0.25\t[]\n");
}

#[test]
fn a_type_mismatch_is_a_clear_error_before_any_insert() {
    let ch = ClickHouse::start();
    ch.query("CREATE DATABASE bad").unwrap();
    ch.query(
        "CREATE TABLE bad.t (site_id String, pathname Int8) ENGINE = MergeTree ORDER BY site_id",
    )
    .unwrap();
    let err = rt()
        .block_on(client(vec![ch.url()], "bad", "t").describe())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("pathname") && msg.contains("Int8") && msg.contains("Utf8"),
        "{msg}"
    );
    assert!(!err.is_retryable());
}

/// A loopback URL nothing listens on: a port bound and dropped.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
}

#[test]
fn fails_over_from_a_dead_url_and_reports_health() {
    let ch = ClickHouse::start();
    let dead = dead_url();
    let c = client(vec![dead.clone(), ch.url()], "analytics", "events");
    rt().block_on(async {
        migrate(&c, None).await.unwrap();
        let layout = c.describe().await.unwrap();
        c.insert(&layout, &events_to_batch(&sample_events(10)), None)
            .await
            .unwrap();
    });
    assert_eq!(c.url_health(), vec![(dead, false), (ch.url(), true)]);
    assert_eq!(
        ch.query("SELECT count() FROM analytics.events").unwrap(),
        "10\n"
    );
    // All URLs down: a retryable error, not a panic.
    let down = client(vec![c.url_health()[0].0.clone()], "analytics", "events");
    let err = rt().block_on(down.ping()).unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

/// The loader's chunks are many spool records: `encode_native_parts` of the pieces of a
/// batch gives the bytes of `encode_native` of the batch, for the 18.16 layout and the
/// modern one (LowCardinality dictionaries, `DateTime64`), whatever the cuts.
#[test]
fn native_of_parts_is_native_of_the_concatenated_batch() {
    let batch = events_to_batch(&sample_events(1000));
    for version in ["18.16.1", "24.8.4.13"] {
        let v = ServerVersion::parse(version).unwrap();
        let layout = TableLayout::from_describe(&table_columns(&v)).unwrap();
        let mut whole = Vec::new();
        encode_native(&layout, &batch, &mut whole).unwrap();
        for cuts in [
            vec![1000],
            vec![1, 999],
            vec![0, 500, 0, 500],
            vec![3, 97, 100, 300, 499, 1],
        ] {
            let mut parts = Vec::new();
            let mut offset = 0;
            for n in &cuts {
                parts.push(batch.slice(offset, *n));
                offset += n;
            }
            let mut got = Vec::new();
            encode_native_parts(&layout, &parts, &mut got).unwrap();
            assert!(got == whole, "{version}, cuts {cuts:?}: the bytes differ");
        }
    }
}

/// A chunk of many small records, inserted as parts (streamed, blocks cut across the
/// parts), reads back value by value, every row once.
#[test]
fn an_insert_of_many_parts_reads_back_every_value() {
    let ch = ClickHouse::start();
    let c = client(vec![ch.url()], "analytics", "events");
    let n = BLOCK_ROWS * 2 + 501;
    let events = sample_events(n);
    let batch = events_to_batch(&events);
    let mut parts = Vec::new();
    let mut offset = 0;
    for i in 0.. {
        let len = (700 + 37 * (i % 20)).min(n - offset);
        parts.push(batch.slice(offset, len));
        offset += len;
        if offset == n {
            break;
        }
    }
    rt().block_on(async {
        migrate(&c, None).await.unwrap();
        let layout = c.describe().await.unwrap();
        c.insert_parts(&layout, &parts, None).await.unwrap();
    });
    let got = ch
        .query(&format!(
            "SELECT {EXPECT_COLUMNS} FROM analytics.events ORDER BY received_at, toString(event_id) FORMAT TabSeparated"
        ))
        .unwrap();
    let mut want: Vec<&str> = Vec::new();
    let want_text = expected_tsv(&events);
    want.extend(want_text.lines());
    let mut got: Vec<&str> = got.lines().collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got.len(), n);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "row {i}");
    }
}

/// Parts that are not alike (here one without `prop_keys`) are refused before any request,
/// as the clear, non-retryable error a concatenation of them was: a streamed body could
/// only be cut mid-way, which looks retryable. The URL is dead, so an answer other than
/// this error would have come from trying to send.
#[test]
fn an_insert_of_unlike_parts_is_refused_before_any_request() {
    let c = client(vec![dead_url()], "analytics", "events");
    let layout =
        TableLayout::from_describe(&table_columns(&ServerVersion::parse("18.16.1").unwrap()))
            .unwrap();
    let batch = events_to_batch(&sample_events(BLOCK_ROWS + 10));
    let dropped = batch.schema().index_of("prop_keys").unwrap();
    let keep: Vec<usize> = (0..batch.num_columns()).filter(|&i| i != dropped).collect();
    let without_props = batch.project(&keep).unwrap();
    // The first block (the first part, whole) encodes; only the second could not.
    let parts = [
        batch.slice(0, BLOCK_ROWS),
        without_props.slice(BLOCK_ROWS, 10),
    ];
    let err = rt()
        .block_on(c.insert_parts(&layout, &parts, None))
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("prop_keys"), "{err}");
}

/// A batch past `BLOCK_ROWS` goes as a streamed body of several Native blocks:
/// one insert holding every row exactly once, also when the first URL is dead and the
/// body is encoded again for the next.
#[test]
fn a_streamed_insert_fails_over_and_stores_every_row_once() {
    let ch = ClickHouse::start();
    let dead = dead_url();
    let c = client(vec![dead, ch.url()], "analytics", "events");
    let n = BLOCK_ROWS * 2 + 123;
    let events = sample_events(n);
    rt().block_on(async {
        migrate(&c, None).await.unwrap();
        let layout = c.describe().await.unwrap();
        c.insert(&layout, &events_to_batch(&events), None)
            .await
            .unwrap();
    });
    assert_eq!(
        ch.query("SELECT count(), uniqExact(event_id), sum(screen_width) FROM analytics.events")
            .unwrap(),
        format!(
            "{n}\t{n}\t{}\n",
            events
                .iter()
                .map(|e| u64::from(e.screen_width))
                .sum::<u64>()
        )
    );
}

/// Plain Native bodies (no `decompress=1`: `auto`'s choice on loopback) store the same
/// values as LZ4-framed ones, unstreamed and streamed, and through a failover from a
/// dead URL. A body framed one way and announced the other is refused by the server, so
/// the read-back also checks that each body matches its query.
#[test]
fn plain_native_inserts_read_back_every_value_as_lz4_ones_do() {
    let ch = ClickHouse::start();
    let auto = client_with(
        vec![dead_url(), ch.url()],
        "analytics",
        "events",
        WireCompression::Auto,
    );
    assert_eq!(auto.lz4_per_url(), [false, false], "both URLs are loopback");
    let plain = client_with(vec![ch.url()], "analytics", "events", WireCompression::None);
    let small = sample_events(3000);
    let streamed = sample_events(BLOCK_ROWS * 2 + 77);
    let read = |ch: &ClickHouse| {
        ch.query(&format!(
            "SELECT {EXPECT_COLUMNS} FROM analytics.events ORDER BY received_at, toString(event_id) FORMAT TabSeparated"
        ))
        .unwrap()
    };
    let mut got = Vec::new();
    for c in [
        &plain,
        &auto,
        &client(vec![ch.url()], "analytics", "events"),
    ] {
        for events in [&small, &streamed] {
            rt().block_on(async {
                migrate(c, None).await.unwrap();
                let layout = c.describe().await.unwrap();
                c.insert(&layout, &events_to_batch(events), None)
                    .await
                    .unwrap();
            });
            got.push(read(&ch));
            ch.query("TRUNCATE TABLE analytics.events").unwrap();
        }
    }
    let sorted = |events: &[Event]| {
        let text = expected_tsv(events);
        let mut v: Vec<String> = text.lines().map(str::to_owned).collect();
        v.sort_unstable();
        v
    };
    let (want_small, want_streamed) = (sorted(&small), sorted(&streamed));
    for (i, text) in got.iter().enumerate() {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort_unstable();
        let want = if i % 2 == 0 {
            &want_small
        } else {
            &want_streamed
        };
        assert_eq!(lines.len(), want.len(), "insert {i}");
        assert!(lines == *want, "insert {i}: values differ");
    }
}

#[test]
fn hostile_database_and_table_names_cannot_inject() {
    let ch = ClickHouse::start();
    let db = "db `x' y";
    let table = "t`; DROP TABLE system.one; --'";
    let c = client(vec![ch.url()], db, table);
    rt().block_on(async {
        migrate(&c, None).await.unwrap();
        let layout = c.describe().await.unwrap();
        c.insert(&layout, &events_to_batch(&sample_events(3)), None)
            .await
            .unwrap();
    });
    let q = format!(
        "SELECT count() FROM {}.{}",
        quote_ident(db).unwrap(),
        quote_ident(table).unwrap()
    );
    assert_eq!(ch.query(&q).unwrap(), "3\n");
    assert_eq!(ch.query("SELECT count() FROM system.one").unwrap(), "1\n");
    assert!(Client::new(ClickHouseConfig {
        urls: vec![ch.url()],
        database: "a\nb".into(),
        table: "t".into(),
        user: "default".into(),
        password: String::new(),
        timeout: Duration::from_secs(1),
        compression: WireCompression::Auto,
        block_rows: BLOCK_ROWS,
        sort_inserts: true,
    })
    .is_err());
}

#[test]
fn a_stopped_server_is_a_retryable_error_and_health_recovers_on_restart() {
    let mut ch = ClickHouse::start();
    let c = client(vec![ch.url()], "analytics", "events");
    let rt = rt();
    let layout = rt.block_on(async {
        migrate(&c, None).await.unwrap();
        let layout = c.describe().await.unwrap();
        c.insert(&layout, &events_to_batch(&sample_events(10)), None)
            .await
            .unwrap();
        layout
    });
    ch.stop();
    let err = rt
        .block_on(c.insert(&layout, &events_to_batch(&sample_events(5)), None))
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(c.url_health(), vec![(ch.url(), false)]);
    ch.restart();
    rt.block_on(c.ping()).unwrap();
    assert_eq!(c.url_health(), vec![(ch.url(), true)]);
    assert_eq!(
        ch.query("SELECT count() FROM analytics.events").unwrap(),
        "10\n",
        "rows inserted before the outage survive the restart"
    );
}

/// The server's count of MergeTree blocks written, and of those it found in key order
/// already (`system.events`; an event never counted is absent: 0).
fn blocks_written(ch: &ClickHouse) -> (u64, u64) {
    let text = ch
        .query(
            "SELECT event, value FROM system.events \
             WHERE event IN ('MergeTreeDataWriterBlocks', 'MergeTreeDataWriterBlocksAlreadySorted') \
             FORMAT TabSeparated",
        )
        .unwrap();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('\t'))
            .map_or(0, |v| v.parse().unwrap())
    };
    (
        get("MergeTreeDataWriterBlocks"),
        get("MergeTreeDataWriterBlocksAlreadySorted"),
    )
}

/// With `sort_inserts`, an insert arrives in the table's `ORDER BY` order, so 18.16
/// writes its part without sorting it: the server counts every such block as already
/// sorted — one block per insert, unstreamed or streamed in several Native blocks
/// (which it squashes into one). In arrival order (the sample's sites cycle) it sorts.
/// Every row is stored either way.
#[test]
fn inserts_in_key_order_skip_the_servers_sort() {
    let ch = ClickHouse::start();
    let n = BLOCK_ROWS * 2 + 123;
    let events = sample_events(n);
    let batch = events_to_batch(&events);
    let small = batch.slice(0, 5000);
    let parts: Vec<_> = (0..n)
        .step_by(1000)
        .map(|at| batch.slice(at, 1000.min(n - at)))
        .collect();
    let sorted = client(vec![ch.url()], "analytics", "events");
    let unsorted = Client::new(ClickHouseConfig {
        sort_inserts: false,
        ..sorted.config().clone()
    })
    .unwrap();
    // The server is asked for its counts between the inserts, outside the runtime
    // (the harness's queries are blocking).
    let rt = rt();
    let layout = rt.block_on(async {
        migrate(&sorted, None).await.unwrap();
        sorted.describe().await.unwrap()
    });
    assert!(layout.sort_key.is_some(), "{layout:?}");
    let before = blocks_written(&ch);
    rt.block_on(async {
        sorted.insert(&layout, &small, None).await.unwrap();
        sorted.insert_parts(&layout, &parts, None).await.unwrap();
    });
    let after = blocks_written(&ch);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (2, 2),
        "blocks written, of them already sorted"
    );
    let plain = rt.block_on(unsorted.describe()).unwrap();
    assert_eq!(plain.sort_key, None);
    rt.block_on(unsorted.insert(&plain, &small, None)).unwrap();
    let last = blocks_written(&ch);
    assert_eq!((last.0 - after.0, last.1 - after.1), (1, 0));
    let sum = |evs: &[Event<'_>]| evs.iter().map(|e| u64::from(e.screen_width)).sum::<u64>();
    assert_eq!(
        ch.query("SELECT count(), uniqExact(event_id), sum(screen_width) FROM analytics.events")
            .unwrap(),
        format!(
            "{}\t{n}\t{}\n",
            n + 10_000,
            sum(&events) + 2 * sum(&events[..5000])
        )
    );
}
