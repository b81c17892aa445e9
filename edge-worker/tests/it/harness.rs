//! Processes and HTTP for the tests: the worker under `scripts/edge-dev`, a sink, and
//! small blocking HTTP helpers. Every process is started in its own process group and
//! stopped (SIGTERM, then SIGKILL) by that group's id when its guard is dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    // The checkout as cargo runs this now (`CARGO_MANIFEST_DIR` is set at run time too):
    // the compile-time value is where the binary was built, which a reused target folder
    // (CARGO_TARGET_DIR shared by two checkouts) may have left at another path.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .expect("edge-worker is in the workspace")
        .to_path_buf()
}

/// The tests start heavy processes (workerd, chromium) on 2 shared cores: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fails loudly when a tool the tests need is missing.
pub fn require(tool: &str, hint: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "`{tool}` is missing: {hint}");
}

/// A child process (and its process group), stopped on drop.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` in a new process group, stdout+stderr into `log`.
    pub fn start(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        cmd.stdout(out).stderr(err).stdin(Stdio::null());
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The log so far (for assertion messages).
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        let tail: Vec<&str> = s.lines().rev().take(60).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Panics (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.child.id().to_string();
        let kill = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status();
        };
        kill("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The group: wrangler's workerd child outlives a node that was killed hard.
        kill("-KILL");
        let _ = self.child.wait();
    }
}

/// A fresh directory under the target dir for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("edge-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A reply: status, headers we look at, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "reply {} is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

const CHROME_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// A browser user agent, so ingest-core does not drop the test's events as a bot's.
pub fn browser_ua() -> &'static str {
    CHROME_UA
}

/// Sends a request; any status is a `Reply` (4xx/5xx are what some tests expect).
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut req = agent.request(method, url).set("User-Agent", CHROME_UA);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let res = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|k| resp.header(&k).map(|v| (k.clone(), v.to_owned())))
        .collect();
    let mut body = Vec::new();
    resp.into_reader()
        .read_to_end(&mut body)
        .expect("read reply body");
    Reply {
        status,
        headers,
        body,
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// True when something answers HTTP at `url`.
pub fn answers(url: &str) -> bool {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build()
        .get(url)
        .call()
        .is_ok_and(|r| r.status() == 200)
}

/// The worker under `scripts/edge-dev` on `port` (and `port + 1`), against `sink_url`.
pub struct Edge {
    proc: Proc,
    pub base: String,
}

impl Edge {
    pub fn start(
        name: &str,
        port: u16,
        sink_url: &str,
        token: &str,
        direct: bool,
        vars: &[(&str, String)],
    ) -> Edge {
        Edge::start_with(name, port, sink_url, token, direct, vars, &[])
    }

    /// As [`Edge::start`], with the workers of the wrangler configs `others` running in
    /// the same local runtime (`scripts/edge-dev --with-config`), sharing its queues.
    pub fn start_with(
        name: &str,
        port: u16,
        sink_url: &str,
        token: &str,
        direct: bool,
        vars: &[(&str, String)],
        others: &[PathBuf],
    ) -> Edge {
        require("node", "install nodejs (apt) and run scripts/setup-wasm");
        let dir = scratch(name);
        let mut cmd = Command::new(root().join("scripts/edge-dev"));
        cmd.args(["--port", &port.to_string(), "--sink-url", sink_url])
            .args(["--batch-token", token])
            .arg("--persist-to")
            .arg(dir.join("state"));
        if direct {
            cmd.arg("--direct");
        }
        for (k, v) in vars {
            cmd.args(["--var", &format!("{k}:{v}")]);
        }
        for config in others {
            cmd.arg("--with-config").arg(config);
        }
        let mut proc = Proc::start(&format!("edge-dev {name}"), cmd, dir.join("edge-dev.log"));
        let base = format!("http://127.0.0.1:{port}");
        // The first start builds the worker (minutes on 2 cores); later ones seconds.
        let deadline = Instant::now() + Duration::from_secs(1200);
        while !answers(&format!("{base}/script.js")) {
            proc.assert_running();
            assert!(
                Instant::now() < deadline,
                "edge-dev did not answer:\n{}",
                proc.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        Edge { proc, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The end of wrangler's log (the workers' console output), for assertion messages.
    pub fn log(&self) -> String {
        self.proc.log()
    }
}

/// A request read off a connection by a test proxy: path, headers, body (the
/// proxies in `retry` and `deadletter` stand between the worker and the sink).
pub struct Incoming {
    pub reader: BufReader<TcpStream>,
    pub path: String,
    /// Every header, its name lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Incoming {
    // One request per connection (answered with `Connection: close`).
    pub fn read(conn: TcpStream) -> Option<Incoming> {
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
        let (mut headers, mut len) = (Vec::new(), 0usize);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((&h, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
            if k == "content-length" {
                len = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
        Some(Incoming {
            reader,
            path,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn answer(self, status: u16, retry_after: Option<u32>) {
        let mut conn = self.reader.into_inner();
        let extra = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
        let _ = write!(
            conn,
            "HTTP/1.1 {status} Scripted\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    /// Posts the request to the same path of `sink_url` with the headers the sink reads
    /// (the token, the batch ids, the content type), and returns the sink's reply.
    pub fn forward(&self, sink_url: &str) -> Reply {
        let keep = ["authorization", "x-batch-id", "x-batch-ids", "content-type"];
        let hs: Vec<(&str, &str)> = self
            .headers
            .iter()
            .filter(|(k, _)| keep.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        http(
            "POST",
            &format!("{sink_url}{}", self.path),
            &hs,
            Some(&self.body),
        )
    }
}
