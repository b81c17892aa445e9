//! The loads of `compare`: one ClickHouse 18.16 on loopback, and in each round the same
//! events loaded by every contender in turn, each load timed, its CPU taken from
//! `/proc`, its row count checked and the table truncated after it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use benches::chserver::ClickHouseServer;
use benches::e2e;
use benches::json_arrow::Workload;
use benches::sink_run::{self, Requests};
use sink_clickhouse::clickhouse::WireCompression;

use crate::Args;

/// Ports of this tool (the benches' assigned range).
const PORTS: std::ops::Range<u16> = 19500..19600;
const DB: &str = "analytics";
const TABLE: &str = "events";
/// The table JSONEachRow is loaded into: our NDJSON's own fields (props skipped).
const RAW_TABLE: &str = "raw_events";

/// The server, the tables, and every contender's input, built once for all rounds.
pub struct Loads<'a> {
    args: &'a Args,
    n: usize,
    batches: &'a [RecordBatch],
    ch: ClickHouseServer,
    url: String,
    work: tempfile::TempDir,
    sink_bin: PathBuf,
    rt: tokio::runtime::Runtime,
    /// The body curl posts in (c), Native + LZ4 built once by our encoder, and the
    /// column list of its insert.
    native_path: PathBuf,
    cols: String,
    ndjson_path: PathBuf,
    /// The sink's two loads: the NDJSON requests of (a); the events as the edge's queue
    /// consumers post them for (a″) (their validation and enrichment happened at the
    /// edge, before, and is not timed here).
    tracker: Requests,
    edge: Requests,
    /// The size of (c)'s body, MB.
    pub native_mb: f64,
    /// False once any load left a wrong row count.
    row_counts_ok: std::cell::Cell<bool>,
}

