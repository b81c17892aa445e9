//! The sink in its embedded default (no ClickHouse): HTTP API behaviour, Parquet files
//! read by pyarrow, duckdb and chdb, spool limit, SIGTERM.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::load::{self, Tally, UA};
use crate::support::sink::{Sink, TOKEN};

/// Runs tests/data/read_parquet.py over `dir`.
pub(crate) fn read_parquet(dir: &std::path::Path) -> Value {
    // The checkout cargo runs this from, not the one the binary was built in (a shared
    // target folder may have kept a binary built at another path).
    let script = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("tests/data/read_parquet.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir)
        .output()
        .expect("python3 is required (with pyarrow, duckdb, chdb-core)");
    assert!(
        out.status.success(),
        "read_parquet.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from read_parquet.py")
}

fn check_reader(v: &Value, reader: &str, t: &Tally) {
    let r = &v[reader];
    assert_eq!(r["rows"].as_u64(), Some(t.rows), "{reader}: {r}");
    assert_eq!(r["distinct_ids"].as_u64(), Some(t.rows), "{reader}: {r}");
    assert_eq!(
        r["sum_screen_width"].as_u64(),
        Some(t.sum_screen_width),
        "{reader}"
    );
    for (site, n) in &t.per_site {
        assert_eq!(
            r["per_site"][site].as_u64(),
            Some(*n),
            "{reader} site {site}"
        );
    }
}

#[test]
fn parquet_files_are_read_alike_by_pyarrow_duckdb_and_chdb() {
    let sink = Sink::start(&["--flush-interval", "300ms", "--flush-rows", "2000"]);
    let run = load::send_ndjson(&sink.url("/e"), 0, 60, 100, 4, || false);
    assert!(run.refused.is_empty(), "{:?}", run.refused);
    let b = load::send_batches(
        &sink.url("/v1/batches"),
        TOKEN,
        1_000_000,
        3,
        1500,
        1,
        || false,
    );
    assert!(b.refused.is_empty(), "{:?}", b.refused);
    let mut t = run.acked.clone();
    t.add(&b.acked);
    assert_eq!(t.rows, 6000 + 4500);
    sink.wait_until("all rows in Parquet", Duration::from_secs(30), || {
        sink.metric("sink_loaded_rows_total") as u64 == t.rows
    });
    let v = read_parquet(&sink.data_dir().join("parquet"));
    assert!(
        v["files"].as_u64().unwrap() >= 2,
        "rotated into several files: {v}"
    );
    for r in ["pyarrow", "duckdb", "chdb"] {
        check_reader(&v, r, &t);
    }
    let cols: Vec<&str> = v["pyarrow"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cols, ingest_core::schema::COLUMNS.to_vec());
}

#[test]
fn api_replies_statuses_and_json_errors() {
    let sink = Sink::start(&["--max-body-bytes", "1000", "--max-events-per-request", "3"]);
    let http = reqwest::blocking::Client::new();
    let post = |path: &str, body: &str| {
        http.post(sink.url(path))
            .header("user-agent", UA)
            .body(body.to_owned())
            .send()
            .unwrap()
    };
    // Plausible as text/plain.
    let r = post(
        "/api/event",
        r#"{"n":"pageview","u":"https://a.com/x","d":"a.com"}"#,
    );
    assert_eq!(r.status(), 202);
    // Partly accepted: index + field + code + reason.
    let r = post(
        "/e",
        "{\"site\":\"a.com\",\"url\":\"https://a.com/\"}\n{\"site\":\"a.com\"}\n",
    );
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    assert_eq!(v["accepted"], 1);
    assert_eq!(v["rejected"][0]["index"], 1);
    assert_eq!(v["rejected"][0]["field"], "url");
    assert!(v["rejected"][0]["code"].is_string() && v["rejected"][0]["reason"].is_string());
    // Request-level error: 400 JSON naming the field.
    let r = post("/e", "{not json");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().unwrap();
    assert!(
        v["error"]["field"].is_string() && v["error"]["reason"].is_string(),
        "{v}"
    );
    // Events per request: at the limit and one past it.
    let ev = "{\"site\":\"a.com\",\"url\":\"https://a.com/\"}\n";
    assert_eq!(post("/e", &ev.repeat(3)).status(), 202);
    assert_eq!(post("/e", &ev.repeat(4)).status(), 400);
    // Body bytes: at the limit and one past it (a long prop value keeps it valid JSON).
    let body_of = |n: usize| {
        let head = r#"{"site":"a.com","url":"https://a.com/","props":{"k":""#;
        let tail = r#""}}"#;
        format!("{head}{}{tail}", "x".repeat(n - head.len() - tail.len()))
    };
    assert_eq!(post("/e", &body_of(1000)).status(), 202);
    let r = post("/e", &body_of(1001));
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "body_too_large"
    );
    // Pixel.
    let r = http
        .get(sink.url("/e.gif?site=a.com&url=https%3A%2F%2Fa.com%2Fp"))
        .header("user-agent", UA)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/gif");
    assert!(r.bytes().unwrap().starts_with(b"GIF89a"));
    // CORS: preflight from any origin, no credentials; /v1/batches is not CORS.
    let r = http
        .request(reqwest::Method::OPTIONS, sink.url("/e"))
        .header("origin", "https://elsewhere.example")
        .header("access-control-request-method", "POST")
        .send()
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let r = http
        .post(sink.url("/v1/batches"))
        .header("origin", "https://elsewhere.example")
        .send()
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // Health.
    assert_eq!(http.get(sink.url("/healthz")).send().unwrap().status(), 200);
    assert_eq!(http.get(sink.url("/readyz")).send().unwrap().status(), 200);
    let m = http
        .get(sink.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for name in [
        "sink_events_received",
        "sink_events_rejected",
        "sink_spool_bytes",
        "sink_loaded_rows",
        "sink_load_latency_seconds",
    ] {
        assert!(m.contains(name), "metric {name} missing");
    }
}

/// Requests of more events than the rate limiter's burst could never be admitted
/// (429 forever): the sink refuses to start with such flags, and says why.
#[test]
fn events_per_request_over_the_burst_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("sink-burst-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_sink-clickhouse"))
        .args(["serve", "--listen", "127.0.0.1:0", "--salt-secret", "s"])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--client-rate", "20", "--client-burst", "100"])
        .args(["--max-events-per-request", "101"])
        .env_remove("CLICKHOUSE_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning sink-clickhouse");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the sink") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            panic!("the sink started with 101 events per request and a burst of 100");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("the sink's output");
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!status.success(), "{text}");
    assert!(
        text.contains("--max-events-per-request") && text.contains("burst is 100"),
        "{text}"
    );
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let sink = Sink::start(&[
        "--client-rate",
        "1",
        "--client-burst",
        "5",
        "--max-events-per-request",
        "5",
    ]);
    let http = reqwest::blocking::Client::new();
    let ev = "{\"site\":\"a.com\",\"url\":\"https://a.com/\"}\n";
    let send = || {
        http.post(sink.url("/e"))
            .header("user-agent", UA)
            .body(ev.repeat(5))
            .send()
            .unwrap()
    };
    assert_eq!(send().status(), 202);
    let r = send();
    assert_eq!(r.status(), 429);
    let ra: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ra >= 1);
    assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "rate_limited");
    assert_eq!(sink.metric("sink_rate_limited_total"), 1.0);
}

