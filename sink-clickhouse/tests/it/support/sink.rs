//! Starts the real `sink-clickhouse` binary as a child process on a loopback port,
//! with its own data dir; killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Ports 19200..=19299 belong to the sink tests.
static NEXT_PORT: AtomicU16 = AtomicU16::new(19200);

fn free_port() -> u16 {
    loop {
        let p = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        assert!(p <= 19299, "sink test ports 19200-19299 exhausted");
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// The token the tests use for `/v1/batches`.
pub const TOKEN: &str = "test-token-0123456789";

/// A running sink.
pub struct Sink {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    /// Its data dir (kept across restarts).
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Sink {
    /// Starts a sink with a fresh data dir and these extra flags (the port, data dir
    /// and batch token are set here; the rate limit is off unless given).
    pub fn start(extra: &[&str]) -> Sink {
        Sink::start_with_env(extra, &[])
    }

    /// Like [`Sink::start`], with these environment variables set for the process
    /// (kept across restarts).
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Sink {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_owned();
        let mut s = Sink {
            child: None,
            port: free_port(),
            dir,
            _tmp: Some(tmp),
            args: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: PathBuf::new(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        // One log per data dir, appended across restarts.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sink.log"))
            .expect("log file");
        self.log = self.dir.join("sink.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sink-clickhouse"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--batch-token")
            .arg(TOKEN)
            .arg("--salt-secret")
            .arg("test-secret");
        if !self.args.iter().any(|a| a == "--client-rate") {
            cmd.args(["--client-rate", "0"]);
        }
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("CLICKHOUSE_URL")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawning sink-clickhouse"));
        let t0 = Instant::now();
        loop {
            if let Ok(r) = reqwest::blocking::get(self.url("/healthz")) {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("sink exited at start ({st}); log:\n{}", self.log_text());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "sink did not start; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The sink's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (without waiting).
    pub fn sigterm(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Waits for the process to exit (at most `limit`).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let t0 = Instant::now();
        let c = self.child.as_mut().expect("running");
        loop {
            if let Some(st) = c.try_wait().expect("try_wait") {
                self.child = None;
                return st;
            }
            assert!(
                t0.elapsed() < limit,
                "sink did not exit in {limit:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the same sink again (same port, data dir and flags).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// One metric's value summed over its label sets (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        let text = reqwest::blocking::get(self.url("/metrics"))
            .and_then(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The process's peak resident set size (VmHWM), bytes; 0 when not running.
    pub fn peak_rss_bytes(&self) -> u64 {
        let Some(c) = &self.child else { return 0 };
        std::fs::read_to_string(format!("/proc/{}/status", c.id()))
            .ok()
            .and_then(|s| {
                let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
                l.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map_or(0, |kb| kb * 1024)
    }

    /// True when no segment is left in the spool (everything loaded).
    pub fn spool_empty(&self) -> bool {
        std::fs::read_dir(self.dir.join("spool"))
            .map(|rd| {
                !rd.filter_map(Result::ok).any(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.ends_with(".seg") || n.ends_with(".open")
                })
            })
            .unwrap_or(false)
    }

    /// Waits until `f` is true (polling), failing with the log after `limit`.
    pub fn wait_until(&self, what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while !f() {
            assert!(
                t0.elapsed() < limit,
                "timed out waiting for {what}; log tail:\n{}",
                tail(&self.log_text())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn tail(s: &str) -> &str {
    let n = s.len().saturating_sub(4000);
    let mut i = n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.kill9();
    }
}
