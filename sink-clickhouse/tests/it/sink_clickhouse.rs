//! The sink against a real ClickHouse 18.16 (the harness in `support::clickhouse`):
//! `migrate`, 100 000+ events through the HTTP routes and 100 000+ rows through
//! `/v1/batches`, kill -9 mid-load, ClickHouse stopped for 60 s under load, the batch token.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::clickhouse::ClickHouse;
use crate::support::load::{self, Tally};
use crate::support::sink::{Sink, TOKEN};

/// One ClickHouse-backed load test at a time: they share two cores with ClickHouse.
static SERIAL: Mutex<()> = Mutex::new(());

const TABLE: &str = "analytics.events";

pub(crate) fn migrate(ch: &ClickHouse) {
    let out = Command::new(env!("CARGO_BIN_EXE_sink-clickhouse"))
        .args(["migrate", "--clickhouse-url", &ch.url()])
        .env_remove("CLICKHOUSE_URL")
        .output()
        .expect("running sink-clickhouse migrate");
    assert!(
        out.status.success(),
        "migrate failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sink_for(ch: &ClickHouse, extra: &[&str]) -> Sink {
    let url = ch.url();
    let mut args = vec!["--clickhouse-url", url.as_str()];
    args.extend_from_slice(extra);
    Sink::start(&args)
}

fn q(ch: &ClickHouse, sql: &str) -> String {
    ch.query(sql).expect("query").trim().to_owned()
}

fn count(ch: &ClickHouse) -> u64 {
    q(ch, &format!("SELECT count() FROM {TABLE}"))
        .parse()
        .unwrap()
}

fn distinct_ids(ch: &ClickHouse) -> u64 {
    q(ch, &format!("SELECT uniqExact(event_id) FROM {TABLE}"))
        .parse()
        .unwrap()
}

fn per_site(ch: &ClickHouse) -> BTreeMap<String, u64> {
    q(
        ch,
        &format!("SELECT site_id, count() FROM {TABLE} GROUP BY site_id FORMAT TabSeparated"),
    )
    .lines()
    .filter_map(|l| {
        let (s, n) = l.split_once('\t')?;
        Some((s.to_owned(), n.parse().ok()?))
    })
    .collect()
}

/// Rows per NDJSON request (pathname `/r<first>/...`).
fn per_request(ch: &ClickHouse) -> BTreeMap<u64, u64> {
    q(
        ch,
        &format!("SELECT extract(pathname, '^/r([0-9]+)/') AS r, count() FROM {TABLE} WHERE r != '' GROUP BY r FORMAT TabSeparated"),
    )
    .lines()
    .filter_map(|l| {
        let (r, n) = l.split_once('\t')?;
        Some((r.parse().ok()?, n.parse().ok()?))
    })
    .collect()
}

fn wait_rows(ch: &ClickHouse, sink: &Sink, at_least: u64, limit: Duration) {
    sink.wait_until(&format!("{at_least} rows in ClickHouse"), limit, || {
        ch.query(&format!("SELECT count() FROM {TABLE}"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n >= at_least)
    });
}

#[test]
fn http_and_batches_100k_each_are_all_in_clickhouse() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ch = ClickHouse::start();
    migrate(&ch);
    let sink = sink_for(&ch, &[]);
    let t0 = Instant::now();
    let (http, batches) = std::thread::scope(|sc| {
        let h = sc.spawn(|| load::send_ndjson(&sink.url("/e"), 0, 1000, 100, 4, || false));
        let b = sc.spawn(|| {
            load::send_batches(
                &sink.url("/v1/batches"),
                TOKEN,
                10_000_000,
                20,
                5000,
                2,
                || false,
            )
        });
        (h.join().unwrap(), b.join().unwrap())
    });
    let sent_in = t0.elapsed();
    assert!(
        http.refused.is_empty() && batches.refused.is_empty(),
        "{:?} {:?}",
        http.refused,
        batches.refused
    );
    let mut t = http.acked.clone();
    t.add(&batches.acked);
    assert_eq!(t.rows, 200_000);
    wait_rows(&ch, &sink, t.rows, Duration::from_secs(180));
    eprintln!(
        "200 000 rows acknowledged in {sent_in:?}, in ClickHouse after {:?}",
        t0.elapsed()
    );
    assert_eq!(count(&ch), t.rows);
    assert_eq!(distinct_ids(&ch), t.rows);
    assert_eq!(per_site(&ch), t.per_site);
    let sum: u64 = q(&ch, &format!("SELECT sum(screen_width) FROM {TABLE}"))
        .parse()
        .unwrap();
    assert_eq!(sum, t.sum_screen_width);
    assert!(sink.metric("sink_loaded_rows_total") as u64 >= t.rows);
    // Bounded memory: the whole load (spool, group commit, 100 000-row inserts) fits
    // well inside the 256 MiB budget of issue 5, even in a debug build.
    let rss = sink.peak_rss_bytes();
    eprintln!("sink peak RSS {} MiB", rss >> 20);
    assert!(rss > 0 && rss < 256 << 20, "peak RSS {rss} bytes");
}

#[test]
fn kill_9_mid_load_then_restart_every_acknowledged_event_is_in_clickhouse() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ch = ClickHouse::start();
    migrate(&ch);
    let mut sink = sink_for(&ch, &["--flush-rows", "5000"]);
    let stop = AtomicBool::new(false);
    let url = sink.url("/e");
    let run = std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            load::send_ndjson(&url, 0, 1_000_000, 50, 4, || stop.load(Ordering::Relaxed))
        });
        std::thread::sleep(Duration::from_secs(3));
        sink.kill9();
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap()
    });
    assert!(
        run.acked.rows > 1000,
        "too little load before the kill: {}",
        run.acked.rows
    );
    sink.restart();
    sink.wait_until(
        "spool replayed and loaded",
        Duration::from_secs(180),
        || sink.spool_empty(),
    );
    let got = per_request(&ch);
    for r in &run.acked.requests {
        assert!(
            got.get(r).is_some_and(|n| *n >= 50),
            "acknowledged request {r} missing ({:?})",
            got.get(r)
        );
    }
    let distinct = distinct_ids(&ch);
    // Requests cut by the kill may have been stored without their 2xx: at most one
    // request per client (4 × 50 events) beyond what was acknowledged.
    assert!(
        distinct >= run.acked.rows && distinct <= run.acked.rows + 200,
        "distinct {distinct}, acked {}",
        run.acked.rows
    );
    eprintln!(
        "acked {}, distinct in ClickHouse {distinct}, rows {}",
        run.acked.rows,
        count(&ch)
    );
}

