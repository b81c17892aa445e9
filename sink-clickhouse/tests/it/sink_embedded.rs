//! The sink in its embedded default (no ClickHouse): HTTP API behaviour, Parquet files
//! read by pyarrow, duckdb and chdb, spool limit, SIGTERM.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::load::{self, Tally, UA};
use crate::support::sink::{Sink, TOKEN};

/// Runs tests/data/read_parquet.py over `dir`.
fn read_parquet(dir: &std::path::Path) -> Value {
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

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let sink = Sink::start(&["--client-rate", "1", "--client-burst", "5"]);
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
fn batches_need_the_token_and_a_repeated_id_is_stored_once() {
    let sink = Sink::start(&["--flush-interval", "200ms"]);
    let http = reqwest::blocking::Client::new();
    let (body, _) = load::arrow(0, 100);
    for auth in [None, Some("wrong-token-0123456789"), Some("")] {
        let mut rq = http.post(sink.url("/v1/batches")).body(body.clone());
        if let Some(a) = auth {
            rq = rq.bearer_auth(a);
        }
        let r = rq.send().unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "unauthorized");
    }
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.metric("sink_loaded_rows_total"), 0.0);
    assert_eq!(sink.metric("sink_events_accepted_total"), 0.0);
    // Same id twice: stored once.
    let post = || {
        http.post(sink.url("/v1/batches"))
            .bearer_auth(TOKEN)
            .header("x-batch-id", "abc-1")
            .body(body.clone())
            .send()
            .unwrap()
    };
    let r = post();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().unwrap()["accepted"], 100);
    let r = post();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["already_stored"], true);
    // Not CORS, garbage is a 400, never a 5xx.
    let r = http
        .post(sink.url("/v1/batches"))
        .bearer_auth(TOKEN)
        .body("garbage")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    sink.wait_until("rows loaded", Duration::from_secs(10), || {
        sink.metric("sink_loaded_rows_total") == 100.0
    });
    let v = read_parquet(&sink.data_dir().join("parquet"));
    assert_eq!(v["duckdb"]["rows"], 100);
}

/// `X-Batch-Ids`: one id per record batch, each checked on its own, so a redelivery
/// that regroups messages stores only the ones not stored before.
#[test]
fn batch_ids_deduplicate_each_record_batch() {
    let sink = Sink::start(&["--flush-interval", "200ms", "--max-batch-ids", "3"]);
    let http = reqwest::blocking::Client::new();
    let post = |ids: &str, runs: &[(u64, u64)]| {
        http.post(sink.url("/v1/batches"))
            .bearer_auth(TOKEN)
            // Ignored beside X-Batch-Ids (an older edge's id of the whole set).
            .header("x-batch-id", "whole-set")
            .header("x-batch-ids", ids)
            .body(load::arrow_runs(runs))
            .send()
            .unwrap()
    };
    let (a, b, c) = ((0, 10), (100, 20), (200, 40));
    let r = post("id-a,id-b", &[a, b]);
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    assert_eq!(
        (v["accepted"].as_u64(), v.get("already_stored_batches")),
        (Some(30), None)
    );
    // b again, grouped with c: only c's rows are stored.
    let r = post("id-b, id-c", &[b, c]);
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    assert_eq!(
        (v["accepted"].as_u64(), v["already_stored_batches"].as_u64()),
        (Some(40), Some(1))
    );
    // All three again: nothing stored.
    let r = post("id-a,id-b,id-c", &[a, b, c]);
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["accepted"], 0);
    assert_eq!(v["already_stored"], true);
    assert_eq!(v["already_stored_batches"], 3);
    // Ids and record batches must match one to one; at most --max-batch-ids ids.
    for (ids, runs, code) in [
        ("id-d", &[(300, 1), (400, 1)][..], "count_mismatch"),
        ("id-d,id-e", &[(300, 1)][..], "count_mismatch"),
        ("id-d,,id-e", &[(300, 1), (400, 1), (500, 1)][..], "invalid"),
        (
            "i1,i2,i3,i4",
            &[(300, 1), (400, 1), (500, 1), (600, 1)][..],
            "too_many",
        ),
    ] {
        let r = post(ids, runs);
        assert_eq!(r.status(), 400, "{ids}");
        let v: Value = r.json().unwrap();
        assert_eq!(v["error"]["field"], "x-batch-ids", "{ids}: {v}");
        assert_eq!(v["error"]["code"], code, "{ids}: {v}");
    }
    assert_eq!(sink.metric("sink_events_accepted_total"), 70.0);
    sink.wait_until("rows loaded", Duration::from_secs(10), || {
        sink.metric("sink_loaded_rows_total") == 70.0
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.metric("sink_loaded_rows_total"), 70.0);
    let v = read_parquet(&sink.data_dir().join("parquet"));
    assert_eq!(v["duckdb"]["rows"], 70);
    assert_eq!(v["duckdb"]["distinct_ids"], 70);
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

/// `body` posted to the sink's `/v1/batches` with the token and batch id `id`.
fn post_batch(sink: &Sink, body: Vec<u8>, id: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(sink.url("/v1/batches"))
        .bearer_auth(TOKEN)
        .header("x-batch-id", id)
        .body(body)
        .send()
        .unwrap()
}

#[test]
fn batch_limits_at_and_past() {
    let post = post_batch;
    // Rows.
    let sink = Sink::start(&["--max-batch-rows", "100"]);
    assert_eq!(post(&sink, load::arrow(0, 100).0, "r1").status(), 202);
    let r = post(&sink, load::arrow(1000, 101).0, "r2");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "body");
    // Batch id length: 255 bytes is fine, 256 is not.
    assert_eq!(
        post(&sink, load::arrow(2000, 1).0, &"i".repeat(255)).status(),
        202
    );
    let r = post(&sink, load::arrow(3000, 1).0, &"i".repeat(256));
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "x-batch-id");
    drop(sink);
    // Bytes.
    let (body, _) = load::arrow(0, 100);
    let limit = body.len().to_string();
    let sink = Sink::start(&["--max-batch-bytes", &limit]);
    assert_eq!(post(&sink, body.clone(), "b1").status(), 202);
    let mut over = body;
    over.push(0);
    let r = post(&sink, over, "b2");
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "body_too_large"
    );
}

