//! # edge-worker
//!
//! The Cloudflare Worker in front of everything: it answers tracker requests, validates
//! and enriches them with [`ingest_core`], rate-limits and applies plan quotas, and hands
//! the accepted events to a Cloudflare Queue (queue mode) or to an in-isolate micro-batch
//! (direct mode); Arrow IPC batches then go to `sink-clickhouse`'s `POST /v1/batches`.
//! See `edge-worker/README.md` for deployment, bindings, secrets and measurements.
//!
//! The Workers glue (`#[event(fetch)]`, `#[event(queue)]`) exists only when compiled for
//! `wasm32`; the modules below are plain Rust, built and unit-tested natively too:
//!
//! - [`config`]: the worker's configuration, read from wrangler vars and secrets;
//! - [`reply`]: the JSON bodies and status codes of every answer;
//! - [`body`]: reading a request body within its limit, with or without `Content-Length`;
//! - [`messages`]: a request's events as Queue messages within the Queue's limits;
//! - [`quota`]: the per-isolate usage book that feeds ingest-core's quota decision;
//! - [`batch_id`]: the deduplication id of a batch posted to the sink;
//! - [`retry`]: the queue consumer's backoff, and which sink failures are retried;
//! - [`tracker`]: the `script.js` tracker served at `GET /script.js`.
#![deny(missing_docs)]

pub mod batch_id;
pub mod body;
pub mod config;
pub mod messages;
pub mod quota;
pub mod reply;
pub mod retry;
pub mod tracker;

#[cfg(target_arch = "wasm32")]
mod wasm;
