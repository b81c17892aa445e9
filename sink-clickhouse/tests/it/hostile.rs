//! Hostile input against the running sink (embedded mode, default limits): each case
//! gets a specified 4xx with a JSON body naming the reason, the sink stays healthy
//! (`/healthz` 200 afterwards) and its memory stays bounded (VmRSS / VmHWM from
//! `/proc/<pid>/status`).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::load::UA;
use crate::support::raw::{self, Reply};
use crate::support::sink::Sink;

/// The default `--max-body-bytes` (256 KiB): these tests run with the defaults.
const MAX_BODY: usize = 256 * 1024;
/// What one sink may hold in memory while under these attacks.
const RSS_BOUND: u64 = 256 << 20;

fn post_e(port: u16, body: &[u8], content_type: Option<&str>) -> Reply {
    let mut head = format!("POST /e HTTP/1.1\r\nUser-Agent: {UA}");
    if let Some(ct) = content_type {
        head.push_str(&format!("\r\nContent-Type: {ct}"));
    }
    raw::request(port, &head, body)
}

/// A 4xx whose JSON body names a field, a code and a reason; returns the code.
fn refused(r: &Reply, status: u16, what: &str) -> String {
    assert_eq!(
        r.status,
        status,
        "{what}: body {:?}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    for k in ["field", "code", "reason"] {
        assert!(v["error"][k].is_string(), "{what}: error.{k} missing: {v}");
    }
    v["error"]["code"].as_str().unwrap().to_owned()
}

fn healthy(sink: &Sink) {
    let r = reqwest::blocking::get(sink.url("/healthz")).expect("healthz");
    assert_eq!(r.status(), 200);
}

fn bounded(sink: &Sink, what: &str) -> (u64, u64) {
    let (rss, hwm) = raw::memory(raw::sink_pid(sink.port));
    eprintln!(
        "{what}: sink VmRSS {} MiB, VmHWM {} MiB",
        rss >> 20,
        hwm >> 20
    );
    assert!(hwm < RSS_BOUND, "{what}: VmHWM {hwm} over {RSS_BOUND}");
    (rss, hwm)
}

/// A valid one-event body of exactly `n` bytes (a long prop value fills it).
fn body_of(n: usize) -> Vec<u8> {
    let head = r#"{"site":"a.com","url":"https://a.com/","props":{"k":""#;
    let tail = r#""}}"#;
    format!("{head}{}{tail}", "x".repeat(n - head.len() - tail.len())).into_bytes()
}

#[test]
fn body_limit_at_and_past_and_a_10_mb_string_are_never_buffered_whole() {
    let sink = Sink::start(&[]);
    let port = sink.port;
    let before = bounded(&sink, "start");
    // At the limit: the body is read, then the prop value is over its own limit
    // (2000 chars) — a 400 naming `props`, never a 413.
    let r = post_e(port, &body_of(MAX_BODY), Some("application/json"));
    let code = refused(&r, 400, "body at the limit");
    assert_ne!(code, "body_too_large");
    // One past, announced by Content-Length: refused from the headers.
    let r = post_e(port, &body_of(MAX_BODY + 1), Some("application/json"));
    assert_eq!(refused(&r, 413, "one past"), "body_too_large");
    // The unread body makes the connection unusable: the reply says so.
    assert_eq!(r.header("connection"), Some("close"));
    // One past, chunked (no length to refuse from): the read is capped.
    let r = raw::request_chunked(
        port,
        &format!("POST /e HTTP/1.1\r\nUser-Agent: {UA}"),
        &body_of(MAX_BODY + 1),
    );
    assert_eq!(refused(&r, 413, "one past, chunked"), "body_too_large");
    // A 10 MB string, with and without a length, on every body route.
    let big = body_of(10_000_000);
    for path in ["/e", "/api/event"] {
        let head = format!("POST {path} HTTP/1.1\r\nUser-Agent: {UA}");
        let r = raw::request(port, &head, &big);
        assert_eq!(refused(&r, 413, "10 MB"), "body_too_large");
        let r = raw::request_chunked(port, &head, &big);
        assert_eq!(refused(&r, 413, "10 MB chunked"), "body_too_large");
    }
    healthy(&sink);
    let (_, hwm) = bounded(&sink, "after 10 MB bodies");
    // Never buffered whole: 4 × 10 MB went by, the peak grew by far less.
    assert!(
        hwm < before.1 + (20 << 20),
        "VmHWM grew from {} to {hwm}",
        before.1
    );
}

