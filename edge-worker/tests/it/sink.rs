//! The sink the worker posts to, and how a test reads what arrived.
//!
//! `Sink::start` runs the real `sink-clickhouse` (embedded Parquet mode) when its binary
//! can be built, and reads the rows back from its Parquet files with pyarrow.
//! Until the sink's HTTP server exists, `EDGE_IT_STANDIN_SINK=1` selects a stand-in that
//! records `/v1/batches` posts in memory (same contract: bearer token, `X-Batch-Id`
//! deduplication, Arrow IPC decoded with ingest-core).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use ingest_core::{batch_to_events, read_ipc, Event};

/// One stored row, as the tests look at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub site_id: String,
    pub name: String,
    pub pathname: String,
    pub visitor_id: u64,
    pub props: Vec<(String, String)>,
}

impl Row {
    fn of(ev: &Event<'_>) -> Row {
        Row {
            site_id: ev.site_id.to_string(),
            name: ev.name.to_string(),
            pathname: ev.pathname.to_string(),
            visitor_id: ev.visitor_id,
            props: ev
                .props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

#[derive(Default)]
struct Received {
    rows: Vec<Row>,
    batch_ids: HashSet<String>,
}

/// A stand-in for `POST /v1/batches`: checks the token, deduplicates by `X-Batch-Id`,
/// decodes the Arrow IPC body with ingest-core and keeps the rows.
pub struct StandIn {
    pub url: String,
    received: Arc<Mutex<Received>>,
}

impl StandIn {
    pub fn start(port: u16, token: &str) -> StandIn {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("stand-in sink cannot bind 127.0.0.1:{port}: {e}"));
        let received = Arc::new(Mutex::new(Received::default()));
        let rec = received.clone();
        let auth = format!("Bearer {token}");
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let rec = rec.clone();
                let auth = auth.clone();
                thread::spawn(move || serve(conn, &auth, &rec));
            }
        });
        StandIn {
            url: format!("http://127.0.0.1:{port}"),
            received,
        }
    }

    pub fn rows(&self) -> Vec<Row> {
        self.received.lock().unwrap().rows.clone()
    }
}