#[test]
fn spool_limit_answers_503_then_recovers_by_itself() {
    // The Parquet dir is replaced by a file: the loader cannot write, the spool grows.
    let sink = Sink::start(&["--flush-interval", "100ms", "--spool-max-bytes", "200KiB"]);
    let pq = sink.data_dir().join("parquet");
    std::fs::remove_dir_all(&pq).unwrap();
    std::fs::write(&pq, b"not a dir").unwrap();
    let http = reqwest::blocking::Client::new();
    let mut acked = Tally::default();
    let mut got_503 = None;
    for i in 0..2000 {
        let (body, t) = load::ndjson(i * 100, 100);
        let r = http
            .post(sink.url("/e"))
            .header("user-agent", UA)
            .body(body)
            .send()
            .unwrap();
        match r.status().as_u16() {
            202 => acked.add(&t),
            503 => {
                got_503 = Some(r.headers()["retry-after"].to_str().unwrap().to_owned());
                let v: Value = r.json().unwrap();
                assert_eq!(v["error"]["code"], "spool_full");
                break;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    let ra = got_503.expect("the spool never filled");
    assert!(ra.parse::<u64>().unwrap() >= 1);
    assert_eq!(http.get(sink.url("/readyz")).send().unwrap().status(), 503);
    // Space comes back: the loader drains, the sink accepts again.
    std::fs::remove_file(&pq).unwrap();
    std::fs::create_dir(&pq).unwrap();
    sink.wait_until("spool drained", Duration::from_secs(60), || {
        http.get(sink.url("/readyz"))
            .send()
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    });
    let (body, t) = load::ndjson(10_000_000, 100);
    let r = http
        .post(sink.url("/e"))
        .header("user-agent", UA)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    acked.add(&t);
    sink.wait_until("all loaded", Duration::from_secs(60), || {
        sink.metric("sink_loaded_rows_total") as u64 == acked.rows
    });
    let v = read_parquet(&pq);
    check_reader(&v, "duckdb", &acked);
}

#[test]
fn sigterm_refuses_new_work_flushes_and_exits_0() {
    let mut sink = Sink::start(&[
        "--flush-interval",
        "10s",
        "--drain-delay",
        "1500ms",
        "--shutdown-timeout",
        "10s",
    ]);
    let run = load::send_ndjson(&sink.url("/e"), 0, 20, 50, 2, || false);
    assert_eq!(run.acked.rows, 1000);
    // The open segment is not sealed yet (10 s): shutdown must seal and load it.
    sink.sigterm();
    std::thread::sleep(Duration::from_millis(400));
    let http = reqwest::blocking::Client::new();
    assert_eq!(http.get(sink.url("/readyz")).send().unwrap().status(), 503);
    let (body, _) = load::ndjson(5000, 1);
    let r = http
        .post(sink.url("/e"))
        .header("user-agent", UA)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let st = sink.wait(Duration::from_secs(20));
    assert!(st.success(), "exit status {st}");
    let v = read_parquet(&sink.data_dir().join("parquet"));
    check_reader(&v, "pyarrow", &run.acked);
}

#[test]
fn kill_9_then_restart_loses_no_acknowledged_event() {
    let mut sink = Sink::start(&["--flush-interval", "200ms", "--flush-rows", "3000"]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let url = sink.url("/e");
    let run = std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            load::send_ndjson(&url, 0, 1_000_000, 50, 4, || {
                stop.load(std::sync::atomic::Ordering::Relaxed)
            })
        });
        std::thread::sleep(Duration::from_millis(1500));
        sink.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        h.join().unwrap()
    });
    assert!(run.acked.rows > 0);
    sink.restart();
    sink.wait_until("replay", Duration::from_secs(30), || sink.spool_empty());
    let v = read_parquet(&sink.data_dir().join("parquet"));
    // Parquet output is keyed by segment + record range: a replay rewrites the same file.
    let rows = v["duckdb"]["rows"].as_u64().unwrap();
    let distinct = v["duckdb"]["distinct_ids"].as_u64().unwrap();
    assert_eq!(rows, distinct, "duplicates after replay");
    assert!(
        distinct >= run.acked.rows,
        "lost acknowledged events: {distinct} < {}",
        run.acked.rows
    );
    for (site, n) in &run.acked.per_site {
        assert!(v["duckdb"]["per_site"][site].as_u64().unwrap() >= *n);
    }
}

