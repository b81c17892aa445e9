//! End to end: the same N generated page views loaded into one real ClickHouse 18.16
//! on loopback, in turn, by our sink over HTTP, our loader alone, the official
//! `clickhouse` crate, and `curl` (Native + LZ4, and the NDJSON as JSONEachRow); plus
//! the JSON → Arrow figures on the same events. Verifies every row count (exit 1 if
//! one is wrong), never fails on speed.
//!
//! `cargo run --release -p benches --bin compare -- --events 1000000 --json out.json`
//!
//! Needs: `clickhouse-server` (Debian 18.16), `curl`, and the `sink-clickhouse`
//! binary (built with cargo into the same target folder unless `--sink-bin` is given).

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use benches::chserver::ClickHouseServer;
use benches::e2e;
use benches::json_arrow::{self, FullState, PlainState, Workload};
use clap::Parser;
use serde_json::json;
use sink_clickhouse::clickhouse::WireCompression;

/// Ports of this tool (the benches' assigned range).
const PORTS: std::ops::Range<u16> = 19500..19600;
const DB: &str = "analytics";
const TABLE: &str = "events";
/// The table JSONEachRow is loaded into: our NDJSON's own fields (props skipped).
const RAW_TABLE: &str = "raw_events";
/// Rows per pre-built batch for the loaders (the sink's default `--flush-rows`).
const LOADER_BATCH_ROWS: usize = 100_000;

/// Load the same events through our sink and its peers; print and save the figures.
#[derive(Parser, Debug)]
struct Args {
    /// Number of events.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Events per HTTP request to the sink (at most the sink's limit, 100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=100))]
    events_per_request: u16,
    /// Requests in flight to the sink.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Rounds of the JSON → Arrow measurement, each running every path once in turn
    /// (the median of each path is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Rounds of the loads, each running every load once in turn (the e2e last); the
    /// median of each figure, and of each ratio within a round, is reported.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    load_reps: u16,
    /// The sink binary (default: build it with cargo into this tool's target folder).
    #[arg(long, env = "SINK_BIN")]
    sink_bin: Option<PathBuf>,
    /// Give up on the sink run after this many seconds.
    #[arg(long, default_value_t = 600)]
    deadline_secs: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    benches::exit_code("compare", run(&args))
}

