//! Raw HTTP/1.1 over a `TcpStream` (for what a well-behaved client library will not
//! send: bytes one at a time, bodies cut short, thousands of idle sockets), and the
//! memory of a sink process read from `/proc/<pid>/status`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A parsed reply.
#[derive(Debug)]
pub struct Reply {
    /// Status code (0 when the connection closed before a status line).
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The body (as far as it was read).
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Connects to the sink on `port` with a read timeout.
pub fn connect(port: u16, read_timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(read_timeout)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads one reply from `s` (until the end of its `Content-Length` body or EOF).
pub fn read_reply(s: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(i);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let Some(head_end) = head_end else {
        return Reply {
            status: 0,
            headers: Vec::new(),
            body: buf,
        };
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    while len.is_none_or(|l| body.len() < l) {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// Sends `head` (request line + headers, without the blank line) and `body` with a
/// `Content-Length`, then reads the reply. Write errors are ignored: a server may
/// answer (and close) before reading a body it refuses.
pub fn request(port: u16, head: &str, body: &[u8]) -> Reply {
    let mut s = connect(port, Duration::from_secs(30));
    let msg = format!(
        "{head}\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(msg.as_bytes());
    let _ = s.write_all(body);
    read_reply(&mut s)
}

/// Sends `body` chunked (no `Content-Length`, so the server cannot refuse from the
/// headers and must cap what it reads), in pieces of 64 KiB.
pub fn request_chunked(port: u16, head: &str, body: &[u8]) -> Reply {
    let mut s = connect(port, Duration::from_secs(30));
    let msg = format!(
        "{head}\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let _ = s.write_all(msg.as_bytes());
    for c in body.chunks(64 * 1024) {
        if s.write_all(format!("{:x}\r\n", c.len()).as_bytes())
            .is_err()
            || s.write_all(c).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    read_reply(&mut s)
}

/// The PID of the sink listening on `port` (found by its `--listen` argument).
pub fn sink_pid(port: u16) -> u32 {
    let want = format!("127.0.0.1:{port}");
    for e in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(e) = e else { continue };
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let is_sink = args
            .first()
            .is_some_and(|a| a.ends_with(b"sink-clickhouse"));
        if is_sink
            && args
                .windows(2)
                .any(|w| w[0] == b"--listen" && w[1] == want.as_bytes())
        {
            return pid;
        }
    }
    panic!("no sink-clickhouse process listening on {want}");
}

/// `(VmRSS, VmHWM)` of `pid` in bytes.
pub fn memory(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kb = |key: &str| -> u64 {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{key} missing in /proc/{pid}/status"))
            * 1024
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// Open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits until `f` is true, at most `limit`; returns how long it took, None on timeout.
pub fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