/// The default `--max-url-bytes` and `--max-header-bytes`.
const MAX_URL: usize = 16 << 10;
const MAX_HEADERS: usize = 32 << 10;
/// hyper's read buffer of a connection (`server::listen::MAX_CONNECTION_BUFFER`).
const HYPER_BUFFER: usize = 64 << 10;
/// The default `--max-headers`, and its ceiling (one under hyper's own count).
const MAX_HEADER_COUNT: usize = 64;
const MAX_HEADER_COUNT_CEILING: usize = 99;

/// A pixel request with exactly `count` header lines (`raw::request`'s three and
/// User-Agent included).
fn pixel_with_headers(port: u16, count: usize) -> Reply {
    let extra: String = (0..count - 4).map(|i| format!("\r\nX-H{i}: v")).collect();
    raw::request(
        port,
        &format!(
            "GET /e.gif?site=a.com&url=https%3A%2F%2Fa.com%2F HTTP/1.1\r\nUser-Agent: {UA}{extra}"
        ),
        b"",
    )
}

/// A pixel request whose target is exactly `target` bytes and whose headers, counted
/// as the sink counts them (name + value + 4 each), are exactly `headers` bytes.
fn pixel_sized(port: u16, target: usize, headers: usize) -> Reply {
    let head = "/e.gif?site=a.com&url=https%3A%2F%2Fa.com%2F&_=";
    let t = format!("{head}{}", "x".repeat(target - head.len()));
    // `raw::request` adds Host (17 bytes), Content-Length: 0 (19), Connection (19).
    let fixed = ("user-agent".len() + UA.len() + 4) + 17 + 19 + 19 + ("x-pad".len() + 4);
    let pad = "p".repeat(headers - fixed);
    raw::request(
        port,
        &format!("GET {t} HTTP/1.1\r\nUser-Agent: {UA}\r\nX-Pad: {pad}"),
        b"",
    )
}