/// The median time of each of `paths` over `reps` rounds, in seconds. Every round
/// runs every path once, in turn, after one untimed warm-up round: a machine whose
/// speed drifts during the measurement (a shared VM's does) slows all paths alike
/// instead of whichever ran in the slow stretch. Each round starts one path further
/// on, so that no path always runs first. Checks every run returns `n` rows.
fn interleaved_medians(
    reps: usize,
    n: usize,
    paths: &mut [(&'static str, &mut dyn FnMut() -> usize)],
) -> Result<Vec<(&'static str, f64)>, String> {
    let mut times = vec![Vec::new(); paths.len()];
    let k = paths.len();
    for round in 0..=reps.max(1) {
        for j in 0..k {
            let i = (round + j) % k;
            let ((name, f), t) = (&mut paths[i], &mut times[i]);
            let t0 = Instant::now();
            let rows = f();
            let secs = t0.elapsed().as_secs_f64();
            if rows != n {
                return Err(format!("JSON → Arrow path {name} made {rows} rows of {n}"));
            }
            if round > 0 {
                t.push(secs);
            }
        }
    }
    Ok(paths
        .iter()
        .zip(&mut times)
        .map(|((name, _), t)| {
            t.sort_by(f64::total_cmp);
            (*name, t[t.len() / 2])
        })
        .collect())
}

fn run(args: &Args) -> Result<bool, String> {
    let n = args.events;
    eprintln!("generating {n} events (seed {})…", args.seed);
    let w = Workload::with_requests(args.seed, n, usize::from(args.events_per_request));
    let mb = w.bytes() as f64 / 1e6;

    eprintln!(
        "JSON → Arrow, {} rounds of every path in turn (after a warm-up round)…",
        args.reps
    );
    let mut plain = PlainState::default();
    let mut full = FullState::default();
    let j = interleaved_medians(
        args.reps,
        n,
        &mut [
            ("ingest_core_full", &mut || {
                json_arrow::ingest_core_full(&w, &mut full)
            }),
            ("ingest_core_plain", &mut || {
                json_arrow::ingest_core_plain(&w, &mut plain)
            }),
            ("arrow_json", &mut || json_arrow::arrow_json(&w)),
            ("serde_json", &mut || json_arrow::serde_json_builders(&w)),
        ],
    )?;
    drop((plain, full));

    eprintln!("building {LOADER_BATCH_ROWS}-row batches with the full pipeline…");
    let batches = json_arrow::pipeline_batches(&w, LOADER_BATCH_ROWS);

    let ch = ClickHouseServer::start(PORTS)?;
    eprintln!("ClickHouse at {}", ch.url());
    let work = tempfile::Builder::new()
        .prefix("bench-compare-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let sink_bin = sink_binary(args)?;
    let st = Command::new(&sink_bin)
        .args(["migrate", "--clickhouse-url", &ch.url()])
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
    let events_table = format!("{DB}.{TABLE}");
    let mut ok = true;
    let mut check = |what: &str, table: &str, ch: &ClickHouseServer| -> Result<(), String> {
        let c = ch.count(table)?;
        if c == n as u64 {
            eprintln!("  {what}: {c} rows ✓");
        } else {
            eprintln!("  {what}: WRONG ROW COUNT: {c} in {table}, expected {n}");
            ok = false;
        }
        ch.query(&format!("TRUNCATE TABLE {table}"))?;
        Ok(())
    };

    // The body curl posts in (c): Native + LZ4, built once by our encoder.
    let url = ch.url();
    let native = rt.block_on(async {
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
        e2e::native_lz4_body(&layout, &batches).map(|b| (b, cols))
    })?;
    let (native_body, cols) = native;
    let native_path = work.path().join("events.native.lz4");
    std::fs::write(&native_path, &native_body).map_err(|e| e.to_string())?;
    let native_mb = native_body.len() as f64 / 1e6;
    drop(native_body);
    let ndjson_path = work.path().join("events.ndjson");
    std::fs::write(&ndjson_path, &w.ndjson).map_err(|e| e.to_string())?;
    // The sink's two loads: the NDJSON requests of (a), and for (a″) the events as the
    // edge's queue consumers post them (their validation and enrichment happened at
    // the edge, before, and is not timed here).
    let (ndjson, tracker_requests) = e2e::tracker_requests(&w);
    let (edge_body, edge_requests) = e2e::edge_requests(&w)?;

    // CPU seconds of the server and of this process (the in-process loaders' client
    // side) so far: each load's share is the difference across it.
    let me = std::process::id();
    let cpu = |pid: u32| e2e::cpu_secs(pid).unwrap_or(f64::NAN);
    let mut runs: Vec<Round> = Vec::new();
    for rep in 0..usize::from(args.load_reps) {
        if args.load_reps > 1 {
            eprintln!("loads, round {} of {}:", rep + 1, args.load_reps);
        }
        let mut r = Round::default();
        // (a′) our loader alone, Native + LZ4 as the issue defines it; then the same
        // without LZ4, which is what the sink sends to a loopback URL by default.
        for (what, compression) in [
            ("sink_loader", WireCompression::Lz4),
            ("sink_loader_plain", WireCompression::None),
        ] {
            eprintln!("(a′) {what} ({compression:?})…");
            let (c0, m0) = (cpu(ch.pid()), cpu(me));
            let t = rt.block_on(e2e::sink_loader(&url, DB, TABLE, &batches, compression))?;
            r.push(what, t, cpu(ch.pid()) - c0, Some(cpu(me) - m0));
            check(what, &events_table, &ch)?;
        }

        // (b) the official crate.
        eprintln!("(b) clickhouse crate Inserter…");
        let (c0, m0) = (cpu(ch.pid()), cpu(me));
        let t = rt.block_on(e2e::clickhouse_crate(&url, DB, TABLE, &batches))?;
        r.push(
            "clickhouse_crate",
            t,
            cpu(ch.pid()) - c0,
            Some(cpu(me) - m0),
        );
        check("clickhouse_crate", &events_table, &ch)?;

        // (c) curl, Native + LZ4 built by our encoder; (d) curl, the NDJSON itself as
        // JSONEachRow.
        let raw_table = format!("{DB}.{RAW_TABLE}");
        for (label, what, sql, extra, path, table) in [
            (
                "(c) curl Native + LZ4",
                "curl_native_lz4",
                format!("INSERT INTO {DB}.{TABLE} ({cols}) FORMAT Native"),
                "&decompress=1",
                &native_path,
                &events_table,
            ),
            (
                "(d) curl JSONEachRow",
                "curl_jsoneachrow",
                format!("INSERT INTO {raw_table} FORMAT JSONEachRow"),
                "&input_format_skip_unknown_fields=1",
                &ndjson_path,
                &raw_table,
            ),
        ] {
            eprintln!("{label}…");
            let c0 = cpu(ch.pid());
            let t = e2e::curl_post(&insert_url(&url, &sql, extra), path)?;
            r.push(what, t, cpu(ch.pid()) - c0, None);
            check(what, table, &ch)?;
        }

        // (a) the sink over HTTP, last: it needs the most memory of the host. Then, for
        // context, the same events as the edge worker's queue consumers post them.
        for (what, path, body, requests) in [
            ("sink_e2e", "/e", &ndjson, &tracker_requests),
            (
                "sink_batches_e2e",
                "/v1/batches",
                &edge_body,
                &edge_requests,
            ),
        ] {
            if what == "sink_e2e" {
                eprintln!(
                    "(a) sink over HTTP ({} events/request, {} in flight)…",
                    args.events_per_request, args.concurrency
                );
            } else {
                eprintln!(
                    "(a″) sink's /v1/batches (Arrow IPC + LZ4 batches of {} \
                     events, {} in flight)…",
                    e2e::EDGE_BATCH_ROWS,
                    args.concurrency
                );
            }
            let sink = e2e::Sink::start(
                &sink_bin,
                &url,
                &work.path().join(format!("{what}-{rep}")),
                PORTS.start + 50..PORTS.end,
            )?;
            let c0 = cpu(ch.pid());
            let t0 = Instant::now();
            let report = rt.block_on(benches::loadgen::load_with_headers(
                format!("http://127.0.0.1:{}{path}", sink.port),
                body.clone(),
                requests.clone(),
                args.concurrency,
                Duration::from_secs(args.deadline_secs),
            ));
            // Loaded = every acknowledged event is in ClickHouse.
            let deadline = Duration::from_secs(args.deadline_secs);
            while ch.count(&events_table)? < n as u64 && t0.elapsed() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let t = t0.elapsed();
            let rss = e2e::peak_rss_bytes(sink.child.id());
            // The sink's CPU from its start: it did nothing but this load.
            let sink_cpu = cpu(sink.child.id());
            r.push(what, t, cpu(ch.pid()) - c0, Some(sink_cpu));
            drop(sink);
            eprintln!(
                "  load generator: {} ok, {} retried, {} failed, sent in {:.2} s",
                report.ok_requests, report.retried, report.failed, report.send_secs
            );
            if what == "sink_e2e" {
                (r.rss, r.report) = (rss, report);
            } else {
                (r.rss_batches, r.report_batches) = (rss, report);
            }
            check(what, &events_table, &ch)?;
        }
        runs.push(r);
    }
    drop(batches);

    // Each figure is the median over the rounds; each ratio the median of its ratio
    // within each round (the two loads a few seconds apart on the same machine, which
    // drifts less than across rounds). One round: the figures themselves.
    let names = [
        "sink_e2e",
        "sink_batches_e2e",
        "sink_loader",
        "sink_loader_plain",
        "clickhouse_crate",
        "curl_native_lz4",
        "curl_jsoneachrow",
    ];
    let per_run = |k: &str| -> Vec<f64> { runs.iter().map(|r| r.rows_per_s(k, n)).collect() };
    let rows: Vec<(&str, f64)> = names.iter().map(|&k| (k, median(per_run(k)))).collect();
    let eps: Vec<(&str, f64)> = j.iter().map(|(k, s)| (*k, n as f64 / s)).collect();
    let get = |v: &[(&str, f64)], k: &str| v.iter().find(|(n, _)| *n == k).map(|x| x.1).unwrap();
    let load_ratio = |a: &str, b: &str| -> Vec<f64> {
        runs.iter()
            .map(|r| r.rows_per_s(a, n) / r.rows_per_s(b, n))
            .collect()
    };
    let ratio_runs = [
        (
            "loader_vs_clickhouse_crate",
            load_ratio("sink_loader", "clickhouse_crate"),
        ),
        (
            "loader_vs_curl_native_lz4",
            load_ratio("sink_loader", "curl_native_lz4"),
        ),
        (
            "e2e_vs_curl_jsoneachrow",
            load_ratio("sink_e2e", "curl_jsoneachrow"),
        ),
    ];
    let med = |k: &str| median(ratio_runs.iter().find(|(n, _)| *n == k).unwrap().1.clone());
    let ratios = [
        (
            "json_plain_vs_arrow_json",
            get(&eps, "ingest_core_plain") / get(&eps, "arrow_json"),
            1.5,
        ),
        (
            "json_full_vs_arrow_json",
            get(&eps, "ingest_core_full") / get(&eps, "arrow_json"),
            1.0,
        ),
        (
            "loader_vs_clickhouse_crate",
            med("loader_vs_clickhouse_crate"),
            1.4,
        ),
        (
            "loader_vs_curl_native_lz4",
            med("loader_vs_curl_native_lz4"),
            0.9,
        ),
        (
            "e2e_vs_curl_jsoneachrow",
            med("e2e_vs_curl_jsoneachrow"),
            1.0,
        ),
    ];
    let context = [
        (
            "e2e_vs_curl_native_lz4",
            median(load_ratio("sink_e2e", "curl_native_lz4")),
        ),
        (
            "curl_native_lz4_vs_curl_jsoneachrow",
            median(load_ratio("curl_native_lz4", "curl_jsoneachrow")),
        ),
        (
            "loader_plain_vs_loader_lz4",
            median(load_ratio("sink_loader_plain", "sink_loader")),
        ),
        (
            "batches_e2e_vs_curl_jsoneachrow",
            median(load_ratio("sink_batches_e2e", "curl_jsoneachrow")),
        ),
    ];
    let rss = runs.iter().filter_map(|r| r.rss).max();
    let rss_mb = rss.map(|b| b as f64 / (1 << 20) as f64);

    println!("\n{n} events, NDJSON {mb:.1} MB, Native+LZ4 {native_mb:.1} MB\n");
    if runs.len() > 1 {
        println!(
            "loads: the median of {} rounds; ratios: the median of each round's\n",
            runs.len()
        );
    }
    println!("| JSON → Arrow | events/s | MB/s | ns/event |");
    println!("|---|---|---|---|");
    for (k, e) in &eps {
        println!(
            "| {k} | {:.2} M | {:.0} | {:.0} |",
            e / 1e6,
            e * mb / n as f64,
            1e9 / e
        );
    }
    // CPU per row, in µs.
    let per_row = |v: &[(&'static str, f64)]| -> Vec<(&'static str, f64)> {
        v.iter().map(|&(k, s)| (k, s * 1e6 / n as f64)).collect()
    };
    let cpu_median = |server: bool| -> Vec<(&'static str, f64)> {
        names
            .iter()
            .filter_map(|&k| {
                let v: Vec<f64> = runs.iter().filter_map(|r| r.cpu(k, server)).collect();
                (!v.is_empty()).then(|| (k, median(v)))
            })
            .collect()
    };
    let (ch_cpu, client_cpu) = (per_row(&cpu_median(true)), per_row(&cpu_median(false)));
    let look = |v: &[(&str, f64)], k: &str| {
        v.iter()
            .find(|(n, _)| *n == k)
            .map_or("—".to_string(), |x| format!("{:.2}", x.1))
    };
    println!("\n| load into ClickHouse 18.16 | rows/s | seconds | server CPU µs/row | our side's CPU µs/row |");
    println!("|---|---|---|---|---|");
    for (k, r) in &rows {
        println!(
            "| {k} | {:.3} M | {:.2} | {} | {} |",
            r / 1e6,
            n as f64 / r,
            look(&ch_cpu, k),
            look(&client_cpu, k)
        );
    }
    let rss_batches_mb = runs
        .iter()
        .filter_map(|r| r.rss_batches)
        .max()
        .map(|b| b as f64 / (1 << 20) as f64);
    let mib = |m: Option<f64>| m.map_or("unknown".into(), |m| format!("{m:.0} MiB"));
    println!(
        "\nsink peak RSS: {} (target ≤ 256 MiB); on /v1/batches: {}\n",
        mib(rss_mb),
        mib(rss_batches_mb)
    );
    println!("| ratio | measured | target | met |");
    println!("|---|---|---|---|");
    for (k, r, t) in &ratios {
        println!(
            "| {k} | {r:.3} | ≥ {t} | {} |",
            if r >= t { "yes" } else { "no" }
        );
    }
    println!("\n| context ratio (no target) | measured |");
    println!("|---|---|");
    for (k, r) in &context {
        println!("| {k} | {r:.3} |");
    }

    if let Some(path) = &args.json {
        let obj = |v: &[(&str, f64)]| {
            serde_json::Value::Object(v.iter().map(|(k, x)| (k.to_string(), json!(x))).collect())
        };
        let out = json!({
            "events": n,
            "seed": args.seed,
            "ndjson_bytes": w.bytes(),
            "events_per_request": args.events_per_request,
            "concurrency": args.concurrency,
            "rows_per_s": obj(&rows),
            "json_to_arrow_events_per_s": obj(&eps),
            "sink_peak_rss_bytes": rss,
            "sink_peak_rss_mb": rss_mb,
            "ratios": serde_json::Value::Object(ratios.iter().map(|(k, r, _)| (k.to_string(), json!(r))).collect()),
            "targets": serde_json::Value::Object(ratios.iter().map(|(k, _, t)| (k.to_string(), json!(t))).collect()),
            "context_ratios": obj(&context),
            "load_reps": runs.len(),
            "rows_per_s_runs": serde_json::Value::Object(
                names.iter().map(|&k| (k.to_string(), json!(per_run(k)))).collect()
            ),
            "ratio_runs": serde_json::Value::Object(
                ratio_runs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
            ),
            "sink_peak_rss_bytes_runs": runs.iter().map(|r| r.rss).collect::<Vec<_>>(),
            "load_generator": runs.last().map(|r| &r.report),
            "load_generator_runs": runs.iter().map(|r| &r.report).collect::<Vec<_>>(),
            "sink_batches_peak_rss_bytes_runs": runs.iter().map(|r| r.rss_batches).collect::<Vec<_>>(),
            "load_generator_batches_runs": runs.iter().map(|r| &r.report_batches).collect::<Vec<_>>(),
            "server_cpu_us_per_row": obj(&ch_cpu),
            "client_cpu_us_per_row": obj(&client_cpu),
            "row_counts_ok": ok,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&out).unwrap())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(ok)
}

/// One round of the loads: each load's time and CPU seconds (the server's, and our
/// side's where it is ours), the sink's peak RSS and its load generator's report (for
/// the tracker's NDJSON, and for the edge's batches).
#[derive(Default)]
struct Round {
    loads: Vec<(&'static str, Duration, f64, Option<f64>)>,
    rss: Option<u64>,
    report: e2e::LoadReport,
    rss_batches: Option<u64>,
    report_batches: e2e::LoadReport,
}

impl Round {
    fn push(&mut self, what: &'static str, t: Duration, server_cpu: f64, our_cpu: Option<f64>) {
        self.loads.push((what, t, server_cpu, our_cpu));
    }

    fn load(&self, what: &str) -> &(&'static str, Duration, f64, Option<f64>) {
        self.loads
            .iter()
            .find(|l| l.0 == what)
            .expect("every round runs every load")
    }

    fn rows_per_s(&self, what: &str, n: usize) -> f64 {
        n as f64 / self.load(what).1.as_secs_f64()
    }

    fn cpu(&self, what: &str, server: bool) -> Option<f64> {
        let l = self.load(what);
        if server {
            Some(l.2)
        } else {
            l.3
        }
    }
}

/// The median of `v` (the upper one of an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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
