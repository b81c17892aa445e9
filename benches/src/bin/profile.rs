//! Runs one JSON → Arrow path of `benches::json_arrow` over generated events, with
//! nothing else in the process: the target for `perf record` and `valgrind
//! --tool=callgrind`, whose instruction counts do not move with the neighbours on a
//! shared machine the way wall-clock times do (see BENCHMARKS.md, "Where time goes").
//!
//! `cargo run --release -p benches --bin profile -- --path full --events 100000 --rounds 3`

use benches::json_arrow::{
    arrow_json, ingest_core_full, ingest_core_plain, serde_json_builders, FullState, PlainState,
    Workload,
};
use clap::{Parser, ValueEnum};
use std::time::Instant;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Path {
    ArrowJson,
    SerdeJson,
    Plain,
    Full,
}

/// Run one JSON → Arrow path for profiling.
#[derive(Parser, Debug)]
struct Args {
    /// Which path.
    #[arg(long, value_enum, default_value = "full")]
    path: Path,
    /// Events in the workload.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Times the whole workload is run (after one warm-up round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rows per batch of the full path (the benches use 8,192).
    #[arg(long, default_value_t = benches::json_arrow::BATCH_ROWS)]
    batch_rows: usize,
    /// Also run this path, alternating round by round with `--path`, and print the
    /// fastest round of each and their ratio (a quick check between two code versions;
    /// BENCHMARKS.md's figures come from criterion and `compare`).
    #[arg(long, value_enum)]
    against: Option<Path>,
}

fn main() {
    let args = Args::parse();
    let w = Workload::new(args.seed, args.events);
    let mut plain = PlainState::default();
    let mut full = FullState::with_batch_rows(args.batch_rows);
    let mut run = |path| match path {
        Path::ArrowJson => arrow_json(&w),
        Path::SerdeJson => serde_json_builders(&w),
        Path::Plain => ingest_core_plain(&w, &mut plain),
        Path::Full => ingest_core_full(&w, &mut full),
    };
    let Some(peer) = args.against else {
        let mut rows = run(args.path);
        for _ in 0..args.rounds {
            rows += run(args.path);
        }
        let want = w.events * (args.rounds + 1);
        assert_eq!(rows, want, "every event becomes a row");
        eprintln!("{:?}: {rows} rows", args.path);
        return;
    };
    let mut best = [f64::INFINITY; 2];
    for round in 0..=args.rounds {
        for (k, path) in [args.path, peer].into_iter().enumerate() {
            let t = Instant::now();
            assert_eq!(run(path), w.events, "every event becomes a row");
            // Round 0 warms caches and buffers up.
            if round > 0 {
                best[k] = best[k].min(t.elapsed().as_secs_f64());
            }
        }
    }
    let ns = |s: f64| s * 1e9 / w.events as f64;
    println!(
        "{:?} {:.0} ns/event, {:?} {:.0} ns/event: {:?} at {:.2}x {:?}'s speed (fastest of {} rounds)",
        args.path,
        ns(best[0]),
        peer,
        ns(best[1]),
        args.path,
        best[1] / best[0],
        peer,
        args.rounds
    );
}
