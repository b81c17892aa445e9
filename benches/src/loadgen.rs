//! The end-to-end load generator: HTTP/1.1 POSTs over keep-alive connections, written
//! straight on tokio's TCP streams.
//!
//! Why not an HTTP client crate: the load generator shares the machine's two cores with
//! the sink and ClickHouse, so every microsecond it spends is taken from the system
//! under test (the same reason `wrk` is written the way it is). `reqwest` cost ≈ 0.35
//! µs of CPU per event at 100 events a request — about a tenth of everything the run
//! spends — for URL parsing, header maps, a connection pool and a response body stream
//! this tool never needs. What it does need is small: one request in flight per
//! connection, a status line, `Content-Length`, and a fresh connection when the server
//! closes one. Anything else in a response (chunked bodies, no length) is a failure,
//! counted and reported, never a hang: every read is bounded by the run's deadline.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::e2e::LoadReport;

/// One request: its range of the shared body, and its header lines (each ending in
/// `\r\n`; `host` and `content-length` are added) — NDJSON with a user agent and a
/// client address for `/e` ([`crate::sink_run::tracker_requests`]), or an Arrow batch with
/// its token and batch id for `/v1/batches` ([`crate::sink_run::edge_requests`]).
pub type Request = (Range<usize>, String);

/// A response head larger than this is a failure (the sink's are ≈ 200 bytes).
const MAX_HEAD: usize = 16 << 10;
/// A response body larger than this is a failure (the sink's are ≈ 50 bytes, more
/// with rejections).
const MAX_BODY: usize = 4 << 20;

/// POSTs each request (a range of `body` with its header lines) to `url`
/// (`http://host:port/path`), `concurrency` connections each with one request in
/// flight. Bounded: stops at `deadline`. A 429 or 503 is retried after a short pause
/// (the sink's back-pressure), at most 50 times.
pub async fn load(
    url: String,
    body: Bytes,
    requests: Vec<Request>,
    concurrency: usize,
    deadline: Duration,
) -> LoadReport {
    let Some((addr, path)) = split_url(&url) else {
        return LoadReport {
            failed: requests.len(),
            ..LoadReport::default()
        };
    };
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (addr, path, body, requests, next) = (
            addr.clone(),
            path.clone(),
            body.clone(),
            requests.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rep = LoadReport::default();
            let mut conn: Option<TcpStream> = None;
            let (mut req, mut resp) = (Vec::new(), Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((range, headers)) = requests.get(i) else {
                    break;
                };
                req.clear();
                req.extend_from_slice(
                    format!(
                        "POST {path} HTTP/1.1\r\nhost: {addr}\r\n{headers}content-length: {}\r\n\r\n",
                        range.len()
                    )
                    .as_bytes(),
                );
                req.extend_from_slice(&body[range.clone()]);
                let mut tries = 0;
                loop {
                    let Some(left) = deadline.checked_sub(t0.elapsed()) else {
                        rep.failed += 1;
                        break;
                    };
                    let sent = tokio::time::timeout(
                        left,
                        exchange(&mut conn, &addr, &req, &mut resp),
                    )
                    .await;
                    match sent {
                        Ok(Ok(s)) if (200..300).contains(&s) => {
                            rep.ok_requests += 1;
                            break;
                        }
                        Ok(Ok(429 | 503)) if tries < 50 => {
                            rep.retried += 1;
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        _ => {
                            // Another status, a transport error, a response this tool
                            // does not read, or the deadline: the connection's state is
                            // unknown, so the next request opens a new one.
                            conn = None;
                            rep.failed += 1;
                            break;
                        }
                    }
                }
            }
            rep
        }));
    }
    let mut total = LoadReport::default();
    for t in tasks {
        let r = t.await.expect("load task");
        total.ok_requests += r.ok_requests;
        total.retried += r.retried;
        total.failed += r.failed;
    }
    total.send_secs = t0.elapsed().as_secs_f64();
    total
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (addr, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!addr.is_empty()).then(|| (addr.to_owned(), path.to_owned()))
}