impl<'a> Loads<'a> {
    /// Starts the server, migrates the sink's table, creates JSONEachRow's, and writes
    /// the bodies to a temporary folder.
    pub fn prepare(
        args: &'a Args,
        w: &Workload,
        batches: &'a [RecordBatch],
    ) -> Result<Self, String> {
        let ch = ClickHouseServer::start(PORTS)?;
        let url = ch.url();
        eprintln!("ClickHouse at {url}");
        let work = tempfile::Builder::new()
            .prefix("bench-compare-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let sink_bin = sink_binary(args)?;
        let st = Command::new(&sink_bin)
            .args(["migrate", "--clickhouse-url", &url])
            .env("RUST_LOG", "warn")
            .status()
            .map_err(|e| format!("{}: {e}", sink_bin.display()))?;
        if !st.success() {
            return Err(format!("sink-clickhouse migrate failed: {st}"));
        }
        ch.query(&format!(
            "CREATE TABLE {DB}.{RAW_TABLE} (site String, url String, name String, \
             referrer String, screen_width UInt16, ts UInt64, ttfb_ms Nullable(UInt32), \
             fcp_ms Nullable(UInt32), lcp_ms Nullable(UInt32), inp_ms Nullable(UInt32), \
             load_ms Nullable(UInt32), cls Nullable(Float32)) \
             ENGINE = MergeTree ORDER BY (site, ts)"
        ))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let (native_body, cols) = rt.block_on(async {
            let client = sink_clickhouse::clickhouse::Client::new(
                sink_clickhouse::clickhouse::ClickHouseConfig {
                    urls: vec![url.clone()],
                    database: DB.into(),
                    table: TABLE.into(),
                    user: "default".into(),
                    password: String::new(),
                    timeout: Duration::from_secs(60),
                    compression: WireCompression::Lz4,
                    block_rows: sink_clickhouse::clickhouse::DEFAULT_BLOCK_ROWS,
                    sort_inserts: true,
                },
            )
            .map_err(|e| e.to_string())?;
            let layout = client.describe().await.map_err(|e| e.to_string())?;
            let cols = layout.insert_columns().map_err(|e| e.to_string())?;
            e2e::native_lz4_body(&layout, batches).map(|b| (b, cols))
        })?;
        let native_path = work.path().join("events.native.lz4");
        std::fs::write(&native_path, &native_body).map_err(|e| e.to_string())?;
        let ndjson_path = work.path().join("events.ndjson");
        std::fs::write(&ndjson_path, &w.ndjson).map_err(|e| e.to_string())?;
        Ok(Loads {
            args,
            n: w.events,
            batches,
            ch,
            url,
            work,
            sink_bin,
            rt,
            native_path,
            cols,
            ndjson_path,
            tracker: sink_run::tracker_requests(w),
            edge: sink_run::edge_requests(w)?,
            native_mb: native_body.len() as f64 / 1e6,
            row_counts_ok: std::cell::Cell::new(true),
        })
    }

    /// One round: every load once, in turn, the sink's last (they need the most memory
    /// of the host).
    pub fn round(&self, rep: usize) -> Result<Round, String> {
        let mut r = Round::default();
        let events_table = format!("{DB}.{TABLE}");
        let raw_table = format!("{DB}.{RAW_TABLE}");
        let (url, me) = (self.url.clone(), std::process::id());
        // (a′) our loader alone, Native + LZ4 as the issue defines it; then the same
        // without LZ4, which is what the sink sends to a loopback URL by default.
        for (what, compression) in [
            ("sink_loader", WireCompression::Lz4),
            ("sink_loader_plain", WireCompression::None),
        ] {
            eprintln!("(a′) {what} ({compression:?})…");
            let (c0, m0) = (self.server_cpu(), cpu(me));
            let t =
                self.rt
                    .block_on(e2e::sink_loader(&url, DB, TABLE, self.batches, compression))?;
            r.push(what, t, self.server_cpu() - c0, Some(cpu(me) - m0));
            self.check(what, &events_table)?;
        }

        // (b) the official crate.
        eprintln!("(b) clickhouse crate Inserter…");
        let (c0, m0) = (self.server_cpu(), cpu(me));
        let t = self
            .rt
            .block_on(e2e::clickhouse_crate(&url, DB, TABLE, self.batches))?;
        let what = "clickhouse_crate";
        r.push(what, t, self.server_cpu() - c0, Some(cpu(me) - m0));
        self.check(what, &events_table)?;

        // (c) curl, Native + LZ4 built by our encoder; (d) curl, the NDJSON itself as
        // JSONEachRow.
        for (label, what, sql, extra, path, table) in [
            (
                "(c) curl Native + LZ4",
                "curl_native_lz4",
                format!("INSERT INTO {events_table} ({}) FORMAT Native", self.cols),
                "&decompress=1",
                self.native_path.clone(),
                &events_table,
            ),
            (
                "(d) curl JSONEachRow",
                "curl_jsoneachrow",
                format!("INSERT INTO {raw_table} FORMAT JSONEachRow"),
                "&input_format_skip_unknown_fields=1",
                self.ndjson_path.clone(),
                &raw_table,
            ),
        ] {
            eprintln!("{label}…");
            let c0 = self.server_cpu();
            let t = e2e::curl_post(&insert_url(&url, &sql, extra), &path)?;
            r.push(what, t, self.server_cpu() - c0, None);
            self.check(what, table)?;
        }

        // (a) the sink over HTTP; then, for context, (a″) the same events as the edge
        // worker's queue consumers post them.
        let args = self.args;
        eprintln!(
            "(a) sink over HTTP ({} events/request, {} in flight)…",
            args.events_per_request, args.concurrency
        );
        self.sink_load(&mut r, rep, "sink_e2e", "/e", &self.tracker)?;
        eprintln!(
            "(a″) sink's /v1/batches (Arrow IPC + LZ4 batches of {} events, {} in flight)…",
            sink_run::EDGE_BATCH_ROWS,
            args.concurrency
        );
        self.sink_load(&mut r, rep, "sink_batches_e2e", "/v1/batches", &self.edge)?;
        Ok(r)
    }

    /// A fresh sink loaded through `path` by the load generator, timed from the first
    /// request until ClickHouse holds every event (every acknowledged one is loaded).
    fn sink_load(
        &self,
        r: &mut Round,
        rep: usize,
        what: &'static str,
        path: &str,
        (body, requests): &Requests,
    ) -> Result<(), String> {
        let sink = sink_run::Sink::start(
            &self.sink_bin,
            &self.url,
            &self.work.path().join(format!("{what}-{rep}")),
            PORTS.start + 50..PORTS.end,
        )?;
        let events_table = format!("{DB}.{TABLE}");
        let deadline = Duration::from_secs(self.args.deadline_secs);
        let c0 = self.server_cpu();
        let t0 = Instant::now();
        let report = self.rt.block_on(benches::loadgen::load(
            format!("http://127.0.0.1:{}{path}", sink.port),
            body.clone(),
            requests.clone(),
            self.args.concurrency,
            deadline,
        ));
        let t = sink.wait_loaded(&self.ch, &events_table, self.n as u64, t0, deadline)?;
        let rss = e2e::peak_rss_bytes(sink.child.id());
        // The sink's CPU from its start: it did nothing but this load.
        let sink_cpu = cpu(sink.child.id());
        r.push(what, t, self.server_cpu() - c0, Some(sink_cpu));
        drop(sink);
        eprintln!(
            "  load generator: {} ok, {} retried, {} failed, sent in {:.2} s",
            report.ok_requests, report.retried, report.failed, report.send_secs
        );
        r.sinks.push(SinkRun { what, rss, report });
        self.check(what, &events_table)
    }

    /// Whether every load so far left exactly the events in its table.
    pub fn row_counts_ok(&self) -> bool {
        self.row_counts_ok.get()
    }

    fn server_cpu(&self) -> f64 {
        cpu(self.ch.pid())
    }

    /// Checks `table` holds every event, then empties it for the next load.
    fn check(&self, what: &str, table: &str) -> Result<(), String> {
        let (c, n) = (self.ch.count(table)?, self.n);
        if c == n as u64 {
            eprintln!("  {what}: {c} rows ✓");
        } else {
            eprintln!("  {what}: WRONG ROW COUNT: {c} in {table}, expected {n}");
            self.row_counts_ok.set(false);
        }
        self.ch.query(&format!("TRUNCATE TABLE {table}"))?;
        Ok(())
    }
}

/// CPU seconds process `pid` has used so far (NaN if unknown): a load's share is the
/// difference across it.
fn cpu(pid: u32) -> f64 {
    e2e::cpu_secs(pid).unwrap_or(f64::NAN)
}

/// One load of a round: its time, the server's CPU seconds across it, and ours where
/// the client is ours (the in-process loaders: this process; the sink: its process).
struct Load {
    what: &'static str,
    time: Duration,
    server_cpu: f64,
    our_cpu: Option<f64>,
}

/// A sink's run in a round: its peak RSS and its load generator's report.
pub struct SinkRun {
    pub what: &'static str,
    pub rss: Option<u64>,
    pub report: e2e::LoadReport,
}

/// One round of the loads.
#[derive(Default)]
pub struct Round {
    loads: Vec<Load>,
    pub sinks: Vec<SinkRun>,
}

impl Round {
    fn push(&mut self, what: &'static str, time: Duration, server_cpu: f64, our_cpu: Option<f64>) {
        self.loads.push(Load {
            what,
            time,
            server_cpu,
            our_cpu,
        });
    }

