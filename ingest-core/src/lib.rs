//! # ingest-core
//!
//! Everything that decides *what a page-view event is*, in one crate that does no I/O
//! and reads no clock, so it compiles both to `wasm32-unknown-unknown` (the Cloudflare
//! Worker) and natively (the ClickHouse sink, and any Rust service that links it).
//!
//! Raw tracker requests go in as bytes; validated, normalized, enriched, privacy-safe
//! Arrow [`RecordBatch`](arrow_array::RecordBatch)es of schema v1 come out.
//! Time, per-request randomness and salts are passed in by the caller.
#![doc = include_str!("wire/contract.md")]
#![doc = include_str!("service.md")]
#![deny(missing_docs)]
// One `unsafe` block, in `strcol.rs` (with its proof and a debug-build check).
#![deny(unsafe_code)]
#![warn(clippy::disallowed_methods)]

mod direct;
mod error;
mod event;
mod limits;
mod normalize;
mod pipeline;
mod privacy;
mod referrer;
pub mod schema;
mod short_eq;
mod useragent;
mod wire;

pub use direct::Appended;
pub use error::{Error, Problem, Rejection, Result};
pub use event::{Event, RawEvent, Timings};
pub use limits::Limits;
pub use normalize::{normalize_url, normalize_url_slow, NormalizeConfig, PageUrl};
pub use pipeline::{Outcome, Pipeline, PipelineConfig, RequestContext};
pub use privacy::{client_key, day_of, event_id, visitor_id, DailySalt, VisitorHasher, DAY_MS};
pub use referrer::{
    normalize_referrer, normalize_referrer_slow, referrer_source, Referrer, BRAND_SOURCES,
    DOMAIN_SOURCES,
};
pub use useragent::{
    classify_user_agent, device_class, UaCache, UaInfo, BOT_TOKENS, BROWSERS, MAX_CACHED_UA_LEN,
    MOBILE_MAX_WIDTH, TABLET_MAX_WIDTH,
};
pub use wire::{
    parse, parse_own, parse_pixel, parse_plausible, Format, Parsed, Parser, CORS_ALLOW_ORIGIN,
    CORS_PREFLIGHT_HEADERS,
};

// Rate limits, quotas, the site registry, batching into Arrow, encoding.
mod ratelimit;
pub use ratelimit::{Decision, RateLimitConfig, RateLimiter};
mod quota;
pub use quota::{
    check_quota, check_site_quota, month_bounds, plan, Plan, QuotaDecision, QuotaState, PLANS,
};
mod sites;
mod strcol;
pub use sites::{canonical_site, map_entries, SiteConfig, SiteRegistry};
mod batch;
mod conform;
pub use batch::{event_bytes, events_to_batch, BatchConfig, Batcher};
pub use conform::{batch_to_events, conform};
mod encode;
#[cfg(feature = "parquet")]
pub use encode::write_parquet;
pub use encode::{
    read_ipc, read_ipc_limited, read_ipc_v1_body, scan_ipc, write_ipc, IpcEncoder, IpcLimits,
    IpcStats, MAX_IPC_EXPANSION, MIN_IPC_DECODED,
};
