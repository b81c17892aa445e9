//! Benchmarks of this project against the peers a user would pick instead, and the
//! data they all run on.
//!
//! - [`gen`]: the deterministic page-view generator (our NDJSON and Plausible bodies),
//!   shared by the criterion benches, the `compare` load generator and other crates'
//!   tests. `cargo run -p benches --bin gen -- --events N --format ndjson --seed S`.
//! - [`json_arrow`]: JSON → Arrow by ingest-core (full and plain), arrow-json and
//!   serde_json, on the same events.
//! - [`chserver`], [`e2e`]: a ClickHouse on loopback and the loaders `compare` runs.
#![deny(missing_docs)]

pub mod chserver;
pub mod e2e;
pub mod gen;
mod gen_data;
pub mod json_arrow;
pub mod rng;
