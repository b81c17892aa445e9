//! Faults with a real ClickHouse 18.16 (`support::clickhouse`): the sink killed with
//! SIGKILL N times during a sustained load (N = 3, or `SINK_KILL_CYCLES`, or 20 with
//! `PAGEVIEW_FULL=1`); ClickHouse answering slowly, and answering 500 to one insert
//! (through `support::proxy`). Every 2xx-acknowledged event ends up in ClickHouse, the
//! duplicates are counted and printed, `/readyz` and `/metrics` tell the truth meanwhile.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::clickhouse::ClickHouse;
use crate::support::load::{self, Run};
use crate::support::proxy::Proxy;
use crate::support::sink::Sink;

/// One of these at a time: each runs ClickHouse and a load on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

const TABLE: &str = "analytics.events";
const PER_REQUEST: u64 = 50;

fn migrate(ch: &ClickHouse) {
    let out = Command::new(env!("CARGO_BIN_EXE_sink-clickhouse"))
        .args(["migrate", "--clickhouse-url", &ch.url()])
        .env_remove("CLICKHOUSE_URL")
        .output()
        .expect("running sink-clickhouse migrate");
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn num(ch: &ClickHouse, sql: &str) -> u64 {
    ch.query(sql)
        .expect("query")
        .trim()
        .parse()
        .expect("a number")
}

/// Rows per acknowledged NDJSON request (pathname `/r<first>/...`).
fn per_request(ch: &ClickHouse) -> BTreeMap<u64, u64> {
    ch.query(&format!(
        "SELECT extract(pathname, '^/r([0-9]+)/') AS r, uniqExact(event_id) FROM {TABLE} \
         WHERE r != '' GROUP BY r FORMAT TabSeparated"
    ))
    .expect("query")
    .lines()
    .filter_map(|l| {
        let (r, n) = l.split_once('\t')?;
        Some((r.parse().ok()?, n.parse().ok()?))
    })
    .collect()
}

/// Every acknowledged request has all its events in ClickHouse; returns
/// `(distinct event ids, rows)` and prints the duplicates.
fn check_nothing_acked_lost(ch: &ClickHouse, run: &Run, what: &str) -> (u64, u64) {
    let got = per_request(ch);
    let missing: Vec<_> = run
        .acked
        .requests
        .iter()
        .filter(|r| got.get(r).is_none_or(|n| *n < PER_REQUEST))
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: {} acknowledged requests missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let distinct = num(ch, &format!("SELECT uniqExact(event_id) FROM {TABLE}"));
    let rows = num(ch, &format!("SELECT count() FROM {TABLE}"));
    assert!(
        distinct >= run.acked.rows,
        "{what}: {distinct} < {}",
        run.acked.rows
    );
    eprintln!(
        "{what}: acknowledged {}, distinct event_id {distinct}, rows {rows}, duplicate rows {}",
        run.acked.rows,
        rows - distinct
    );
    (distinct, rows)
}

/// Sends NDJSON requests in rounds until `stop`, tolerating a sink that is down.
fn sustained(url: &str, clients: u64, pause: Duration, stop: &AtomicBool) -> Run {
    let mut total = Run::default();
    let mut base = 0;
    while !stop.load(Ordering::Relaxed) {
        let r = load::send_ndjson(url, base, 8, PER_REQUEST, clients, || {
            stop.load(Ordering::Relaxed)
        });
        total.acked.add(&r.acked);
        for (k, v) in r.refused {
            *total.refused.entry(k).or_default() += v;
        }
        base += 8 * PER_REQUEST;
        std::thread::sleep(pause);
    }
    total
}

fn kill_cycles() -> u32 {
    if let Ok(n) = std::env::var("SINK_KILL_CYCLES") {
        return n.parse().expect("SINK_KILL_CYCLES is a number");
    }
    if std::env::var("PAGEVIEW_FULL").is_ok_and(|v| v == "1") {
        20
    } else {
        3
    }
}

#[test]
fn kill_9_n_times_under_load_every_acknowledged_event_is_in_clickhouse() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cycles = kill_cycles();
    let ch = ClickHouse::start();
    migrate(&ch);
    let url = ch.url();
    let mut sink = Sink::start(&[
        "--clickhouse-url",
        &url,
        "--flush-interval",
        "300ms",
        "--retry-max-backoff",
        "1s",
    ]);
    let stop = AtomicBool::new(false);
    let target = sink.url("/e");
    let t0 = Instant::now();
    let run = std::thread::scope(|sc| {
        let h = sc.spawn(|| sustained(&target, 3, Duration::from_millis(20), &stop));
        for i in 0..cycles {
            std::thread::sleep(Duration::from_millis(1500 + u64::from(i % 3) * 300));
            sink.kill9();
            std::thread::sleep(Duration::from_millis(100));
            sink.restart();
        }
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap()
    });
    eprintln!(
        "{cycles} kill -9 cycles in {:?}: acknowledged {} rows, refused {:?}",
        t0.elapsed(),
        run.acked.rows,
        run.refused
    );
    assert!(
        run.acked.rows >= u64::from(cycles) * 500,
        "too little load: {}",
        run.acked.rows
    );
    sink.wait_until("spool loaded", Duration::from_secs(60), || {
        sink.spool_empty()
    });
    let (distinct, _) = check_nothing_acked_lost(&ch, &run, &format!("{cycles} × kill -9"));
    // Requests cut by a kill may be stored without their 2xx: at most one in flight
    // per client per kill beyond what was acknowledged.
    let slack = u64::from(cycles) * 3 * PER_REQUEST;
    assert!(
        distinct <= run.acked.rows + slack,
        "distinct {distinct}, acked {}",
        run.acked.rows
    );
}

