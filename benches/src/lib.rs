//! Benchmarks of this project against the peers a user would pick instead, and the
//! data they all run on.
//!
//! - [`gen`]: the deterministic page-view generator (our NDJSON and Plausible bodies),
//!   shared by the criterion benches, the `compare` load generator and other crates'
//!   tests. `cargo run -p benches --bin gen -- --events N --format ndjson --seed S`.
//! - [`json_arrow`]: JSON → Arrow by ingest-core (full and plain), arrow-json and
//!   serde_json, on the same events.
//! - [`chserver`], [`e2e`]: a ClickHouse on loopback and the loaders `compare` and
//!   `sink_ab` run; [`sink_run`]: the sink under test and its requests; [`loadgen`]:
//!   the load generator that posts them.
#![deny(missing_docs)]

pub mod chserver;
pub mod e2e;
pub mod gen;
mod gen_data;
pub mod json_arrow;
pub mod loadgen;
pub mod rng;
pub mod sink_run;

/// The exit code of a tool that checks row counts: success, 1 with "a row count was
/// wrong" (the counts were printed above), or 1 with the error.
pub fn exit_code(tool: &str, result: Result<bool, String>) -> std::process::ExitCode {
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("{tool}: a row count was wrong (see above)");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{tool}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
