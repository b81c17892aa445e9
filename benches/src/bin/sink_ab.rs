//! A/B of two `sink-clickhouse` builds end to end: the same N generated page views
//! posted to each (HTTP in, validation, enrichment, spool with fsync, Native load) into
//! one real ClickHouse 18.16 on loopback, in alternating runs (A B B A A B …, so a
//! machine whose speed drifts slows both alike), each timed until ClickHouse holds
//! every row. Prints every run, the median rows/s of each build, and the ratio B / A of
//! each adjacent A–B pair of runs as a geometric mean with its standard error (for
//! rows/s, the sink's CPU per event, and the CPU of the whole run: sink, server and
//! load generator); exits 1 if a row count is wrong, never on speed.
//!
//! `cargo run --release -p benches --bin sink_ab -- --a OLD/sink-clickhouse --b NEW/sink-clickhouse`
//!
//! `compare` measures one build against the peers; this is the tool for deciding
//! whether a change to the sink made it faster, on a machine whose single runs move by
//! ±15%. Trust the paired ratio, and only past about two standard errors: two copies
//! of one build here (session 17), 15 runs each, had medians 0.94–1.07 apart in four
//! tries, and a paired ratio of 0.999 ± 0.017.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use benches::chserver::ClickHouseServer;
use benches::e2e;
use benches::json_arrow::Workload;
use benches::sink_run::{self, Sink};
use clap::Parser;

/// Ports of this tool (inside the benches' assigned range, apart from `compare`'s).
const PORTS: std::ops::Range<u16> = 19600..19650;
const DB: &str = "analytics";
const TABLE: &str = "events";

/// Load the same events through two sink builds in alternating runs.
#[derive(Parser, Debug)]
struct Args {
    /// Build A (the baseline).
    #[arg(long)]
    a: PathBuf,
    /// Build B (the change).
    #[arg(long)]
    b: PathBuf,
    /// Number of events per run.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs of each build.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Events per HTTP request (at most the sink's limit, 100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=100))]
    events_per_request: u16,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// After each run, wait this long with the sink stopped and report the server's
    /// CPU per row including that time, and its active parts before and after: the
    /// merges a run leaves behind are work its window does not show.
    #[arg(long, default_value_t = 0.0)]
    settle_secs: f64,
    /// Stop the server's merges of the table during B's runs (`SYSTEM STOP MERGES`,
    /// started again after each), A's running as usual: with the same build as A and
    /// B, what the merges a run triggers cost it inside its window (BENCHMARKS.md,
    /// session 18: the most that larger inserts could buy).
    #[arg(long)]
    stop_merges_in_b: bool,
    /// Post the events as the edge worker's queue consumers do (`/v1/batches`, Arrow
    /// IPC + LZ4 batches of 100 events with a token and batch id) instead of as NDJSON
    /// to `/e` (`--events-per-request` then has no effect).
    #[arg(long)]
    edge_batches: bool,
    /// Give up on one run after this many seconds.
    #[arg(long, default_value_t = 600)]
    deadline_secs: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    benches::exit_code("sink_ab", run(&args))
}