/// How long ClickHouse stays down under load (issue 6: "ClickHouse unavailable for
/// 60 s under load").
const OUTAGE: Duration = Duration::from_secs(60);

#[test]
fn clickhouse_down_for_60_s_under_load_loses_nothing_and_catches_up() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut ch = ClickHouse::start();
    migrate(&ch);
    let sink = sink_for(&ch, &["--unready-after", "3s", "--retry-max-backoff", "2s"]);
    let stop = AtomicBool::new(false);
    let url = sink.url("/e");
    let http = reqwest::blocking::Client::new();
    let ready = || {
        http.get(sink.url("/readyz"))
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let run = std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            let mut total = load::Run::default();
            let mut base = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = load::send_ndjson(&url, base, 20, 50, 2, || false);
                total.acked.add(&r.acked);
                for (k, v) in r.refused {
                    *total.refused.entry(k).or_default() += v;
                }
                base += 20 * 50;
                std::thread::sleep(Duration::from_millis(200));
            }
            total
        });
        std::thread::sleep(Duration::from_secs(2));
        sink.wait_until(
            "rows loaded before the outage",
            Duration::from_secs(30),
            || sink.metric("sink_loaded_rows_total") > 0.0,
        );
        assert_eq!(ready(), 200, "readyz before the outage");
        ch.stop();
        let down = Instant::now();
        // A load that was in flight when the server died may still be counted: take
        // the baseline once the sink has seen the first failure.
        sink.wait_until(
            "a ClickHouse error counted",
            Duration::from_secs(20),
            || sink.metric("sink_clickhouse_errors_total") > 0.0,
        );
        let loaded_at_start = sink.metric("sink_loaded_rows_total");
        let errors_at_start = sink.metric("sink_clickhouse_errors_total");
        std::thread::sleep(Duration::from_secs(8));
        // The metrics tell the truth while it is down, sampled through the outage:
        // not ready, nothing loaded, errors growing, the spool holding more and more,
        // its oldest data ageing with the outage.
        let mut spool_bytes = 0.0;
        let mut samples = 0;
        while down.elapsed() + Duration::from_secs(5) < OUTAGE {
            assert_eq!(ready(), 503, "readyz {:?} into the outage", down.elapsed());
            let loaded = sink.metric("sink_loaded_rows_total");
            assert_eq!(
                loaded,
                loaded_at_start,
                "rows reported loaded while ClickHouse was down ({:?})",
                down.elapsed()
            );
            let bytes = sink.metric("sink_spool_bytes");
            assert!(
                bytes > spool_bytes,
                "spool bytes did not grow under load at {:?}: {bytes} after {spool_bytes}",
                down.elapsed()
            );
            spool_bytes = bytes;
            let age = sink.metric("sink_spool_oldest_age_seconds");
            let at_least = down.elapsed().as_secs_f64() - 10.0;
            assert!(
                age >= at_least,
                "oldest spooled data {age} s old at {:?} into the outage",
                down.elapsed()
            );
            samples += 1;
            std::thread::sleep(Duration::from_secs(10));
        }
        assert!(samples >= 4, "only {samples} samples during the outage");
        assert!(sink.metric("sink_clickhouse_errors_total") > errors_at_start);
        while down.elapsed() < OUTAGE {
            std::thread::sleep(Duration::from_millis(200));
        }
        ch.restart();
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap()
    });
    assert!(
        run.refused.is_empty(),
        "refused during the outage: {:?}",
        run.refused
    );
    wait_rows(&ch, &sink, run.acked.rows, Duration::from_secs(180));
    sink.wait_until("spool empty", Duration::from_secs(30), || {
        sink.spool_empty()
    });
    let (rows, distinct) = (count(&ch), distinct_ids(&ch));
    eprintln!(
        "60 s outage: acked {}, rows {rows}, distinct {distinct}, duplicates {}",
        run.acked.rows,
        rows - distinct
    );
    assert_eq!(distinct, run.acked.rows);
    assert_eq!(per_site(&ch), run.acked.per_site);
    sink.wait_until("ready again", Duration::from_secs(10), || ready() == 200);
    assert!(sink.metric("sink_loaded_rows_total") as u64 >= run.acked.rows);
    assert_eq!(
        sink.metric("sink_spool_bytes"),
        0.0,
        "spool gauge after catch-up"
    );
}