/// `--max-ipc-expansion` and `--min-ipc-decoded-bytes` bound what a `/v1/batches` body
/// may decode to: a batch the defaults take is taken at each bound alone, and refused
/// (400 naming `body`, nothing stored) one below both — were either value ignored, its
/// default (64×, 16 MiB) would take it. The floor is given by its env var there.
#[test]
fn ipc_decode_limits_at_and_past() {
    let (body, _) = load::arrow(0, 1000);
    let decoded = ingest_core::scan_ipc(&body).unwrap().decoded_bytes;
    let len = body.len();
    // The smallest expansion that covers the body; at least 2, so that one less exists.
    let fits = decoded.div_ceil(len);
    assert!(fits >= 2, "{decoded} bytes decoded from {len}");
    let (fits_s, decoded_s) = (fits.to_string(), decoded.to_string());
    for (i, args) in [
        [
            "--max-ipc-expansion",
            &fits_s,
            "--min-ipc-decoded-bytes",
            "0",
        ],
        [
            "--max-ipc-expansion",
            "1",
            "--min-ipc-decoded-bytes",
            &decoded_s,
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let sink = Sink::start(&args);
        let r = post_batch(&sink, body.clone(), &format!("at-{i}"));
        assert_eq!(r.status(), 202, "{args:?}: {}", r.text().unwrap());
    }
    let floor = (decoded - 1).to_string();
    let sink = Sink::start_with_env(
        &["--max-ipc-expansion", &(fits - 1).to_string()],
        &[("SINK_MIN_IPC_DECODED_BYTES", &floor)],
    );
    let r = post_batch(&sink, body, "past");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["field"], "body", "{v}");
    let reason = v["error"]["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("more than {floor} bytes")), "{v}");
    assert_eq!(sink.metric("sink_events_accepted_total"), 0.0);
}

#[test]
fn damaged_arrow_bodies_are_a_400_never_a_500() {
    // A batch whose schema declares `event_id` of a negative fixed width: arrow-ipc's
    // reader panicked on it (the catch-panic layer then answered 500). Found by
    // flipping the sign bit of each byte in turn until the stream scan names it.
    let (body, _) = load::arrow(0, 10);
    let bad = (0..body.len())
        .map(|i| {
            let mut b = body.clone();
            b[i] ^= 0x80;
            b
        })
        .find(|b| {
            ingest_core::scan_ipc(b).is_err_and(|e| e.to_string().contains("negative fixed width"))
        })
        .expect("a byte of event_id's width");
    let sink = Sink::start(&[]);
    let post = |body: Vec<u8>, id: &str| post_batch(&sink, body, id);
    let r = post(bad, "bad");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "body");
    // Every other single-byte change of the stream: a 2xx or a 4xx, never a 5xx.
    for i in (0..body.len()).step_by(7) {
        let mut b = body.clone();
        b[i] ^= 0xFF;
        let status = post(b, &format!("flip-{i}")).status();
        assert!(status.as_u16() < 500, "byte {i}: {status}");
    }
    assert_eq!(post(body, "good").status(), 202);
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