fn run(args: &Args) -> Result<bool, String> {
    let n = args.events;
    eprintln!("generating {n} events (seed {})…", args.seed);
    let w = Workload::with_requests(args.seed, n, usize::from(args.events_per_request));
    let (path, (body, requests)) = if args.edge_batches {
        ("/v1/batches", sink_run::edge_requests(&w)?)
    } else {
        ("/e", sink_run::tracker_requests(&w))
    };
    let ch = ClickHouseServer::start(PORTS)?;
    let url = ch.url();
    let st = Command::new(&args.a)
        .args(["migrate", "--clickhouse-url", &url])
        .env("RUST_LOG", "warn")
        .status()
        .map_err(|e| format!("{}: {e}", args.a.display()))?;
    if !st.success() {
        return Err(format!("sink-clickhouse migrate failed: {st}"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let work = tempfile::Builder::new()
        .prefix("bench-sink-ab-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let table = format!("{DB}.{TABLE}");
    let deadline = Duration::from_secs(args.deadline_secs);
    let mut ok = true;
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut total_cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut rss_mib: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    // A B, B A, A B, …: each build runs first in every other pair.
    let order: Vec<usize> = (0..args.runs.max(1))
        .flat_map(|r| if r % 2 == 0 { [0, 1] } else { [1, 0] })
        .collect();
    for (k, &which) in order.iter().enumerate() {
        let (name, bin) = [("A", &args.a), ("B", &args.b)][which];
        let dir = work.path().join(format!("sink-{k}"));
        let sink = Sink::start(bin, &url, &dir, PORTS.start + 10..PORTS.end)?;
        let stop_merges = which == 1 && args.stop_merges_in_b;
        if stop_merges {
            ch.query(&format!("SYSTEM STOP MERGES {table}"))?;
        }
        let ch_cpu0 = e2e::cpu_secs(ch.pid()).unwrap_or(0.0);
        // This process is the load generator (and the row-count polls).
        let me = std::process::id();
        let gen_cpu0 = e2e::cpu_secs(me).unwrap_or(0.0);
        let t0 = Instant::now();
        let report = rt.block_on(benches::loadgen::load(
            format!("http://127.0.0.1:{}{path}", sink.port),
            body.clone(),
            requests.clone(),
            args.concurrency,
            deadline,
        ));
        let secs = sink
            .wait_loaded(&ch, &table, n as u64, t0, deadline)?
            .as_secs_f64();
        let rss = e2e::peak_rss_bytes(sink.child.id()).unwrap_or(0);
        let sink_cpu = e2e::cpu_secs(sink.child.id()).unwrap_or(0.0);
        let ch_cpu = e2e::cpu_secs(ch.pid()).unwrap_or(0.0) - ch_cpu0;
        let gen_cpu = e2e::cpu_secs(me).unwrap_or(0.0) - gen_cpu0;
        drop(sink);
        let c = ch.count(&table)?;
        if args.settle_secs > 0.0 {
            let parts = || {
                ch.query(&format!(
                    "SELECT count() FROM system.parts WHERE active AND database = '{DB}' AND table = '{TABLE}'"
                ))
                .map(|t| t.trim().to_owned())
            };
            let before = parts()?;
            std::thread::sleep(Duration::from_secs_f64(args.settle_secs));
            let settled = e2e::cpu_secs(ch.pid()).unwrap_or(0.0) - ch_cpu0;
            eprintln!(
                "     {name}: active parts {before} at the end, {} after {:.0} s; ClickHouse CPU µs/row with them: {:.2}",
                parts()?,
                args.settle_secs,
                settled * 1e6 / n as f64
            );
        }
        let rate = n as f64 / secs;
        eprintln!(
            "  {name}: {:.3} M rows/s ({secs:.2} s; sent in {:.2} s; CPU µs/event: sink {:.2}, ClickHouse {:.2}, load generator {:.2}; {} failed; peak RSS {} MiB){}",
            rate / 1e6,
            report.send_secs,
            sink_cpu * 1e6 / n as f64,
            ch_cpu * 1e6 / n as f64,
            gen_cpu * 1e6 / n as f64,
            report.failed,
            rss >> 20,
            if c == n as u64 {
                String::new()
            } else {
                format!(" WRONG ROW COUNT: {c} of {n}")
            }
        );
        ok &= c == n as u64;
        rates[which].push(rate);
        cpu[which].push(sink_cpu);
        total_cpu[which].push(sink_cpu + ch_cpu + gen_cpu);
        rss_mib[which].push(rss >> 20);
        if stop_merges {
            ch.query(&format!("SYSTEM START MERGES {table}"))?;
        }
        ch.query(&format!("TRUNCATE TABLE {table}"))?;
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Pairs first (the runs still in order), then the medians.
    let paired = |v: &[Vec<f64>; 2]| e2e::paired_ratio(&v[0], &v[1]);
    let show = |p: Option<(f64, f64)>| {
        p.map_or("—".to_owned(), |(r, se)| {
            format!("{r:.3} ± {:.3}", r * se)
        })
    };
    let (pr, pc, pt) = (paired(&rates), paired(&cpu), paired(&total_cpu));
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut rates[0]), median(&mut rates[1]));
    let (ca, cb) = (median(&mut cpu[0]), median(&mut cpu[1]));
    let range = |v: &[u64]| {
        let (lo, hi) = (v.iter().min(), v.iter().max());
        format!("{}–{}", lo.unwrap_or(&0), hi.unwrap_or(&0))
    };
    println!(
        "median rows/s: A {:.3} M, B {:.3} M; B / A = {:.3}; sink CPU µs/event: A {:.2}, B {:.2} ({} runs each, {n} events)",
        a / 1e6,
        b / 1e6,
        b / a,
        ca * 1e6 / n as f64,
        cb * 1e6 / n as f64,
        rates[0].len()
    );
    println!(
        "paired B / A (geometric mean of {} adjacent pairs ± standard error): rows/s {}, sink CPU {}, whole run's CPU {}; peak RSS MiB: A {}, B {}",
        rates[0].len().min(rates[1].len()),
        show(pr),
        show(pc),
        show(pt),
        range(&rss_mib[0]),
        range(&rss_mib[1])
    );
    Ok(ok)
}
