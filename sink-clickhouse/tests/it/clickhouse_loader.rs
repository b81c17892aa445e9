//! The ClickHouse side against a real server (Debian's 18.16, from
//! `support::clickhouse`) and the 26.9 engine (PyPI `chdb-core`): migrate, Native + LZ4
//! inserts read back value by value, a user's own table, a type mismatch, failover, a
//! hostile table name. Fixtures in `support::fixtures`; the key order in
//! `clickhouse_sort`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ingest_core::{events_to_batch, Event};
use sink_clickhouse::clickhouse::{
    encode_native, encode_native_parts, migrate, quote_ident, table_columns, ClickHouseConfig,
    Client, ServerVersion, TableLayout, WireCompression,
};

use crate::support::clickhouse::ClickHouse;
use crate::support::fixtures::{
    client, client_with, expected_tsv, rt, sample_events, BLOCK_ROWS, EXPECT_COLUMNS,
};
use crate::support::proxy::Proxy;

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
/// one insert holding every row exactly once, also when the first URL takes the whole
/// body and then fails the insert (a fault-injecting proxy in front of the same server
/// answers the first INSERT 500 without forwarding it) and the body is encoded again
/// for the next URL. (A dead first URL would not do: the queries before the insert
/// already fail over, and the insert then goes to the live URL first.)
#[test]
fn a_streamed_insert_fails_over_and_stores_every_row_once() {
    let ch = ClickHouse::start();
    let proxy = Proxy::start(ch.http_port);
    proxy.faults.fail_insert_no.store(1, Ordering::Relaxed);
    let c = client(vec![proxy.url(), ch.url()], "analytics", "events");
    let n = BLOCK_ROWS * 2 + 123;
    let events = sample_events(n);
    rt().block_on(async {
        migrate(&c, None).await.unwrap();
        let layout = c.describe().await.unwrap();
        c.insert(&layout, &events_to_batch(&events), None)
            .await
            .unwrap();
    });
    assert_eq!(proxy.faults.inserts_seen.load(Ordering::Relaxed), 1);
    assert_eq!(
        proxy.faults.failed.load(Ordering::Relaxed),
        1,
        "failed over"
    );
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

/// Plain Native bodies (no `decompress=1`: `auto`'s choice on loopback, here with a
/// dead first URL, which the client's queries fail over from before its inserts) store
/// the same values as LZ4-framed ones, unstreamed and streamed. A body framed one way
/// and announced the other is refused by the server, so the read-back also checks that
/// each body matches its query. (The failover of an insert itself: the test above.)
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
