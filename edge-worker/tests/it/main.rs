//! Integration tests of the edge worker in the real Workers runtime.
//!
//! What they need (they fail, naming the missing piece, without it):
//! - `scripts/setup-wasm` run once (wasm32 toolchain, worker-build, wasm-bindgen,
//!   wrangler in `edge-worker/node_modules`); `scripts/edge-dev` builds the worker;
//! - the sink: `sink-clickhouse` built by the test (`cargo build -p sink-clickhouse`),
//!   run in embedded Parquet mode, its files read back with python3 + pyarrow; or, with
//!   `EDGE_IT_STANDIN_SINK=1`, an in-process stand-in of `/v1/batches`;
//! - `gzip` (the tracker's size), and Debian's `chromium` for the browser test.
//!
//! Ports: 19300-19399 on 127.0.0.1. The tests run one at a time (they share 2 cores).

mod browser;
mod deadletter;
mod edge;
mod harness;
mod retry;
mod sink;
