//! The worker's configuration: wrangler `[vars]` and secrets, read once per isolate.
//!
//! Every value is a string (wrangler vars and secrets are strings); JSON where it is
//! structured. The table is the documentation (repeated in `edge-worker/README.md`):
//!
//! | name | kind | default | meaning |
//! |---|---|---|---|
//! | `SINK_URL` | var | none (required to ship batches) | base URL of `sink-clickhouse`; batches go to `${SINK_URL}/v1/batches` |
//! | `BATCH_TOKEN` | secret | none (required to ship batches) | bearer token of `/v1/batches` (the sink's `--batch-token`) |
//! | `SALT_SECRET` | secret | none (required) | secret of the daily visitor salt; the same as the sink's, so both compute the same `visitor_id` |
//! | `SITES` | var (JSON) | none: any site | `{"sites": {"example.com": {"hostnames": ["example.com"], "plan": "growth"}}}` (ingest-core's `SiteRegistry`) |
//! | `SITE_USAGE` | var (JSON) | none: 0 | month-to-date usage known before this isolate started, per site: `{"example.com": {"month_to_date": 12345, "over_since_ms": 1763000000000}}`; keys are canonicalized like site ids (trimmed, ASCII-lowercased), two keys of one site (or one key twice) refused |
//! | `RATE_LIMIT` | var (JSON) | `{"rate_per_sec":10,"burst":100,"max_keys":100000}` | ingest-core's GCRA per isolate, in events per second per client |
//! | `MAX_BODY_BYTES` | var | `131072` (128 KiB; 1024–262144) | a request body over it is refused (413), by `Content-Length` before reading or while reading one without it; the default keeps a full request's events, encoded, well within a Queue `sendBatch` (256 KB) |
//! | `DIRECT_FLUSH_MS` | var | `1000` | direct mode: a micro-batch is posted at most this long after its first event |
//! | `DIRECT_MAX_ROWS` | var | `1000` | direct mode: a micro-batch is posted as soon as it holds this many events |
//! | `QUEUE_RETRY_BASE_SECS` | var | `10` | queue mode: delay before redelivering messages whose post failed, doubled per attempt ([`crate::retry`]) |
//! | `QUEUE_RETRY_MAX_SECS` | var | `300` | queue mode: the longest such delay (at least the base, at most 43200) |
//! | `RATE_LIMITER_PERIOD_SECS` | var | `10` | the `period` of the `RATE_LIMITER` binding (Cloudflare allows only 10 or 60): the `Retry-After` of a request that binding refuses |
//!
//! Per-request limits of ingest-core's parsers: the table in the `limits` module.
//!
//! Bindings (optional): `EVENTS` (Queue producer; its presence selects queue mode),
//! `DEAD_LETTERS` (producer of the dead-letter queue: where the consumer puts messages
//! the sink refuses for good), `RATE_LIMITER` (Cloudflare's Rate Limiting binding,
//! checked after the GCRA).

mod limits;
mod usage;

use std::collections::HashMap;
use std::fmt;

use ingest_core::{Limits, RateLimitConfig, SiteRegistry};

use crate::retry::{Backoff, MAX_QUEUE_DELAY_SECS};

pub use limits::DEFAULT_MAX_BODY_BYTES;
pub use usage::UsageSeed;

/// Name of the Queue producer binding; when it exists the worker runs in queue mode.
pub const QUEUE_BINDING: &str = "EVENTS";
/// Name of the producer binding of the dead-letter queue (queue mode, optional).
pub const DEAD_LETTER_BINDING: &str = "DEAD_LETTERS";
/// Name of the optional Cloudflare Rate Limiting binding.
pub const RATE_LIMITER_BINDING: &str = "RATE_LIMITER";

/// The periods, in seconds, that Cloudflare's Rate Limiting binding accepts (its
/// `simple = { limit, period }`), hence the only values of `RATE_LIMITER_PERIOD_SECS`.
pub const RATE_LIMITER_PERIODS: [u32; 2] = [10, 60];

/// Default of `RATE_LIMITER_PERIOD_SECS`: the commented binding in `wrangler.toml`.
pub const DEFAULT_RATE_LIMITER_PERIOD_SECS: u32 = 10;

/// A configuration value that cannot be used, named after its variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable or secret.
    pub var: &'static str,
    /// Why it cannot be used.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The worker's configuration (see the module docs for each variable).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Base URL of the sink, without the trailing `/v1/batches`.
    pub sink_url: Option<String>,
    /// Bearer token for `/v1/batches`.
    pub batch_token: Option<String>,
    /// Secret of the daily salt.
    pub salt_secret: String,
    /// Known sites; `None` accepts any site (no quota applies then).
    pub sites: Option<SiteRegistry>,
    /// Month-to-date usage per (canonical) site id known at start.
    pub usage: HashMap<String, UsageSeed>,
    /// The per-isolate GCRA limiter.
    pub rate_limit: RateLimitConfig,
    /// The per-request limits of ingest-core's pipeline at the edge: `MAX_BODY_BYTES`
    /// and the limit vars of the module docs, ingest-core's defaults for the rest.
    pub limits: Limits,
    /// Direct mode: maximum age of a micro-batch, ms.
    pub direct_flush_ms: u64,
    /// Direct mode: maximum rows of a micro-batch.
    pub direct_max_rows: usize,
    /// Queue mode: the backoff of redeliveries after a failed post.
    pub retry: Backoff,
    /// The `period` of the `RATE_LIMITER` binding, seconds (10 or 60): the `Retry-After`
    /// of a request it refuses, since its count starts again within that time.
    pub rate_limiter_period_secs: u32,
}

