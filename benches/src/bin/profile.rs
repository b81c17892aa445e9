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
}

fn main() {
    let args = Args::parse();
    let w = Workload::new(args.seed, args.events);
    let mut plain = PlainState::default();
    let mut full = FullState::with_batch_rows(args.batch_rows);
    let mut run = || match args.path {
        Path::ArrowJson => arrow_json(&w),
        Path::SerdeJson => serde_json_builders(&w),
        Path::Plain => ingest_core_plain(&w, &mut plain),
        Path::Full => ingest_core_full(&w, &mut full),
    };
    let mut rows = run();
    for _ in 0..args.rounds {
        rows += run();
    }
    let want = w.events * (args.rounds + 1);
    assert_eq!(rows, want, "every event becomes a row");
    eprintln!("{:?}: {rows} rows", args.path);
}
