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
use std::process::ExitCode;
use std::time::Instant;

use benches::json_arrow::{self, FullState, PlainState, Workload};
use clap::Parser;

mod loads;
mod report;

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
/// on, so that no path always runs first, and every other round runs them in reverse,
/// so that no path always runs after the same one (what one leaves behind — freed
/// memory, cold caches — the next pays). Checks every run returns `n` rows.
fn interleaved_medians(
    reps: usize,
    n: usize,
    paths: &mut [(&'static str, &mut dyn FnMut() -> usize)],
) -> Result<Vec<(&'static str, f64)>, String> {
    let mut times = vec![Vec::new(); paths.len()];
    let k = paths.len();
    for round in 0..=reps.max(1) {
        for j in 0..k {
            let step = if round % 2 == 0 { j } else { k - j };
            let i = (round + step) % k;
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

/// The JSON → Arrow paths (interleaved rounds), then `--load-reps` rounds of the loads
/// ([`loads`]), then the figures ([`report`]). `Ok(false)`: a row count was wrong.
fn run(args: &Args) -> Result<bool, String> {
    let n = args.events;
    eprintln!("generating {n} events (seed {})…", args.seed);
    let w = Workload::with_requests(args.seed, n, usize::from(args.events_per_request));

    eprintln!(
        "JSON → Arrow, {} rounds of every path in turn (after a warm-up round)…",
        args.reps
    );
    let mut plain = PlainState::default();
    let mut full = FullState::default();
    let json_secs = interleaved_medians(
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
    let loads = loads::Loads::prepare(args, &w, &batches)?;
    let runs = (0..usize::from(args.load_reps))
        .map(|rep| {
            if args.load_reps > 1 {
                eprintln!("loads, round {} of {}:", rep + 1, args.load_reps);
            }
            loads.round(rep)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let ok = loads.row_counts_ok();
    let native_mb = loads.native_mb;
    drop(loads);
    drop(batches);
    report::report(args, &w, &json_secs, &runs, native_mb, ok)?;
    Ok(ok)
}
