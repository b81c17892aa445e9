//! One real ClickHouse server (Debian's `clickhouse-server` 18.16) on loopback, in a
//! temporary folder, for one test. Started as a plain process on free ports in
//! 19100-19199, waited for on `/ping`, killed by its PID when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Debian installs the server in /usr/sbin.
const SERVERS: [&str; 2] = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"];
const CONFIG: &str = "/etc/clickhouse-server/config.xml";

/// Offset into the range; 0 means "not chosen yet". Each test process starts at a
/// place derived from its PID, so two test binaries running at once rarely probe the
/// same ports (and a collision that slips through is retried, see `start`).
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

fn free_port() -> u16 {
    let _ = NEXT_PORT.compare_exchange(
        0,
        (std::process::id() % 100) as u16 + 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        // Wrap within the range: tests in one process run a few servers at most at once.
        let p = 19100 + n % 100;
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// A running ClickHouse server.
pub struct ClickHouse {
    /// HTTP port.
    pub http_port: u16,
    /// Native TCP port.
    pub tcp_port: u16,
    interserver_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    http: reqwest::blocking::Client,
}

impl ClickHouse {
    /// Starts a fresh server; panics with what is missing if it cannot.
    pub fn start() -> ClickHouse {
        assert!(
            server().is_some() && Path::new(CONFIG).exists(),
            "clickhouse-server is not installed (looked for {SERVERS:?} and {CONFIG}): \
             apt-get install clickhouse-server clickhouse-client (scripts/setup does it)"
        );
        let mut ch = ClickHouse {
            http_port: free_port(),
            tcp_port: free_port(),
            interserver_port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        };
        // Another process may take a port between our probe and the server's bind:
        // then try fresh ports, a few times.
        for attempt in 1.. {
            match ch.spawn() {
                Ok(()) => break,
                Err(e) if e.contains("Address already in use") && attempt < 5 => {
                    ch.http_port = free_port();
                    ch.tcp_port = free_port();
                    ch.interserver_port = free_port();
                }
                Err(e) => panic!("{e}"),
            }
        }
        ch
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn spawn(&mut self) -> Result<(), String> {
        for sub in ["data", "tmp", "uf", "fs"] {
            std::fs::create_dir_all(self.path(sub)).unwrap();
        }
        let arg = |k: &str, v: &Path| format!("--{k}={}/", v.display());
        let child = Command::new(server().expect("checked at start"))
            .arg(format!("--config-file={CONFIG}"))
            .arg("--")
            .arg(arg("path", &self.path("data")))
            .arg(arg("tmp_path", &self.path("tmp")))
            .arg(arg("user_files_path", &self.path("uf")))
            .arg(arg("format_schema_path", &self.path("fs")))
            .arg(format!("--http_port={}", self.http_port))
            .arg(format!("--tcp_port={}", self.tcp_port))
            .arg(format!("--interserver_http_port={}", self.interserver_port))
            .arg("--listen_host=127.0.0.1")
            .arg(format!(
                "--logger.log={}",
                self.path("server.log").display()
            ))
            .arg(format!(
                "--logger.errorlog={}",
                self.path("server.err.log").display()
            ))
            .arg("--logger.console=0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting clickhouse-server");
        self.child = Some(child);
        let t0 = Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{}/ping", self.url())).send() {
                if r.text().map(|t| t.trim() == "Ok.").unwrap_or(false) {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                let log = std::fs::read_to_string(self.path("server.err.log")).unwrap_or_default();
                return Err(format!(
                    "clickhouse-server exited with {status}: {}",
                    tail(&log)
                ));
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "clickhouse-server did not answer /ping in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Runs a statement; the body on success, the server's message on failure.
    pub fn query(&self, sql: &str) -> Result<String, String> {
        let r = self
            .http
            .post(self.url())
            .body(sql.to_owned())
            .send()
            .map_err(|e| e.to_string())?;
        let ok = r.status().is_success();
        let text = r.text().map_err(|e| e.to_string())?;
        if ok {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// Stops the server (SIGKILL: an outage, not a shutdown); its data stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn()
            .unwrap_or_else(|e| panic!("restarting ClickHouse: {e}"));
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.stop();
    }
}

fn server() -> Option<&'static str> {
    SERVERS.into_iter().find(|p| Path::new(p).exists())
}

fn tail(s: &str) -> &str {
    let mut from = s.len().saturating_sub(2000);
    while !s.is_char_boundary(from) {
        from += 1;
    }
    &s[from..]
}