// Hand-written HTTP/1.1 (one request per connection) because a stand-in needs no more,
// and an async server would add a runtime to this test binary for a few lines.
fn serve(conn: TcpStream, auth: &str, rec: &Mutex<Received>) {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let (mut len, mut token_ok, mut batch_id) = (0usize, false, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        let v = v.trim();
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = v.parse().unwrap_or(0),
            "authorization" => token_ok = v == auth,
            "x-batch-id" => batch_id = Some(v.to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let status = if !line.starts_with("POST /v1/batches ") {
        "404 Not Found"
    } else if !token_ok {
        "401 Unauthorized"
    } else {
        match read_ipc(&body, 1_000_000).and_then(|bs| {
            bs.iter()
                .map(batch_to_events)
                .collect::<Result<Vec<_>, _>>()
        }) {
            Err(_) => "400 Bad Request",
            Ok(batches) => {
                let mut r = rec.lock().unwrap();
                let fresh = batch_id.is_none_or(|id| r.batch_ids.insert(id));
                if fresh {
                    for ev in batches.iter().flatten() {
                        r.rows.push(Row::of(ev));
                    }
                }
                "200 OK"
            }
        }
    };
    let mut conn = reader.into_inner();
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

/// The sink a test posts to: the real `sink-clickhouse`, or the stand-in.
pub enum Sink {
    Real(Real),
    StandIn(StandIn),
}

impl Sink {
    /// Starts the sink for test `name` on `port` with batch token `token`.
    pub fn start(name: &str, port: u16, token: &str) -> Sink {
        if std::env::var_os("EDGE_IT_STANDIN_SINK").is_some_and(|v| v == "1") {
            Sink::StandIn(StandIn::start(port, token))
        } else {
            Sink::Real(Real::start(name, port, token))
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Sink::Real(r) => &r.url,
            Sink::StandIn(s) => &s.url,
        }
    }

    /// Every row stored so far.
    pub fn rows(&self) -> Vec<Row> {
        match self {
            Sink::Real(r) => r.rows(),
            Sink::StandIn(s) => s.rows(),
        }
    }
}

/// `sink-clickhouse serve` in embedded Parquet mode; rows read back with pyarrow.
pub struct Real {
    pub url: String,
    data_dir: std::path::PathBuf,
    _proc: crate::harness::Proc,
}

impl Real {
    pub fn start(name: &str, port: u16, token: &str) -> Real {
        use crate::harness::{answers, root, scratch, Proc};
        use std::process::Command;
        let bin = sink_binary();
        let dir = scratch(&format!("sink-{name}"));
        let data_dir = dir.join("data");
        let mut cmd = Command::new(&bin);
        cmd.current_dir(root())
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--batch-token", token]);
        let mut proc = Proc::start("sink-clickhouse", cmd, dir.join("sink.log"));
        let url = format!("http://127.0.0.1:{port}");
        crate::harness::wait_for(
            "sink-clickhouse /healthz",
            std::time::Duration::from_secs(60),
            || {
                proc.assert_running();
                answers(&format!("{url}/healthz")).then_some(())
            },
        );
        Real {
            url,
            data_dir,
            _proc: proc,
        }
    }

    /// Rows of every Parquet file the sink has written (pyarrow reads them).
    pub fn rows(&self) -> Vec<Row> {
        const READ: &str = r#"
import sys, json, glob, pyarrow.parquet as pq
for path in sorted(glob.glob(sys.argv[1] + '/**/*.parquet', recursive=True)):
    try:
        t = pq.read_table(path, columns=['site_id','name','pathname','visitor_id','prop_keys','prop_values'])
    except Exception:
        continue  # a file still being written
    for r in t.to_pylist():
        print(json.dumps(r))
"#;
        let out = std::process::Command::new("python3")
            .args(["-c", READ])
            .arg(&self.data_dir)
            .output()
            .expect("python3 (with pyarrow) is needed to read the sink's Parquet files");
        assert!(
            out.status.success(),
            "reading the sink's Parquet files with pyarrow failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json line");
                let strs = |k: &str| -> Vec<String> {
                    v[k].as_array()
                        .map(|a| {
                            a.iter()
                                .map(|s| s.as_str().unwrap_or("").to_owned())
                                .collect()
                        })
                        .unwrap_or_default()
                };
                Row {
                    site_id: v["site_id"].as_str().unwrap_or("").to_owned(),
                    name: v["name"].as_str().unwrap_or("").to_owned(),
                    pathname: v["pathname"].as_str().unwrap_or("").to_owned(),
                    visitor_id: v["visitor_id"].as_u64().unwrap_or(0),
                    props: strs("prop_keys")
                        .into_iter()
                        .zip(strs("prop_values"))
                        .collect(),
                }
            })
            .collect()
    }
}

/// Builds `sink-clickhouse` (once per test binary) with the same cargo and target dir.
fn sink_binary() -> std::path::PathBuf {
    use std::sync::OnceLock;
    static BIN: OnceLock<std::path::PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = crate::harness::root();
        let out = std::process::Command::new(&cargo)
            .current_dir(&root)
            .args(["build", "-p", "sink-clickhouse", "--bin", "sink-clickhouse"])
            .args(["--message-format", "json-render-diagnostics"])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "running `{cargo} build -p sink-clickhouse` in {}: {e}",
                    root.display()
                )
            });
        assert!(
            out.status.success(),
            "building sink-clickhouse failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["reason"] == "compiler-artifact" && v["target"]["name"] == "sink-clickhouse"
            })
            .find_map(|v| v["executable"].as_str().map(std::path::PathBuf::from))
            .expect("cargo reported no sink-clickhouse executable")
    })
    .clone()
}