impl EdgeConfig {
    /// Reads the configuration through `get` (a var or secret by name; `None` when unset
    /// or empty). Fails on a malformed value, naming it: better a clear error on the first
    /// request than a worker that silently ignores its sites or limits.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let salt_secret = get("SALT_SECRET").ok_or_else(|| ConfigError {
            var: "SALT_SECRET",
            reason: "not set: `wrangler secret put SALT_SECRET` (or a dev-only var)".into(),
        })?;
        let sites = match get("SITES") {
            None => None,
            Some(json) => {
                Some(
                    serde_json::from_str::<SiteRegistry>(&json).map_err(|e| ConfigError {
                        var: "SITES",
                        reason: format!("not a valid sites document: {e}"),
                    })?,
                )
            }
        };
        let usage = match get("SITE_USAGE") {
            None => HashMap::new(),
            Some(json) => usage::read(&json)?,
        };
        let rate_limit = match get("RATE_LIMIT") {
            None => RateLimitConfig::default(),
            Some(json) => serde_json::from_str(&json).map_err(|e| ConfigError {
                var: "RATE_LIMIT",
                reason: format!("expected {{\"rate_per_sec\", \"burst\", \"max_keys\"}}: {e}"),
            })?,
        };
        let base_secs: u32 = number(&get, "QUEUE_RETRY_BASE_SECS", Backoff::default().base_secs)?;
        let max_secs: u32 = number(&get, "QUEUE_RETRY_MAX_SECS", Backoff::default().max_secs)?;
        if base_secs == 0 || base_secs > MAX_QUEUE_DELAY_SECS {
            return Err(ConfigError {
                var: "QUEUE_RETRY_BASE_SECS",
                reason: format!("{base_secs}: 1 to {MAX_QUEUE_DELAY_SECS} seconds expected"),
            });
        }
        if max_secs < base_secs || max_secs > MAX_QUEUE_DELAY_SECS {
            return Err(ConfigError {
                var: "QUEUE_RETRY_MAX_SECS",
                reason: format!(
                    "{max_secs}: QUEUE_RETRY_BASE_SECS ({base_secs}) to {MAX_QUEUE_DELAY_SECS} seconds expected"
                ),
            });
        }
        let rate_limiter_period_secs: u32 = number(
            &get,
            "RATE_LIMITER_PERIOD_SECS",
            DEFAULT_RATE_LIMITER_PERIOD_SECS,
        )?;
        if !RATE_LIMITER_PERIODS.contains(&rate_limiter_period_secs) {
            return Err(ConfigError {
                var: "RATE_LIMITER_PERIOD_SECS",
                reason: format!(
                    "{rate_limiter_period_secs}: 10 or 60 expected (the periods Cloudflare's Rate Limiting binding allows; set the binding's `period`)"
                ),
            });
        }
        let limits = limits::read(&get)?;
        if let Some(why) = rate_limit.refuses_requests_of(limits.max_events_per_request) {
            return Err(ConfigError {
                var: "MAX_EVENTS_PER_REQUEST",
                reason: format!("{why} (RATE_LIMIT's \"burst\")"),
            });
        }
        Ok(EdgeConfig {
            retry: Backoff {
                base_secs,
                max_secs,
            },
            rate_limiter_period_secs,
            limits,
            sink_url: get("SINK_URL").map(|u| u.trim_end_matches('/').to_owned()),
            batch_token: get("BATCH_TOKEN"),
            salt_secret,
            sites,
            usage,
            rate_limit,
            direct_flush_ms: number(&get, "DIRECT_FLUSH_MS", 1000)?,
            direct_max_rows: number(&get, "DIRECT_MAX_ROWS", 1000)?.max(1),
        })
    }

    /// The sink's batch endpoint, or why batches cannot be shipped.
    pub fn batches_url(&self) -> Result<String, ConfigError> {
        match &self.sink_url {
            Some(u) => Ok(format!("{u}/v1/batches")),
            None => Err(ConfigError {
                var: "SINK_URL",
                reason: "not set: the worker has nowhere to send batches".into(),
            }),
        }
    }
}

fn number<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError {
            var,
            reason: format!("{v:?} is not a non-negative integer"),
        }),
    }
}

#[cfg(test)]
mod tests;
