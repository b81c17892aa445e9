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
//! Ports: 19300-19399 on 127.0.0.1. The tests run one at a time (they share 2 cores),
//! but the listeners of the test proxies and recorders are never closed: a port stays
//! bound for the life of this binary, so every test takes ports of its own. In use (a
//! worker's port P also takes P + 1, its inspector):
//!
//! | test | sink | proxy, recorder, page | worker |
//! |---|---|---|---|
//! | `edge::queue_mode_end_to_end` | 19340 | | 19310 |
//! | `edge::direct_mode_end_to_end` | 19341 | | 19320 |
//! | `edge::queue_mode_hostile_bodies` | 19348 | | 19370 |
//! | `browser` | 19342 | page 19350 | 19330 |
//! | `retry` | 19343 | proxy 19344 | 19360 |
//! | `deadletter` (transient) | 19345 | proxy 19346, recorder 19347 | 19380 |
//! | `deadletter` (permanent) | 19352 | proxy 19353, recorder 19354 | 19390 |

mod browser;
mod deadletter;
mod edge;
mod harness;
mod retry;
mod sink;