#[test]
fn sites_file_refuses_unknown_sites_and_is_reloaded_when_it_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let sites = tmp.path().join("sites.toml");
    std::fs::write(
        &sites,
        "[sites.\"a.com\"]\nhostnames = [\"a.com\"]\nplan = \"free\"\n",
    )
    .unwrap();
    let sink = Sink::start(&["--sites", sites.to_str().unwrap()]);
    let http = reqwest::blocking::Client::new();
    let post = |site: &str, host: &str| {
        http.post(sink.url("/e"))
            .header("user-agent", UA)
            .body(format!(
                "{{\"site\":\"{site}\",\"url\":\"https://{host}/\"}}"
            ))
            .send()
            .unwrap()
    };
    assert_eq!(post("a.com", "a.com").status(), 202);
    let r = post("b.com", "b.com");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "unknown_site");
    let r = post("a.com", "evil.example");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "url");
    // The file changes: b.com is accepted without a restart.
    std::fs::write(
        &sites,
        "[sites.\"a.com\"]\nhostnames = [\"a.com\"]\nplan = \"free\"\n[sites.\"b.com\"]\nplan = \"growth\"\n",
    )
    .unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(&sites)
        .unwrap()
        .set_modified(later)
        .unwrap();
    sink.wait_until("sites file reloaded", Duration::from_secs(15), || {
        post("b.com", "b.com").status() == 202
    });
}
