//! A site's monthly quota end to end, against a real ClickHouse 18.16: the plan's limit
//! is accepted, crossing it opens the grace period (still 202), past the grace the
//! site's events are refused with a 429 naming the site and saying when data is taken
//! again — while other sites' events in the same request are stored —, a restart
//! does not open the grace period again (the crossing is read back from ClickHouse),
//! and the next month accepts the site again. ClickHouse holds exactly the accepted rows.
//!
//! The grace period is days long and plans are fixed in code, so the sink runs under
//! Debian's libfaketime (`LD_PRELOAD`; the wall clock only — `DONT_FAKE_MONOTONIC`
//! keeps tokio's timers real): the test moves the sink's clock by rewriting the offset
//! file, with no test hook in the binary. The fake clock starts at noon on the 1st of
//! next month (the site crosses its limit on the 2nd), so the grace period never
//! straddles a month end whatever today is.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::sink_clickhouse::migrate;
use crate::support::clickhouse::ClickHouse;
use crate::support::load::UA;
use crate::support::sink::Sink;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const DAY_S: i64 = 86_400;

/// The free plan (ingest-core's `PLANS`): 10 000 events a month, 3 days of grace.
const FREE_EVENTS: u64 = 10_000;

fn real_now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Sets the sink's clock to `fake_s` (Unix seconds), as an offset from the real clock.
fn set_clock(file: &Path, fake_s: i64) {
    std::fs::write(file, format!("{:+}\n", fake_s - real_now_s())).expect("faketime file");
}

/// `n` page views of `site` as one NDJSON body, pathnames tagged with `tag`.
fn body(site: &str, tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"site\":\"{site}\",\"url\":\"https://{site}/{tag}/{i}\"}}\n"))
        .collect()
}

/// Posts an NDJSON body to `/e`: the status, the Retry-After header in seconds, the
/// JSON reply.
fn post(http: &reqwest::blocking::Client, sink: &Sink, body: String) -> (u16, Option<i64>, Value) {
    let r = http
        .post(sink.url("/e"))
        .header("user-agent", UA)
        .body(body)
        .send()
        .expect("post /e");
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse::<i64>().ok());
    (
        status,
        retry_after,
        r.json::<Value>().expect("a JSON reply"),
    )
}

fn count(ch: &ClickHouse, site: &str) -> u64 {
    ch.query(&format!(
        "SELECT count() FROM analytics.events WHERE site_id = '{site}'"
    ))
    .expect("count query")
    .trim()
    .parse()
    .expect("a count")
}