#[test]
fn batches_without_the_right_token_write_0_rows() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ch = ClickHouse::start();
    migrate(&ch);
    let sink = sink_for(&ch, &["--flush-interval", "200ms"]);
    let http = reqwest::blocking::Client::new();
    let (body, t) = load::arrow(0, 1000);
    for tok in [None, Some("nope"), Some(&TOKEN[..TOKEN.len() - 1])] {
        let mut rq = http.post(sink.url("/v1/batches")).body(body.clone());
        if let Some(tok) = tok {
            rq = rq.bearer_auth(tok);
        }
        assert_eq!(rq.send().unwrap().status(), 401);
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&ch), 0);
    // And with the token, the same batch twice (same id) is stored once.
    for expect in [202, 200] {
        let r = http
            .post(sink.url("/v1/batches"))
            .bearer_auth(TOKEN)
            .header("x-batch-id", "b-1")
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), expect);
    }
    wait_rows(&ch, &sink, t.rows, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(&ch), t.rows);
    assert_eq!(per_site(&ch), t.per_site);
    // The quota's month-to-date usage query sees the same per-site counts.
    let args = sink_clickhouse::config::ClickHouseArgs {
        clickhouse_url: vec![ch.url()],
        clickhouse_database: "analytics".into(),
        clickhouse_table: "events".into(),
        clickhouse_user: "default".into(),
        clickhouse_password: String::new(),
        clickhouse_timeout: Duration::from_secs(30),
        clickhouse_compression: sink_clickhouse::clickhouse::WireCompression::Auto,
        clickhouse_block_rows: sink_clickhouse::clickhouse::DEFAULT_BLOCK_ROWS,
        clickhouse_sort_inserts: true,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let usage = rt.block_on(async {
        let (_, usage) = sink_clickhouse::store::clickhouse(&args).await.unwrap();
        let (month_start, _) = ingest_core::month_bounds(1_763_900_000_000);
        usage.month_usage(month_start).await.unwrap()
    });
    let usage: BTreeMap<String, u64> = usage.into_iter().collect();
    assert_eq!(usage, t.per_site);
}

#[test]
fn spool_limit_with_clickhouse_down_503_then_recovery() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut ch = ClickHouse::start();
    migrate(&ch);
    let sink = sink_for(
        &ch,
        &[
            "--spool-max-bytes",
            "300KiB",
            "--flush-interval",
            "100ms",
            "--retry-max-backoff",
            "1s",
        ],
    );
    ch.stop();
    let http = reqwest::blocking::Client::new();
    let mut acked = Tally::default();
    let mut saw_503 = false;
    for i in 0..5000 {
        let (body, t) = load::ndjson(i * 100, 100);
        let r = http
            .post(sink.url("/e"))
            .header("user-agent", load::UA)
            .body(body)
            .send()
            .unwrap();
        match r.status().as_u16() {
            202 => acked.add(&t),
            503 => {
                assert!(r.headers().contains_key("retry-after"));
                saw_503 = true;
                break;
            }
            s => panic!("status {s}"),
        }
    }
    assert!(saw_503, "the spool never filled");
    ch.restart();
    wait_rows(&ch, &sink, acked.rows, Duration::from_secs(180));
    let (body, t) = load::ndjson(9_000_000, 100);
    sink.wait_until("accepting again", Duration::from_secs(30), || {
        http.post(sink.url("/e"))
            .header("user-agent", load::UA)
            .body(body.clone())
            .send()
            .map(|r| r.status() == 202)
            .unwrap_or(false)
    });
    acked.add(&t);
    wait_rows(&ch, &sink, acked.rows, Duration::from_secs(30));
    assert_eq!(distinct_ids(&ch), acked.rows);
}