    fn load(&self, what: &str) -> &Load {
        self.loads
            .iter()
            .find(|l| l.what == what)
            .expect("every round runs every load")
    }

    /// Rows per second of load `what` (of `n` rows).
    pub fn rows_per_s(&self, what: &str, n: usize) -> f64 {
        n as f64 / self.load(what).time.as_secs_f64()
    }

    /// CPU seconds of load `what`: the server's, or ours (`None` where not ours).
    pub fn cpu(&self, what: &str, server: bool) -> Option<f64> {
        let l = self.load(what);
        if server {
            Some(l.server_cpu)
        } else {
            l.our_cpu
        }
    }

    /// The run of sink load `what`.
    pub fn sink(&self, what: &str) -> &SinkRun {
        self.sinks
            .iter()
            .find(|s| s.what == what)
            .expect("every round runs both sink loads")
    }
}

fn insert_url(base: &str, sql: &str, extra: &str) -> String {
    let q: String = url_encode(sql);
    format!("{base}/?query={q}{extra}")
}

/// Percent-encodes a query-string value (everything but unreserved characters).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The sink binary: `--sink-bin`, or built with cargo beside this tool.
fn sink_binary(args: &Args) -> Result<PathBuf, String> {
    if let Some(p) = &args.sink_bin {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no folder of the current executable")?;
    let release = dir.ends_with("release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // With `-p benches` too, so features unify as in this tool's own build and
    // nothing already built is rebuilt.
    cmd.args(["build", "-p", "benches", "-p", "sink-clickhouse", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    eprintln!(
        "building sink-clickhouse ({})…",
        if release { "release" } else { "debug" }
    );
    let st = cmd.status().map_err(|e| format!("cargo build: {e}"))?;
    if !st.success() {
        return Err("cargo build -p sink-clickhouse failed".into());
    }
    Ok(dir.join("sink-clickhouse"))
}