#[test]
fn quota_grace_then_429_then_next_month_with_a_real_clickhouse() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: apt-get install libfaketime (scripts/setup does it)"
    );
    let ch = ClickHouse::start();
    migrate(&ch);
    let tmp = tempfile::tempdir().unwrap();
    let sites = tmp.path().join("sites.toml");
    std::fs::write(
        &sites,
        "[sites.\"a.com\"]\nplan = \"free\"\n[sites.\"b.com\"]\nplan = \"unlimited\"\n",
    )
    .unwrap();
    // Noon on the 2nd of next month, real time.
    let (_, next_month_ms) = ingest_core::month_bounds(real_now_s() * 1000);
    let t0 = next_month_ms / 1000 + DAY_S + 12 * 3600;
    let (month_start_ms, month_end_ms) = ingest_core::month_bounds(t0 * 1000);
    let clock = tmp.path().join("faketime");
    set_clock(&clock, t0 - DAY_S);
    let url = ch.url();
    let mut sink = Sink::start_with_env(
        &[
            "--clickhouse-url",
            &url,
            "--sites",
            sites.to_str().unwrap(),
            "--flush-interval",
            "200ms",
        ],
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", clock.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    // The month's usage (none) is read from ClickHouse once at start; counting starts
    // after it.
    sink.wait_until(
        "the month-to-date usage read",
        Duration::from_secs(20),
        || sink.log_text().contains("month-to-date usage read"),
    );
    assert!(
        sink.log_text()
            .contains(&format!("month_start_ms={month_start_ms}")),
        "the sink does not run on the fake clock; log:\n{}",
        sink.log_text()
    );
    let http = reqwest::blocking::Client::new();
    let post = |sink: &Sink, body: String| post(&http, sink, body);

    // The plan's 10 000 events, over two days (the 1st and the 2nd): all accepted.
    for r in 0..FREE_EVENTS as usize / 100 {
        if r == FREE_EVENTS as usize / 200 {
            set_clock(&clock, t0);
        }
        let (status, _, v) = post(&sink, body("a.com", &format!("r{r}"), 100));
        assert_eq!((status, &v["accepted"]), (202, &Value::from(100)), "{v}");
    }
    // One more: over the limit, in grace (day 0 and day 2 of 3).
    let (status, _, v) = post(&sink, body("a.com", "grace0", 1));
    assert_eq!((status, &v["accepted"]), (202, &Value::from(1)), "{v}");
    sink.wait_until("the grace warning", Duration::from_secs(5), || {
        sink.log_text().contains("crossed its monthly quota")
    });
    set_clock(&clock, t0 + 2 * DAY_S);
    let (status, _, v) = post(&sink, body("a.com", "grace2", 1));
    assert_eq!((status, &v["accepted"]), (202, &Value::from(1)), "{v}");

    // Past the grace: a.com refused with a 429 that says why and until when.
    let t4 = t0 + 4 * DAY_S;
    set_clock(&clock, t4);
    let (status, retry_after, v) = post(&sink, body("a.com", "refused", 3));
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["field"], "site", "{v}");
    assert_eq!(v["error"]["code"], "quota_exceeded", "{v}");
    let reason = v["error"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("a.com") && reason.contains("10,000"), "{v}");
    let retry_after = retry_after.expect("a Retry-After header");
    let until_reset = month_end_ms / 1000 - t4;
    assert!(
        (retry_after - until_reset).abs() <= 60,
        "Retry-After {retry_after} s, expected about {until_reset} s (to the month's end)"
    );
    // A request mixing both sites: b.com's events stored, a.com's listed as refused.
    let mixed = body("b.com", "mixed", 2) + &body("a.com", "mixed", 2);
    let (status, _, v) = post(&sink, mixed);
    assert_eq!((status, &v["accepted"]), (202, &Value::from(2)), "{v}");
    let rejected = v["rejected"].as_array().expect("a rejected list");
    let refused: Vec<(u64, &str)> = rejected
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        refused,
        [(2, "quota_exceeded"), (3, "quota_exceeded")],
        "{v}"
    );
    assert!(sink.metric("sink_quota_refused_total") >= 2.0);

    // A restart forgets the sink's memory but not ClickHouse's: the usage read at start
    // finds a.com over its limit since its 10,001st row, so the grace period that ended
    // is not opened again.
    sink.wait_until(
        "the accepted rows so far in ClickHouse",
        Duration::from_secs(60),
        || count(&ch, "a.com") == FREE_EVENTS + 2 && count(&ch, "b.com") == 2,
    );
    let reads = |s: &Sink| s.log_text().matches("month-to-date usage read").count();
    let before = reads(&sink);
    sink.restart();
    sink.wait_until(
        "the usage read after the restart",
        Duration::from_secs(20),
        || reads(&sink) > before,
    );
    assert!(
        sink.log_text().contains("crossings_read=1"),
        "the restarted sink did not find a.com over its limit; log:\n{}",
        sink.log_text()
    );
    let (status, _, v) = post(&sink, body("a.com", "refused", 1));
    assert_eq!(status, 429, "after a restart, past the grace period: {v}");

    // The next month: a.com is accepted again.
    set_clock(&clock, month_end_ms / 1000 + DAY_S);
    let (status, _, v) = post(&sink, body("a.com", "next", 5));
    assert_eq!((status, &v["accepted"]), (202, &Value::from(5)), "{v}");

    // ClickHouse holds exactly what was accepted, stamped with the sink's clock.
    let expect_a = FREE_EVENTS + 2 + 5;
    sink.wait_until(
        "every accepted row in ClickHouse",
        Duration::from_secs(60),
        || count(&ch, "a.com") + count(&ch, "b.com") >= expect_a + 2,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(&ch, "a.com"), expect_a);
    assert_eq!(count(&ch, "b.com"), 2);
    let refused_rows = ch
        .query("SELECT count() FROM analytics.events WHERE pathname LIKE '/refused/%' OR (site_id = 'a.com' AND pathname LIKE '/mixed/%')")
        .unwrap();
    assert_eq!(refused_rows.trim(), "0");
    let first = ch
        .query("SELECT toUnixTimestamp(min(received_at)) FROM analytics.events")
        .unwrap();
    let first: i64 = first.trim().parse().unwrap();
    assert!(
        (first - (t0 - DAY_S)).abs() < 600,
        "first row received at {first}, the fake clock was at {}",
        t0 - DAY_S
    );
}
