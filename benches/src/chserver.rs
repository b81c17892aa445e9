//! One real ClickHouse server (Debian's `clickhouse-server` 18.16) on loopback for
//! `compare`: a plain process in a temporary folder on free ports of 19500–19599,
//! waited for on `/ping`, killed by its PID when dropped. The same recipe as
//! sink-clickhouse's test harness (`tests/it/support/clickhouse.rs`), which a binary
//! cannot import; kept blocking, so call it outside the async runtime.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian installs the server in /usr/sbin (older packages in /usr/bin).
const SERVERS: [&str; 2] = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"];
const CONFIG: &str = "/etc/clickhouse-server/config.xml";

/// A free loopback port in `range`, skipping `taken`.
pub fn free_port(range: std::ops::Range<u16>, taken: &[u16]) -> Option<u16> {
    range
        .filter(|p| !taken.contains(p))
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// A running ClickHouse server.
pub struct ClickHouseServer {
    /// HTTP port.
    pub http_port: u16,
    dir: tempfile::TempDir,
    child: Child,
    http: reqwest::blocking::Client,
}

impl ClickHouseServer {
    /// Starts a fresh server on ports from `ports`; an error says what is missing.
    pub fn start(ports: std::ops::Range<u16>) -> Result<Self, String> {
        let server = SERVERS
            .into_iter()
            .find(|p| Path::new(p).exists())
            .filter(|_| Path::new(CONFIG).exists())
            .ok_or_else(|| {
                format!(
                    "clickhouse-server is not installed (looked for {SERVERS:?} and {CONFIG}): \
                     apt-get install clickhouse-server clickhouse-client"
                )
            })?;
        let mut taken = Vec::new();
        for _ in 0..3 {
            let p = free_port(ports.clone(), &taken).ok_or("no free port for ClickHouse")?;
            taken.push(p);
        }
        let dir = tempfile::Builder::new()
            .prefix("bench-ch-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let sub = |s: &str| -> PathBuf { dir.path().join(s) };
        for s in ["data", "tmp", "uf", "fs"] {
            std::fs::create_dir_all(sub(s)).map_err(|e| e.to_string())?;
        }
        let arg = |k: &str, s: &str| format!("--{k}={}/", sub(s).display());
        let child = Command::new(server)
            .arg(format!("--config-file={CONFIG}"))
            .arg("--")
            .arg(arg("path", "data"))
            .arg(arg("tmp_path", "tmp"))
            .arg(arg("user_files_path", "uf"))
            .arg(arg("format_schema_path", "fs"))
            .arg(format!("--http_port={}", taken[0]))
            .arg(format!("--tcp_port={}", taken[1]))
            .arg(format!("--interserver_http_port={}", taken[2]))
            .arg("--listen_host=127.0.0.1")
            .arg(format!("--logger.log={}", sub("server.log").display()))
            .arg(format!(
                "--logger.errorlog={}",
                sub("server.err.log").display()
            ))
            .arg("--logger.console=0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {server}: {e}"))?;
        let mut s = ClickHouseServer {
            http_port: taken[0],
            dir,
            child,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()
                .map_err(|e| e.to_string())?,
        };
        let t0 = Instant::now();
        loop {
            if let Ok(r) = s.http.get(format!("{}/ping", s.url())).send() {
                if r.text().map(|t| t.trim() == "Ok.").unwrap_or(false) {
                    return Ok(s);
                }
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                let log = std::fs::read_to_string(s.dir.path().join("server.err.log"))
                    .unwrap_or_default();
                return Err(format!(
                    "clickhouse-server exited with {status}: {}",
                    &log[log.len().saturating_sub(2000)..]
                ));
            }
            if t0.elapsed() > Duration::from_secs(60) {
                s.stop();
                return Err("clickhouse-server did not answer /ping in 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The server's folder (data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
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

    /// `SELECT count() FROM table`.
    pub fn count(&self, table: &str) -> Result<u64, String> {
        let t = self.query(&format!("SELECT count() FROM {table}"))?;
        t.trim()
            .parse()
            .map_err(|e| format!("count of {table}: {e}: {t:?}"))
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.stop();
    }
}