fn is_gif(r: &Reply, what: &str) {
    assert_eq!(
        r.status,
        200,
        "{what}: {:?}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("content-type"), Some("image/gif"), "{what}");
}

/// The sink's own refusal of a request head, readable by the tracker's page.
fn head_refused(r: &Reply, status: u16, field: &str, code: &str, what: &str) {
    assert_eq!(refused(r, status, what), code, "{what}");
    assert_eq!(r.json()["error"]["field"], field, "{what}");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{what}");
    assert_eq!(r.header("connection"), Some("close"), "{what}");
}

#[test]
fn request_targets_and_headers_at_and_past_their_limits_get_json_and_past_hyper_s_buffer_a_4xx() {
    let sink = Sink::start(&[]);
    let port = sink.port;
    // Small headers: the target alone, at its limit and one past.
    is_gif(&pixel_sized(port, MAX_URL, 1024), "target at the limit");
    let r = pixel_sized(port, MAX_URL + 1, 1024);
    head_refused(&r, 414, "url", "url_too_long", "target one past");
    let reason = r.json()["error"]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains(&(MAX_URL + 1).to_string()), "{reason}");
    // A short target: the headers at their limit and one past.
    is_gif(&pixel_sized(port, 100, MAX_HEADERS), "headers at the limit");
    let r = pixel_sized(port, 100, MAX_HEADERS + 1);
    head_refused(&r, 431, "headers", "headers_too_large", "headers one past");
    // Both at their limits at once still fit hyper's buffer; one past either is ours.
    is_gif(
        &pixel_sized(port, MAX_URL, MAX_HEADERS),
        "both at the limits",
    );
    let r = pixel_sized(port, MAX_URL + 1, MAX_HEADERS);
    head_refused(&r, 414, "url", "url_too_long", "both, target one past");
    let r = pixel_sized(port, MAX_URL, MAX_HEADERS + 1);
    head_refused(
        &r,
        431,
        "headers",
        "headers_too_large",
        "both, headers one past",
    );
    // The header count at its limit and one past.
    is_gif(
        &pixel_with_headers(port, MAX_HEADER_COUNT),
        "header count at the limit",
    );
    let r = pixel_with_headers(port, MAX_HEADER_COUNT + 1);
    head_refused(
        &r,
        431,
        "headers",
        "too_many_headers",
        "header count one past",
    );
    let reason = r.json()["error"]["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains(&(MAX_HEADER_COUNT + 1).to_string()),
        "{reason}"
    );
    // Any route, a body route with a body included: the head is refused first.
    let r = raw::request(
        port,
        &format!(
            "POST /e?{} HTTP/1.1\r\nUser-Agent: {UA}",
            "q".repeat(MAX_URL)
        ),
        br#"{"site":"a.com","url":"https://a.com/"}"#,
    );
    head_refused(&r, 414, "url", "url_too_long", "POST /e with a long target");
    let r = raw::request(
        port,
        &format!("GET /nope?{} HTTP/1.1", "q".repeat(MAX_URL)),
        b"",
    );
    assert_eq!(refused(&r, 414, "unknown route"), "url_too_long");
    // Past hyper's own read buffer (or its 100 header lines) the request never reaches the
    // sink: hyper answers a bare 4xx itself. Only that it is a 4xx, and that the sink
    // lives on, is ours to assert.
    let q = format!("site=a.com&url={}", "x".repeat(MAX_BODY));
    let r = raw::request(port, &format!("GET /e.gif?{q} HTTP/1.1"), b"");
    assert!(
        (400..500).contains(&r.status),
        "pixel past the buffer: {}",
        r.status
    );
    let big = "p".repeat(2 * HYPER_BUFFER);
    let r = raw::request(
        port,
        &format!("GET /e.gif?site=a.com HTTP/1.1\r\nX-Pad: {big}"),
        b"",
    );
    assert!(
        (400..500).contains(&r.status),
        "headers past the buffer: {}",
        r.status
    );
    let many: String = (0..150).map(|i| format!("\r\nX-H{i}: v")).collect();
    let r = raw::request(port, &format!("GET /e.gif?site=a.com HTTP/1.1{many}"), b"");
    assert!((400..500).contains(&r.status), "150 headers: {}", r.status);
    healthy(&sink);
    bounded(&sink, "after oversized heads");
    drop(sink);
    // At their ceilings both limits together still fit hyper's buffer, and one header
    // over the count's ceiling is still under hyper's.
    let sink = Sink::start(&[
        "--max-url-bytes",
        "24KiB",
        "--max-header-bytes",
        "32KiB",
        "--max-headers",
        "99",
    ]);
    is_gif(
        &pixel_sized(sink.port, 24 << 10, 32 << 10),
        "both at the ceilings",
    );
    let r = pixel_sized(sink.port, (24 << 10) + 1, 32 << 10);
    head_refused(&r, 414, "url", "url_too_long", "ceilings, target one past");
    let r = pixel_sized(sink.port, 24 << 10, (32 << 10) + 1);
    head_refused(
        &r,
        431,
        "headers",
        "headers_too_large",
        "ceilings, headers one past",
    );
    is_gif(
        &pixel_with_headers(sink.port, MAX_HEADER_COUNT_CEILING),
        "header count at the ceiling",
    );
    let r = pixel_with_headers(sink.port, MAX_HEADER_COUNT_CEILING + 1);
    head_refused(
        &r,
        431,
        "headers",
        "too_many_headers",
        "ceiling, header count one past",
    );
    healthy(&sink);
}

#[test]
fn gzip_bodies_are_not_decompressed_so_a_gzip_bomb_is_a_400() {
    // The sink does not implement Content-Encoding: a gzip body is parsed as it is
    // (binary, not JSON) and refused 400; nothing is ever inflated.
    let sink = Sink::start(&[]);
    let out = Command::new("bash")
        .args(["-c", "head -c 200000000 /dev/zero | gzip -9 -c"])
        .output()
        .expect("bash and gzip are required for the gzip bomb");
    assert!(out.status.success() && out.stdout.len() < MAX_BODY);
    let bomb = out.stdout;
    for path in ["/e", "/api/event"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nUser-Agent: {UA}\r\nContent-Type: application/json\r\nContent-Encoding: gzip"
        );
        let r = raw::request(sink.port, &head, &bomb);
        let code = refused(&r, 400, "gzip bomb");
        eprintln!(
            "gzip bomb ({} bytes → 200 MB) on {path}: 400 {code}",
            bomb.len()
        );
    }
    healthy(&sink);
    bounded(&sink, "after the gzip bomb");
}