/// Sends `req` on the connection (opened first if there is none) and reads one
/// response; returns its status. The connection is kept unless the server closes it.
async fn exchange(
    conn: &mut Option<TcpStream>,
    addr: &str,
    req: &[u8],
    resp: &mut Vec<u8>,
) -> std::io::Result<u16> {
    let stream = match conn {
        Some(s) => s,
        None => {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            conn.insert(s)
        }
    };
    stream.write_all(req).await?;
    resp.clear();
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let head_end = loop {
        if let Some(i) = find(resp, b"\r\n\r\n") {
            break i + 4;
        }
        if resp.len() > MAX_HEAD {
            return Err(bad("response head too large"));
        }
        if read_more(stream, resp).await? == 0 {
            return Err(bad("connection closed before a response"));
        }
    };
    let head = std::str::from_utf8(&resp[..head_end]).map_err(|_| bad("head not UTF-8"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut length = None;
    let mut close = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked responses are not read"));
        }
    }
    let length = length.ok_or_else(|| bad("no content-length"))?;
    if length > MAX_BODY {
        return Err(bad("response body too large"));
    }
    while resp.len() < head_end + length {
        if read_more(stream, resp).await? == 0 {
            return Err(bad("connection closed inside a response"));
        }
    }
    if close {
        *conn = None;
    }
    Ok(status)
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(4096);
    stream.read_buf(buf).await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server on 127.0.0.1 that answers each request with the next of `replies`
    /// (whole raw responses), reading each request by its `content-length`; returns its
    /// address and how many requests it read.
    async fn server(replies: Vec<&'static str>) -> (String, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen = Arc::new(AtomicUsize::new(0));
        let replies = Arc::new(replies);
        let (s2, r2) = (seen.clone(), replies.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut c, _)) = l.accept().await else {
                    return;
                };
                let (seen, replies) = (s2.clone(), r2.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let end = loop {
                            if let Some(i) = find(&buf, b"\r\n\r\n") {
                                break i + 4;
                            }
                            if c.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                                return;
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len: usize = head
                            .split("content-length: ")
                            .nth(1)
                            .and_then(|s| s.split("\r\n").next())
                            .and_then(|s| s.parse().ok())
                            .unwrap();
                        while buf.len() < end + len {
                            c.read_buf(&mut buf).await.unwrap();
                        }
                        buf.drain(..end + len);
                        let n = seen.fetch_add(1, Ordering::SeqCst);
                        let r = replies[n.min(replies.len() - 1)];
                        c.write_all(r.as_bytes()).await.unwrap();
                        if r.contains("connection: close") {
                            return;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    const OK: &str = "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n{\"accepted\":1}";

    fn requests(n: usize) -> (Bytes, Vec<Request>) {
        let body = Bytes::from("{\"a\":1}\n".repeat(n));
        let reqs = (0..n)
            .map(|i| {
                (
                    i * 8..i * 8 + 8,
                    "content-type: application/x-ndjson\r\n".to_owned(),
                )
            })
            .collect();
        (body, reqs)
    }

    /// `load` to `http://{addr}/e`.
    async fn run(
        addr: &str,
        body: Bytes,
        reqs: Vec<Request>,
        conns: usize,
        secs: f64,
    ) -> LoadReport {
        let deadline = Duration::from_secs_f64(secs);
        load(format!("http://{addr}/e"), body, reqs, conns, deadline).await
    }

    #[tokio::test]
    async fn posts_every_request_over_kept_connections() {
        let (addr, seen) = server(vec![OK]).await;
        let (body, reqs) = requests(50);
        let r = run(&addr, body, reqs, 4, 20.0).await;
        assert_eq!((r.ok_requests, r.failed, r.retried), (50, 0, 0));
        assert_eq!(seen.load(Ordering::SeqCst), 50);
    }

    #[tokio::test]
    async fn retries_back_pressure_reconnects_after_close_and_counts_failures() {
        let busy = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
        let closing = "HTTP/1.1 202 Accepted\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}";
        let chunked = "HTTP/1.1 202 Accepted\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
        let bad = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        // One connection, in order: 503 (retried), close (then a new connection),
        // chunked (a failure), 400 (a failure), then 202s.
        let (addr, seen) = server(vec![busy, closing, chunked, bad, OK]).await;
        let (body, reqs) = requests(5);
        let r = run(&addr, body, reqs, 1, 20.0).await;
        assert_eq!((r.ok_requests, r.failed, r.retried), (3, 2, 1));
        assert_eq!(seen.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn stops_at_the_deadline_and_refuses_other_urls() {
        let (body, reqs) = requests(3);
        let r = load(
            "https://x/e".into(),
            body.clone(),
            reqs.clone(),
            2,
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(r.failed, 3);
        // A server that never answers: every request fails at the deadline.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                open.push(c);
            }
        });
        let t0 = Instant::now();
        let r = load(
            format!("http://{addr}/e"),
            body,
            reqs,
            1,
            Duration::from_millis(300),
        )
        .await;
        assert_eq!((r.ok_requests, r.failed), (0, 3));
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
