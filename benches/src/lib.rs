//! Benchmarks of this project against the peers a user would pick instead, and the
//! data they all run on.
//!
//! - [`gen`]: the deterministic page-view generator (our NDJSON and Plausible bodies),
//!   shared by the criterion benches, the `compare` load generator and other crates'
//!   tests. `cargo run -p benches --bin gen -- --events N --format ndjson --seed S`.
#![deny(missing_docs)]

pub mod gen;
mod gen_data;