#[test]
fn malformed_json_deep_nesting_bad_utf8_overflows_and_duplicate_keys() {
    let sink = Sink::start(&[]);
    let port = sink.port;
    let deep = |n: usize| {
        let mut s = String::from(r#"{"site":"a.com","url":"https://a.com/","props":"#);
        s.push_str(&"[".repeat(n));
        s.push_str(&"]".repeat(n));
        s.push('}');
        s.into_bytes()
    };
    // 10^5 deep: inside an event, and as the whole body.
    let r = post_e(port, &deep(100_000), None);
    let code = refused(&r, 400, "nesting 10^5 in props");
    eprintln!("nesting 10^5: 400 {code}");
    let mut bare = "[".repeat(100_000).into_bytes();
    bare.extend(std::iter::repeat_n(b']', 100_000));
    refused(&post_e(port, &bare, None), 400, "bare nesting 10^5");
    let plausible = {
        let mut s = br#"{"n":"pageview","u":"https://a.com/","d":"a.com","p":"#.to_vec();
        s.extend(std::iter::repeat_n(b'{', 100_000));
        s
    };
    refused(
        &raw::request(
            port,
            &format!("POST /api/event HTTP/1.1\r\nUser-Agent: {UA}"),
            &plausible,
        ),
        400,
        "plausible nesting",
    );
    // Invalid UTF-8 in a string, and as the whole body.
    let r = post_e(
        port,
        b"{\"site\":\"a.com\",\"url\":\"https://a.com/\xff\xfe\"}",
        None,
    );
    refused(&r, 400, "invalid UTF-8 in a string");
    refused(
        &post_e(port, b"\xc3\x28\xa0\xa1", None),
        400,
        "invalid UTF-8 body",
    );
    // Lone surrogates, escaped (the raw bytes of one are invalid UTF-8 above).
    for s in [r"\ud800", r"\udfff", r"\ud800x", r"\ud800\u0041"] {
        let b = format!(r#"{{"site":"a.com","url":"https://a.com/{s}"}}"#);
        let r = post_e(port, b.as_bytes(), None);
        refused(&r, 400, &format!("lone surrogate {s}"));
    }
    // Numbers overflowing every integer type (u8..u128, i128), floats out of range.
    for n in [
        "65536",
        "-1",
        "4294967296",
        "18446744073709551616",
        "-9223372036854775809",
        "340282366920938463463374607431768211456",
        "1e400",
        "-1e400",
        "99999999999999999999999999999999999999999999999999999999999999999999999999",
        "1.5",
        "NaN",
    ] {
        // ingest-core clamps an integer width into u16 (documented on
        // `RawEvent::screen_width`); what is not a number it can clamp is refused,
        // naming the field. Never a 5xx.
        let b = format!(r#"{{"site":"a.com","url":"https://a.com/","screen_width":{n}}}"#);
        let r = post_e(port, b.as_bytes(), None);
        let v = r.json();
        match r.status {
            202 => assert_eq!(v["accepted"], 1, "screen_width {n}: {v}"),
            400 => {
                refused(&r, 400, &format!("screen_width {n}"));
            }
            s => panic!("screen_width {n}: {s} {v}"),
        }
        eprintln!("screen_width {n}: {} {v}", r.status);
        // The same numbers where a string is expected: refused.
        let b = format!(r#"{{"site":{n},"url":"https://a.com/"}}"#);
        refused(&post_e(port, b.as_bytes(), None), 400, &format!("site {n}"));
    }
    // Duplicate keys: refused, so no reader has to guess which one counts.
    let dup = br#"{"site":"a.com","site":"b.com","url":"https://a.com/"}"#;
    let r = post_e(port, dup, None);
    refused(&r, 400, "duplicate keys");
    assert_eq!(r.json()["error"]["field"], "site");
    healthy(&sink);
    bounded(&sink, "after malformed JSON");
}

#[test]
fn wrong_and_missing_content_types_are_ignored_the_route_decides_the_format() {
    // Browsers' sendBeacon sends text/plain and the Plausible script sends text/plain
    // too: the route decides the format, the Content-Type is not consulted.
    let sink = Sink::start(&[]);
    let ok = br#"{"site":"a.com","url":"https://a.com/"}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/json"),
        Some("application/xml"),
        Some("image/png"),
        Some("multipart/form-data; boundary=x"),
        Some("garbage"),
    ] {
        let r = post_e(sink.port, ok, ct);
        assert_eq!(r.status, 202, "content-type {ct:?}");
        assert_eq!(r.json()["accepted"], 1);
    }
    // A wrong content type does not make a bad body good.
    let r = post_e(sink.port, b"<xml/>", Some("application/xml"));
    refused(&r, 400, "xml body");
    healthy(&sink);
}

#[test]
fn a_client_sending_one_byte_a_second_is_cut_by_the_request_timeout() {
    let sink = Sink::start(&["--request-timeout", "3s"]);
    // The headers arrive whole, the body one byte a second: 408 after the timeout.
    let mut s = raw::connect(sink.port, Duration::from_secs(20));
    let body = br#"{"site":"a.com","url":"https://a.com/"}"#;
    s.write_all(
        format!(
            "POST /e HTTP/1.1\r\nHost: x\r\nUser-Agent: {UA}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let t0 = Instant::now();
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for b in body.iter() {
                if w.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let r = raw::read_reply(&mut s);
    let took = t0.elapsed();
    eprintln!("slow body: {} after {took:?}", r.status);
    assert_eq!(refused(&r, 408, "slow body"), "timeout");
    assert!(took < Duration::from_secs(8), "cut after {took:?}");
    drop(s);
    writer.join().unwrap();
    // Slow headers: hyper's header read timeout (= --request-timeout) closes the
    // connection. (axum::serve left it off; the sink serves with hyper directly.)
    let mut s = raw::connect(sink.port, Duration::from_secs(60));
    let t0 = Instant::now();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for b in b"POST /e HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if w.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let r = raw::read_reply(&mut s);
    let took = t0.elapsed();
    eprintln!("slow headers: status {} after {took:?}", r.status);
    assert!(
        took < Duration::from_secs(10),
        "slow headers held the connection {took:?}"
    );
    assert!(
        r.status == 0 || r.status == 408,
        "slow headers: {}",
        r.status
    );
    drop(s);
    writer.join().unwrap();
    // An idle connection (not a byte sent) is closed the same way.
    let mut s = raw::connect(sink.port, Duration::from_secs(60));
    let t0 = Instant::now();
    let r = raw::read_reply(&mut s);
    eprintln!(
        "idle connection: status {} after {:?}",
        r.status,
        t0.elapsed()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "idle held {:?}",
        t0.elapsed()
    );
    healthy(&sink);
}

#[test]
fn ten_thousand_idle_connections_do_not_stop_the_sink() {
    // A header deadline longer than the test, so all 10^4 are open at once.
    let sink = Sink::start(&["--request-timeout", "120s"]);
    let pid = raw::sink_pid(sink.port);
    let (rss0, _) = raw::memory(pid);
    let want = 10_000usize;
    let mut conns = Vec::with_capacity(want);
    let t0 = Instant::now();
    for i in 0..want {
        match std::net::TcpStream::connect(("127.0.0.1", sink.port)) {
            Ok(c) => conns.push(c),
            Err(e) => panic!("connection {i} refused: {e} (ulimit -n of the test process?)"),
        }
    }
    // Half of them start a request and stop mid-headers.
    for c in conns.iter_mut().step_by(2) {
        let _ = c.write_all(b"POST /e HTTP/1.1\r\nHost: x\r\n");
    }
    eprintln!(
        "{} idle connections open in {:?}",
        conns.len(),
        t0.elapsed()
    );
    std::thread::sleep(Duration::from_secs(2));
    let fds = raw::open_fds(pid);
    let (rss, hwm) = raw::memory(pid);
    eprintln!(
        "with {} idle connections: sink fds {fds}, VmRSS {} MiB (was {} MiB), VmHWM {} MiB",
        conns.len(),
        rss >> 20,
        rss0 >> 20,
        hwm >> 20
    );
    assert!(hwm < RSS_BOUND, "VmHWM {hwm}");
    assert!(
        fds >= want,
        "the sink holds {fds} fds for {want} connections"
    );
    // A normal client is served meanwhile.
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = http
        .post(sink.url("/e"))
        .header("user-agent", UA)
        .body(r#"{"site":"a.com","url":"https://a.com/"}"#)
        .send()
        .expect("a normal request while 10^4 connections idle");
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    assert_eq!(v["accepted"], 1);
    healthy(&sink);
    drop(conns);
    // The sink lets go of them.
    let back = raw::within(Duration::from_secs(10), || raw::open_fds(pid) < 200);
    assert!(back.is_some(), "fds still {}", raw::open_fds(pid));
}
