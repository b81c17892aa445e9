//! Integration tests of ingest-core, one binary.
//!
//! Needs nothing running. The `example` module builds the `ndjson_to_arrow` example
//! with cargo, runs it, and reads its output with `python3` and `pyarrow`: both must be
//! installed (`pip install pyarrow`); the test fails saying which one is missing.

mod batch;
mod common;
mod conform;
mod encode;
mod example;
mod quota;
mod ratelimit;
mod sites;
