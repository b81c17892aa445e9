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
//! | `SITE_USAGE` | var (JSON) | none: 0 | month-to-date usage known before this isolate started, per site: `{"example.com": {"month_to_date": 12345, "over_since_ms": 1763000000000}}` |
//! | `RATE_LIMIT` | var (JSON) | `{"rate_per_sec":10,"burst":100,"max_keys":100000}` | ingest-core's GCRA per isolate, in events per second per client |
//! | `MAX_BODY_BYTES` | var | `131072` (128 KiB) | a request body over it is refused (413), by `Content-Length` before reading or while reading one without it; the default keeps a full request's events, encoded, well within a Queue `sendBatch` (256 KB) |
//! | `DIRECT_FLUSH_MS` | var | `1000` | direct mode: a micro-batch is posted at most this long after its first event |
//! | `DIRECT_MAX_ROWS` | var | `1000` | direct mode: a micro-batch is posted as soon as it holds this many events |
//! | `QUEUE_RETRY_BASE_SECS` | var | `10` | queue mode: delay before redelivering messages whose post failed, doubled per attempt ([`crate::retry`]) |
//! | `QUEUE_RETRY_MAX_SECS` | var | `300` | queue mode: the longest such delay (at least the base, at most 43200) |
//!
//! Bindings (optional): `EVENTS` (Queue producer; its presence selects queue mode),
//! `DEAD_LETTERS` (producer of the dead-letter queue: where the consumer puts messages
//! the sink refuses for good), `RATE_LIMITER` (Cloudflare's Rate Limiting binding,
//! checked after the GCRA).

use std::collections::HashMap;
use std::fmt;

use ingest_core::{QuotaState, RateLimitConfig, SiteRegistry};
use serde::Deserialize;

use crate::retry::{Backoff, MAX_QUEUE_DELAY_SECS};

/// Name of the Queue producer binding; when it exists the worker runs in queue mode.
pub const QUEUE_BINDING: &str = "EVENTS";
/// Name of the producer binding of the dead-letter queue (queue mode, optional).
pub const DEAD_LETTER_BINDING: &str = "DEAD_LETTERS";
/// Name of the optional Cloudflare Rate Limiting binding.
pub const RATE_LIMITER_BINDING: &str = "RATE_LIMITER";

/// Default of `MAX_BODY_BYTES`: 128 KiB. Every event of a request goes into one Queue
/// `sendBatch` (at most 256 KB); a body of this size encodes to well under that unless
/// its properties are escaping-heavy (see [`crate::messages`]).
pub const DEFAULT_MAX_BODY_BYTES: usize = 128 * 1024;

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

/// Usage of a site known from outside this isolate (e.g. a month-to-date count exported
/// from ClickHouse into the `SITE_USAGE` var), the starting point of the isolate's book.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageSeed {
    /// Events counted this UTC month before this isolate started.
    #[serde(default)]
    pub month_to_date: u64,
    /// When the site first crossed its plan's limit this month (Unix ms), if it did.
    #[serde(default)]
    pub over_since_ms: Option<i64>,
}

