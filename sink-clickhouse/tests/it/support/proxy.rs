//! A fault-injecting TCP proxy on loopback in front of ClickHouse's HTTP port: it can
//! delay every connection's first bytes (ClickHouse answering slowly), or answer
//! HTTP 500 instead of forwarding the Nth `INSERT` (one failed insert). Ports
//! 19700-19799. Threads stop when the proxy is dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the proxy does.
#[derive(Debug, Default)]
pub struct Faults {
    /// Milliseconds to wait before forwarding a request's first bytes.
    pub delay_ms: AtomicU64,
    /// Answer 500 to the `INSERT` with this number (1-based; 0: never).
    pub fail_insert_no: AtomicU64,
    /// INSERT requests seen so far.
    pub inserts_seen: AtomicU64,
    /// 500s answered.
    pub failed: AtomicU64,
}

/// A running proxy.
pub struct Proxy {
    /// Its port.
    pub port: u16,
    /// Its faults (change them while it runs).
    pub faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> Proxy {
        let (listener, port) = (19700..=19799)
            .find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok().map(|l| (l, p)))
            .expect("a free port in 19700-19799");
        listener.set_nonblocking(true).unwrap();
        let faults = Arc::new(Faults::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (faults.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((c, _)) => {
                        let f = f.clone();
                        std::thread::spawn(move || {
                            let _ = handle(c, upstream, &f);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { port, faults, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One client connection = one request: read its head and `Content-Length` body, apply
/// the faults, forward it upstream with `Connection: close` (so ClickHouse closes after
/// answering, tells the client so, and every request passes through here inspected),
/// then copy the answer back until upstream closes.
fn handle(mut c: TcpStream, upstream: u16, f: &Faults) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = c.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let chunked = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .any(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        });
    // The sink streams its inserts (chunked): the whole body is read before it is
    // forwarded, as a `Content-Length` one is.
    while !body_complete(&buf[head_end + 4..], chunked, len) {
        let n = c.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let first_line = head.lines().next().unwrap_or("").to_ascii_uppercase();
    if first_line.contains("INSERT") {
        let no = f.inserts_seen.fetch_add(1, Ordering::Relaxed) + 1;
        if no == f.fail_insert_no.load(Ordering::Relaxed) {
            f.failed.fetch_add(1, Ordering::Relaxed);
            let body = "Code: 999. DB::Exception: injected by the test proxy\n";
            c.write_all(
                format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )?;
            let _ = c.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    let delay = f.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    let mut new_head: String = head
        .split("\r\n")
        .filter(|l| {
            !l.split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    new_head.push_str("Connection: close\r\n\r\n");
    let mut u = TcpStream::connect(("127.0.0.1", upstream))?;
    u.write_all(new_head.as_bytes())?;
    u.write_all(&buf[head_end + 4..])?;
    let _ = std::io::copy(&mut u, &mut c);
    let _ = c.shutdown(Shutdown::Both);
    Ok(())
}

/// Whether `body` is a whole request body: `len` bytes, or (`chunked`) a run of chunks
/// ending with the zero-size one (no trailers: the sink sends none).
fn body_complete(body: &[u8], chunked: bool, len: usize) -> bool {
    if !chunked {
        return body.len() >= len;
    }
    let mut at = 0;
    loop {
        let Some(eol) = body[at..].windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let line = String::from_utf8_lossy(&body[at..at + eol]);
        let size = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            // Not chunked framing after all: forward what came.
            return true;
        };
        at += eol + 2;
        if size == 0 {
            return body.len() >= at + 2;
        }
        at += size + 2;
        if body.len() < at {
            return false;
        }
    }
}
