//! The worker's routes, in queue mode and in direct mode, against a sink.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::{http, require, serial, Edge};
use crate::sink::{Row, Sink};

const TOKEN: &str = "edge-it-token";

/// Sites: `example.com` (no limit), `flood.example` (for the rate limit), and
/// `over.example` on the free plan, seeded 20 000 events over its 10 000 since the start
/// of the month (so past its 3-day grace unless the month is younger than that).
fn site_vars() -> Vec<(&'static str, String)> {
    let (month_start, _) = ingest_core::month_bounds(now_ms());
    vec![
        (
            "SITES",
            r#"{"sites":{"example.com":{"plan":"unlimited"},"flood.example":{"plan":"unlimited"},"over.example":{"plan":"free"}}}"#
                .to_owned(),
        ),
        (
            "SITE_USAGE",
            format!(r#"{{"over.example":{{"month_to_date":20000,"over_since_ms":{month_start}}}}}"#),
        ),
        ("RATE_LIMIT", r#"{"rate_per_sec":1,"burst":250}"#.to_owned()),
    ]
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

const PLAUSIBLE: &str = r#"{"n":"pageview","u":"https://example.com/from-plausible?utm_source=newsletter","d":"example.com","r":"https://www.google.com/search?q=x","w":1280}"#;

fn own_batch(tag: &str) -> String {
    (1..=3)
        .map(|i| {
            format!(
                r#"{{"site":"example.com","url":"https://example.com/{tag}/{i}","name":"pageview","screen_width":390,"props":{{"tag":"{tag}"}},"ttfb_ms":12,"cls":0.01}}"#
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn arrived(sink: &Sink, what: &str, pred: impl Fn(&[Row]) -> bool) -> Vec<Row> {
    crate::harness::wait_for(what, Duration::from_secs(60), || {
        let rows = sink.rows();
        pred(&rows).then_some(rows)
    })
}

fn has_path(rows: &[Row], path: &str) -> bool {
    rows.iter().any(|r| r.pathname == path)
}

/// Valid Plausible body and own-format NDJSON → 202, and the events reach the sink.
fn valid_events_arrive(edge: &Edge, sink: &Sink, tag: &str) -> Duration {
    let r = http(
        "POST",
        &edge.url("/api/event"),
        &[("Content-Type", "text/plain")],
        Some(PLAUSIBLE.as_bytes()),
    );
    assert_eq!(
        r.status,
        202,
        "plausible: {:?}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["accepted"], 1);
    let batch = own_batch(tag);
    let r = http(
        "POST",
        &edge.url("/e"),
        &[("Content-Type", "application/x-ndjson")],
        Some(batch.as_bytes()),
    );
    assert_eq!(r.status, 202, "own: {:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["accepted"], 3);
    let sent = Instant::now();
    let rows = arrived(
        sink,
        "the plausible and own-format events at the sink",
        |rows| {
            has_path(rows, "/from-plausible")
                && (1..=3).all(|i| has_path(rows, &format!("/{tag}/{i}")))
        },
    );
    let took = sent.elapsed();
    let p = rows
        .iter()
        .find(|r| r.pathname == "/from-plausible")
        .unwrap();
    assert_eq!(
        (p.site_id.as_str(), p.name.as_str()),
        ("example.com", "pageview")
    );
    assert_ne!(p.visitor_id, 0, "visitor_id is computed at the edge");
    let o = rows
        .iter()
        .find(|r| r.pathname == format!("/{tag}/1"))
        .unwrap();
    assert_eq!(o.props, vec![("tag".to_owned(), tag.to_owned())]);
    took
}

#[test]
fn queue_mode_end_to_end() {
    let _serial = serial();
    require("gzip", "apt-get install gzip");
    let sink = Sink::start("queue", 19340, TOKEN);
    let edge = Edge::start("queue", 19310, sink.url(), TOKEN, false, &site_vars());

    // script.js: type, cache headers, and the gzip budget of the served bytes.
    let r = http("GET", &edge.url("/script.js"), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert!(r.header("cache-control").unwrap_or("").contains("max-age="));
    let gz = gzip_len(&r.body);
    assert!(gz <= 1536, "script.js is {gz} bytes gzipped, over 1536");
    eprintln!("script.js: {} bytes, {gz} bytes gzip -9", r.body.len());

    // CORS preflight.
    let r = http(
        "OPTIONS",
        &edge.url("/api/event"),
        &[
            ("Origin", "https://example.com"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    assert!(
        r.status == 204 || r.status == 200,
        "preflight: {}",
        r.status
    );
    // ingest-core's preflight headers, the ones the sink answers too.
    for (name, value) in ingest_core::CORS_PREFLIGHT_HEADERS {
        assert_eq!(r.header(name), Some(value), "preflight: {name}");
    }

    valid_events_arrive(&edge, &sink, "queued");

    // The pixel answers a GIF and its event arrives.
    let r = http(
        "GET",
        &edge.url("/e.gif?site=example.com&url=https%3A%2F%2Fexample.com%2Fpixel"),
        &[],
        None,
    );
    assert_eq!(r.status, 202);
    assert_eq!(r.header("content-type"), Some("image/gif"));
    assert_eq!(&r.body[..6], b"GIF89a");
    arrived(&sink, "the pixel event", |rows| has_path(rows, "/pixel"));

    // Invalid → 400 JSON naming the field and the reason; never a 5xx.
    let r = http(
        "POST",
        &edge.url("/e"),
        &[],
        Some(br#"{"url":"https://example.com/"}"#),
    );
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["error"]["field"], "site", "{v}");
    assert!(v["error"]["reason"].as_str().is_some_and(|s| !s.is_empty()));
    let r = http("POST", &edge.url("/api/event"), &[], Some(b"{not json"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["field"], "body");
    let r = http(
        "POST",
        &edge.url("/e"),
        &[],
        Some(br#"{"site":"unknown.example","url":"https://unknown.example/"}"#),
    );
    assert_eq!(r.status, 400, "a site not in SITES is refused");
    let r = http("POST", &edge.url("/e"), &[], Some(&vec![b' '; 300 * 1024]));
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["field"], "body");

    // Over quota past grace → a friendly refusal with Retry-After.
    let r = http(
        "POST",
        &edge.url("/e"),
        &[],
        Some(br#"{"site":"over.example","url":"https://over.example/"}"#),
    );
    let (month_start, _) = ingest_core::month_bounds(now_ms());
    if now_ms() - month_start > 3 * 86_400_000 + 60_000 {
        assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(v["error"]["code"], "quota_exceeded", "{v}");
        assert!(v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("over.example"));
        let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=31 * 86_400).contains(&secs), "Retry-After {secs}");
    } else {
        // The first 3 days of a month: the crossing is still within the free plan's
        // grace, so the event is accepted (the refusal is unit-tested in quota.rs).
        assert_eq!(r.status, 202, "within grace");
    }

    // Over the rate (burst 250 events, 1/s): 100-event requests until 429.
    let flood: String = (0..100)
        .map(|i| format!(r#"{{"site":"flood.example","url":"https://flood.example/{i}"}}"#))
        .collect::<Vec<_>>()
        .join("\n");
    let mut statuses = Vec::new();
    let limited = loop {
        let r = http("POST", &edge.url("/e"), &[], Some(flood.as_bytes()));
        statuses.push(r.status);
        if r.status == 429 || statuses.len() >= 6 {
            break r;
        }
    };
    assert_eq!(limited.status, 429, "statuses: {statuses:?}");
    assert_eq!(
        statuses,
        [202, 202, 429],
        "burst 250 admits two requests of 100"
    );
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(limited.json()["error"]["code"], "rate_limited");
}

#[test]
fn direct_mode_end_to_end() {
    let _serial = serial();
    let sink = Sink::start("direct", 19341, TOKEN);
    let edge = Edge::start("direct", 19320, sink.url(), TOKEN, true, &[]);
    let took = valid_events_arrive(&edge, &sink, "direct");
    eprintln!("direct mode: events at the sink {took:?} after the 202");
    let r = http("POST", &edge.url("/e"), &[], Some(br#"{"site":"a.com"}"#));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["field"], "url");
}

fn gzip_len(bytes: &[u8]) -> usize {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait_with_output().unwrap().stdout.len()
}

/// Hostile bodies in queue mode: a chunked body (no `Content-Length`) over the limit is
/// refused with the 413 JSON as soon as it passes the limit, not after it was read
/// whole; an event too large for a Queue message is rejected alone (202, its index in
/// `rejected`), the request's other events enqueued.
#[test]
fn queue_mode_hostile_bodies() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let _serial = serial();
    let sink = Sink::start("hostile", 19348, TOKEN);
    // A body limit of 256 KiB, so one event can be over the Queue's 128 KB message
    // limit once serialized.
    let vars = [("MAX_BODY_BYTES", "262144".to_owned())];
    let edge = Edge::start("hostile", 19370, sink.url(), TOKEN, false, &vars);

    // 1. Chunked, 16 MiB paced over seconds: the 413 comes while it is still being sent.
    let mut conn = TcpStream::connect("127.0.0.1:19370").expect("connect to the edge");
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        conn,
        "POST /e HTTP/1.1\r\nHost: 127.0.0.1:19370\r\nUser-Agent: {}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        crate::harness::browser_ua()
    )
    .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let total = 16 << 20;
    let writer = {
        let (mut conn, sent) = (conn.try_clone().unwrap(), sent.clone());
        std::thread::spawn(move || {
            let chunk = vec![b' '; 16 * 1024];
            while sent.load(Ordering::SeqCst) < total {
                let ok = write!(conn, "{:x}\r\n", chunk.len()).is_ok()
                    && conn.write_all(&chunk).is_ok()
                    && conn.write_all(b"\r\n").is_ok();
                if !ok {
                    return;
                }
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = conn.write_all(b"0\r\n\r\n");
        })
    };
    let mut reader = BufReader::new(conn);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("a reply");
    let sent_at_reply = sent.load(Ordering::SeqCst);
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    let _ = writer.join();
    let rest = String::from_utf8_lossy(&rest);
    assert!(status_line.contains(" 413 "), "{status_line}{rest}");
    let body = rest.split("\r\n\r\n").nth(1).unwrap_or_default();
    // The body may itself be chunked: its JSON object is between the outer braces.
    let json = &body[body.find('{').unwrap_or(0)..=body.rfind('}').unwrap_or(0)];
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {rest}"));
    assert_eq!(v["error"]["field"], "body", "{v}");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");
    assert!(
        sent_at_reply < total / 2,
        "the 413 came after {sent_at_reply} of {total} bytes: the body was read whole"
    );

    // 2. One event too large for a Queue message once serialized (control characters
    // are 1 byte decoded, 6 as JSON), between two ordinary ones.
    let escaped = "\\u0001".repeat(2000);
    let props: Vec<String> = (0..20).map(|i| format!(r#""p{i}":"{escaped}""#)).collect();
    let big = format!(
        r#"{{"site":"example.com","url":"https://example.com/big","props":{{{}}}}}"#,
        props.join(",")
    );
    let body = format!(
        "{}\n{big}\n{}",
        r#"{"site":"example.com","url":"https://example.com/hostile/0"}"#,
        r#"{"site":"example.com","url":"https://example.com/hostile/2"}"#
    );
    assert!(body.len() < 262_144, "{} bytes", body.len());
    let r = http("POST", &edge.url("/e"), &[], Some(body.as_bytes()));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["accepted"], 2, "{v}");
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{v}");
    assert_eq!(rejected[0]["index"], 1, "{v}");
    assert_eq!(rejected[0]["field"], "props", "{v}");
    assert_eq!(rejected[0]["code"], "too_large", "{v}");
    arrived(&sink, "the two ordinary events", |rows| {
        has_path(rows, "/hostile/0") && has_path(rows, "/hostile/2")
    });
}