impl UsageSeed {
    /// The ingest-core quota state this seed starts from.
    pub fn state(&self) -> QuotaState {
        QuotaState {
            over_since_ms: self.over_since_ms,
        }
    }
}

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
    /// Month-to-date usage per (lowercase) site id known at start.
    pub usage: HashMap<String, UsageSeed>,
    /// The per-isolate GCRA limiter.
    pub rate_limit: RateLimitConfig,
    /// Largest request body accepted, bytes (ingest-core's `max_body_bytes` at the edge).
    pub max_body_bytes: usize,
    /// Direct mode: maximum age of a micro-batch, ms.
    pub direct_flush_ms: u64,
    /// Direct mode: maximum rows of a micro-batch.
    pub direct_max_rows: usize,
    /// Queue mode: the backoff of redeliveries after a failed post.
    pub retry: Backoff,
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
        let usage: HashMap<String, UsageSeed> = match get("SITE_USAGE") {
            None => HashMap::new(),
            Some(json) => serde_json::from_str::<HashMap<String, UsageSeed>>(&json)
                .map_err(|e| ConfigError {
                    var: "SITE_USAGE",
                    reason: format!("expected {{\"site\": {{\"month_to_date\": n}}}}: {e}"),
                })?
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
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
        Ok(EdgeConfig {
            retry: Backoff {
                base_secs,
                max_secs,
            },
            sink_url: get("SINK_URL").map(|u| u.trim_end_matches('/').to_owned()),
            batch_token: get("BATCH_TOKEN"),
            salt_secret,
            sites,
            usage,
            rate_limit,
            max_body_bytes: number(&get, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
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
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_with_only_the_salt() {
        let c = EdgeConfig::from_vars(vars(&[("SALT_SECRET", "s")])).unwrap();
        assert!(c.sites.is_none() && c.usage.is_empty() && c.sink_url.is_none());
        assert_eq!(c.rate_limit, RateLimitConfig::default());
        assert_eq!((c.direct_flush_ms, c.direct_max_rows), (1000, 1000));
        assert_eq!(c.retry, Backoff::default());
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.batches_url().unwrap_err().var, "SINK_URL");
    }

    #[test]
    fn the_salt_is_required() {
        assert_eq!(
            EdgeConfig::from_vars(vars(&[("SALT_SECRET", " ")]))
                .unwrap_err()
                .var,
            "SALT_SECRET"
        );
    }

    #[test]
    fn full_configuration() {
        let c = EdgeConfig::from_vars(vars(&[
            ("SALT_SECRET", "s"),
            ("SINK_URL", "http://127.0.0.1:1/"),
            (
                "SITES",
                r#"{"sites":{"Example.com":{"hostnames":["example.com"],"plan":"free"}}}"#,
            ),
            (
                "SITE_USAGE",
                r#"{"Example.com":{"month_to_date":5,"over_since_ms":7}}"#,
            ),
            ("RATE_LIMIT", r#"{"rate_per_sec":2,"burst":3}"#),
            ("DIRECT_FLUSH_MS", "250"),
            ("QUEUE_RETRY_BASE_SECS", "5"),
            ("QUEUE_RETRY_MAX_SECS", "600"),
        ]))
        .unwrap();
        assert_eq!(c.batches_url().unwrap(), "http://127.0.0.1:1/v1/batches");
        assert_eq!(c.sites.unwrap().get("example.com").unwrap().plan, "free");
        assert_eq!(c.usage["example.com"].month_to_date, 5);
        assert_eq!(c.usage["example.com"].state().over_since_ms, Some(7));
        assert_eq!((c.rate_limit.rate_per_sec, c.rate_limit.burst), (2.0, 3));
        assert_eq!(c.direct_flush_ms, 250);
        assert_eq!(
            c.retry,
            Backoff {
                base_secs: 5,
                max_secs: 600
            }
        );
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (var, value) in [
            ("SITES", r#"{"sites":{"a.com":{"plan":"gold"}}}"#),
            ("SITE_USAGE", "[]"),
            ("RATE_LIMIT", r#"{"rate":1}"#),
            ("DIRECT_FLUSH_MS", "-1"),
            ("DIRECT_MAX_ROWS", "x"),
            ("QUEUE_RETRY_BASE_SECS", "0"),
            ("QUEUE_RETRY_BASE_SECS", "43201"),
            ("QUEUE_RETRY_MAX_SECS", "5"),
            ("QUEUE_RETRY_MAX_SECS", "86400"),
            ("MAX_BODY_BYTES", "1e6"),
        ] {
            let err =
                EdgeConfig::from_vars(vars(&[("SALT_SECRET", "s"), (var, value)])).unwrap_err();
            assert_eq!(err.var, var, "{err}");
        }
    }
}
