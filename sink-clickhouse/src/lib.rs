//! # sink-clickhouse
//!
//! The native sink: receives tracker events and Arrow batches over HTTP, keeps every
//! acknowledged event in a write-ahead spool on disk, and bulk-loads ClickHouse
//! (Native format, LZ4 framing, dedup tokens) or, with no ClickHouse configured,
//! writes Parquet files. See the crate README for the flags and the API.
#![warn(missing_docs)]
// One `unsafe` block: the cache prefetch hint of the loader's gathers
// (`clickhouse/native/ordered.rs`).
#![deny(unsafe_code)]

pub mod clickhouse;
pub mod config;
pub mod loader;
pub mod metrics;
pub mod parquet_out;
pub mod quota;
pub mod server;
pub mod spool;
pub mod store;