fn ready(http: &reqwest::blocking::Client, sink: &Sink) -> u16 {
    http.get(sink.url("/readyz"))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[test]
fn clickhouse_answering_slowly_loses_nothing_and_readyz_tells_the_truth() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ch = ClickHouse::start();
    migrate(&ch);
    let proxy = Proxy::start(ch.http_port);
    let purl = proxy.url();
    let sink = Sink::start(&[
        "--clickhouse-url",
        &purl,
        "--clickhouse-timeout",
        "1s",
        "--unready-after",
        "2s",
        "--retry-max-backoff",
        "500ms",
        "--flush-interval",
        "200ms",
    ]);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let stop = AtomicBool::new(false);
    let target = sink.url("/e");
    let run = std::thread::scope(|sc| {
        let h = sc.spawn(|| sustained(&target, 2, Duration::from_millis(100), &stop));
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(ready(&http, &sink), 200, "ready before the slowness");
        // Slower than the sink's ClickHouse timeout: every request times out.
        proxy.faults.delay_ms.store(2500, Ordering::Relaxed);
        sink.wait_until("/readyz 503 while slow", Duration::from_secs(20), || {
            ready(&http, &sink) == 503
        });
        let errors = sink.metric("sink_clickhouse_errors_total");
        assert!(errors > 0.0, "errors counted while slow: {errors}");
        // Tracker requests are still acknowledged from the spool meanwhile.
        std::thread::sleep(Duration::from_secs(2));
        proxy.faults.delay_ms.store(300, Ordering::Relaxed);
        sink.wait_until(
            "ready again when merely slow",
            Duration::from_secs(30),
            || ready(&http, &sink) == 200,
        );
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap()
    });
    assert!(run.refused.is_empty(), "refused: {:?}", run.refused);
    sink.wait_until("spool loaded", Duration::from_secs(60), || {
        sink.spool_empty()
    });
    check_nothing_acked_lost(&ch, &run, "slow ClickHouse");
    assert_eq!(ready(&http, &sink), 200);
}

#[test]
fn one_insert_answered_500_is_retried_and_nothing_is_lost() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ch = ClickHouse::start();
    migrate(&ch);
    let proxy = Proxy::start(ch.http_port);
    proxy.faults.fail_insert_no.store(1, Ordering::Relaxed);
    let purl = proxy.url();
    let sink = Sink::start(&[
        "--clickhouse-url",
        &purl,
        "--retry-max-backoff",
        "500ms",
        "--flush-interval",
        "200ms",
    ]);
    let run = load::send_ndjson(&sink.url("/e"), 0, 40, PER_REQUEST, 2, || false);
    assert!(run.refused.is_empty(), "refused: {:?}", run.refused);
    sink.wait_until("spool loaded", Duration::from_secs(60), || {
        sink.spool_empty()
    });
    assert_eq!(proxy.faults.failed.load(Ordering::Relaxed), 1);
    assert!(proxy.faults.inserts_seen.load(Ordering::Relaxed) >= 2);
    let errors = sink.metric("sink_clickhouse_errors_total");
    assert!(errors >= 1.0, "the 500 is counted: {errors}");
    let (distinct, rows) = check_nothing_acked_lost(&ch, &run, "one insert 500");
    // The refused insert never reached ClickHouse: exactly once here.
    assert_eq!((distinct, rows), (run.acked.rows, run.acked.rows));
    let r = reqwest::blocking::get(sink.url("/readyz")).unwrap();
    assert_eq!(r.status(), 200);
}
