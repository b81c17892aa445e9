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
//! | `SITE_USAGE` | var (JSON) | none: 0 | month-to-date usage known before this isolate started, per site: `{"example.com": {"month_to_date": 12345, "over_since_ms": 1763000000000}}`; keys are canonicalized like site ids (trimmed, ASCII-lowercased), two keys of one site refused |
//! | `RATE_LIMIT` | var (JSON) | `{"rate_per_sec":10,"burst":100,"max_keys":100000}` | ingest-core's GCRA per isolate, in events per second per client |
//! | `MAX_BODY_BYTES` | var | `131072` (128 KiB; 1024–262144) | a request body over it is refused (413), by `Content-Length` before reading or while reading one without it; the default keeps a full request's events, encoded, well within a Queue `sendBatch` (256 KB) |
//! | `DIRECT_FLUSH_MS` | var | `1000` | direct mode: a micro-batch is posted at most this long after its first event |
//! | `DIRECT_MAX_ROWS` | var | `1000` | direct mode: a micro-batch is posted as soon as it holds this many events |
//! | `QUEUE_RETRY_BASE_SECS` | var | `10` | queue mode: delay before redelivering messages whose post failed, doubled per attempt ([`crate::retry`]) |
//! | `QUEUE_RETRY_MAX_SECS` | var | `300` | queue mode: the longest such delay (at least the base, at most 43200) |
//! | `RATE_LIMITER_PERIOD_SECS` | var | `10` | the `period` of the `RATE_LIMITER` binding (Cloudflare allows only 10 or 60): the `Retry-After` of a request that binding refuses |
//!
//! Per-request limits of ingest-core's parsers ([`Limits`]); a value at a limit is
//! accepted, one past it rejected, naming the field. Each var is a whole number within
//! its bounds (inclusive); unset, the default applies (ingest-core's own defaults):
//!
//! | name | default | bounds | what is over it |
//! |---|---|---|---|
//! | `MAX_EVENTS_PER_REQUEST` | `100` | 1–1000, and at most `RATE_LIMIT`'s `burst` while that limiter is on (a request of more events than the burst is never admitted) | the request (400, `body`, `too_many_events`): array elements or NDJSON lines |
//! | `MAX_URL_BYTES` | `2048` | 64–16384 | the event (`url`, `too_long`) |
//! | `MAX_REFERRER_BYTES` | `2048` | 64–16384 | the event (`referrer`, `too_long`) |
//! | `MAX_NAME_BYTES` | `120` | 16–1024 | the event (`name`, `too_long`) |
//! | `MAX_PROPS` | `30` | 1–100 | the event (`props`, `too_many_props`): properties per event |
//! | `MAX_PROP_KEY_BYTES` | `300` | 16–1024 | the event (`props`, `too_long`) |
//! | `MAX_PROP_VALUE_BYTES` | `2000` | 16–16384 | the event (`props.<key>`, `too_long`) |
//!
//! The upper bounds keep one request's CPU (events) and one event's size (fields) within
//! what a Worker and a Queue message take. Whatever the limits, an event over 100 KiB
//! once encoded as JSON is refused alone (`props`, `too_large`: the Queue's message
//! limit, see [`crate::messages`]), and a request's events over one Queue `sendBatch`
//! are refused whole (413). The site id's length (253, a DNS name) and the JSON nesting
//! depth (8) are not configurable: they guard the parser, not a product choice.
//!
//! Bindings (optional): `EVENTS` (Queue producer; its presence selects queue mode),
//! `DEAD_LETTERS` (producer of the dead-letter queue: where the consumer puts messages
//! the sink refuses for good), `RATE_LIMITER` (Cloudflare's Rate Limiting binding,
//! checked after the GCRA).

use std::collections::HashMap;
use std::fmt;

use ingest_core::{Limits, QuotaState, RateLimitConfig, SiteRegistry};
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

/// The periods, in seconds, that Cloudflare's Rate Limiting binding accepts (its
/// `simple = { limit, period }`), hence the only values of `RATE_LIMITER_PERIOD_SECS`.
pub const RATE_LIMITER_PERIODS: [u32; 2] = [10, 60];

/// Default of `RATE_LIMITER_PERIOD_SECS`: the commented binding in `wrangler.toml`.
pub const DEFAULT_RATE_LIMITER_PERIOD_SECS: u32 = 10;

/// A var that sets one of ingest-core's per-request [`Limits`].
struct LimitVar {
    /// The var's name.
    var: &'static str,
    /// Smallest value accepted.
    min: usize,
    /// Largest value accepted.
    max: usize,
    /// The field of [`Limits`] it sets.
    field: fn(&mut Limits) -> &mut usize,
}

/// The limit vars; the module docs' table says what each refuses and why its bounds
/// are where they are.
const LIMIT_VARS: [LimitVar; 8] = [
    LimitVar {
        var: "MAX_BODY_BYTES",
        min: 1024,
        max: 256 * 1024,
        field: |l| &mut l.max_body_bytes,
    },
    LimitVar {
        var: "MAX_EVENTS_PER_REQUEST",
        min: 1,
        max: 1000,
        field: |l| &mut l.max_events_per_request,
    },
    LimitVar {
        var: "MAX_URL_BYTES",
        min: 64,
        max: 16 * 1024,
        field: |l| &mut l.max_url_len,
    },
    LimitVar {
        var: "MAX_REFERRER_BYTES",
        min: 64,
        max: 16 * 1024,
        field: |l| &mut l.max_referrer_len,
    },
    LimitVar {
        var: "MAX_NAME_BYTES",
        min: 16,
        max: 1024,
        field: |l| &mut l.max_name_len,
    },
    LimitVar {
        var: "MAX_PROPS",
        min: 1,
        max: 100,
        field: |l| &mut l.max_props,
    },
    LimitVar {
        var: "MAX_PROP_KEY_BYTES",
        min: 16,
        max: 1024,
        field: |l| &mut l.max_prop_key_len,
    },
    LimitVar {
        var: "MAX_PROP_VALUE_BYTES",
        min: 16,
        max: 16 * 1024,
        field: |l| &mut l.max_prop_value_len,
    },
];

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
            Some(json) => usage_seeds(
                serde_json::from_str::<HashMap<String, UsageSeed>>(&json).map_err(|e| {
                    ConfigError {
                        var: "SITE_USAGE",
                        reason: format!("expected {{\"site\": {{\"month_to_date\": n}}}}: {e}"),
                    }
                })?,
            )?,
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
        let mut limits = Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            ..Limits::default()
        };
        for LimitVar {
            var,
            min,
            max,
            field,
        } in LIMIT_VARS
        {
            let value = field(&mut limits);
            *value = number(&get, var, *value)?;
            if !(min..=max).contains(value) {
                return Err(ConfigError {
                    var,
                    reason: format!("{value}: {min} to {max} expected"),
                });
            }
        }
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

/// The usage seeds keyed by canonical site id ([`ingest_core::canonical_site`], the
/// form of the events' `site_id` and of the `SITES` keys), so that `" Example.com"`
/// seeds the site `example.com`; a key empty once trimmed, or two keys that are one
/// site, are refused (which count would be meant cannot be known).
fn usage_seeds(raw: HashMap<String, UsageSeed>) -> Result<HashMap<String, UsageSeed>, ConfigError> {
    let mut out: HashMap<String, (String, UsageSeed)> = HashMap::with_capacity(raw.len());
    for (key, seed) in raw {
        let Some(site) = ingest_core::canonical_site(&key).map(|s| s.into_owned()) else {
            return Err(ConfigError {
                var: "SITE_USAGE",
                reason: format!("{key:?} is not a site id (empty once trimmed)"),
            });
        };
        if let Some((other, _)) = out.get(&site) {
            return Err(ConfigError {
                var: "SITE_USAGE",
                reason: format!("{other:?} and {key:?} are the same site ({site:?})"),
            });
        }
        out.insert(site, (key, seed));
    }
    Ok(out
        .into_iter()
        .map(|(site, (_, seed))| (site, seed))
        .collect())
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
        assert_eq!(
            c.limits,
            Limits {
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                ..Limits::default()
            },
            "the limits are ingest-core's defaults but the body's"
        );
        assert_eq!(c.rate_limiter_period_secs, 10);
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
            ("MAX_EVENTS_PER_REQUEST", "3"),
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
            ("MAX_EVENTS_PER_REQUEST", "ten"),
            ("MAX_URL_BYTES", "-2048"),
            ("MAX_PROP_VALUE_BYTES", "2 KiB"),
            ("RATE_LIMITER_PERIOD_SECS", "10s"),
        ] {
            let err =
                EdgeConfig::from_vars(vars(&[("SALT_SECRET", "s"), (var, value)])).unwrap_err();
            assert_eq!(err.var, var, "{err}");
        }
    }

    /// Every limit var lands in its field of ingest-core's `Limits`; the others keep
    /// their defaults.
    #[test]
    fn limit_vars_set_the_pipeline_limits() {
        let c = EdgeConfig::from_vars(vars(&[
            ("SALT_SECRET", "s"),
            // A burst that admits the largest request (see the test below).
            ("RATE_LIMIT", r#"{"rate_per_sec":10,"burst":250}"#),
            ("MAX_BODY_BYTES", "65536"),
            ("MAX_EVENTS_PER_REQUEST", "250"),
            ("MAX_URL_BYTES", "4096"),
            ("MAX_REFERRER_BYTES", " 1024 "),
            ("MAX_NAME_BYTES", "64"),
            ("MAX_PROPS", "10"),
            ("MAX_PROP_KEY_BYTES", "100"),
            ("MAX_PROP_VALUE_BYTES", "8000"),
        ]))
        .unwrap();
        assert_eq!(
            c.limits,
            Limits {
                max_body_bytes: 65_536,
                max_events_per_request: 250,
                max_url_len: 4096,
                max_referrer_len: 1024,
                max_name_len: 64,
                max_props: 10,
                max_prop_key_len: 100,
                max_prop_value_len: 8000,
                ..Limits::default()
            }
        );
    }

    /// Each limit's bounds are inclusive: the bound itself is accepted, one past it is
    /// refused naming the var and the bounds.
    #[test]
    fn limit_vars_are_bounded() {
        let limits = |var: &str, value: String| {
            EdgeConfig::from_vars(vars(&[
                ("SALT_SECRET", "s"),
                // A burst that admits the largest MAX_EVENTS_PER_REQUEST.
                ("RATE_LIMIT", r#"{"rate_per_sec":10,"burst":1000}"#),
                (var, &value),
            ]))
            .map(|c| c.limits)
        };
        for LimitVar {
            var,
            min,
            max,
            field,
        } in LIMIT_VARS
        {
            for ok in [min, max] {
                let mut l = limits(var, ok.to_string()).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(*field(&mut l), ok, "{var}={ok}");
            }
            for bad in [min - 1, max + 1] {
                let err = limits(var, bad.to_string()).unwrap_err();
                assert_eq!(err.var, var, "{err}");
                assert!(
                    err.reason.contains(&format!("{min} to {max}")),
                    "{var}={bad}: {err}"
                );
            }
        }
        // The table covers the eight vars the docs list, each on its own field.
        let mut seen = Vec::new();
        for LimitVar { var, field, .. } in LIMIT_VARS {
            let mut l = Limits::default();
            *field(&mut l) = usize::MAX;
            assert_ne!(l, Limits::default(), "{var}");
            assert!(!seen.contains(&l), "{var} sets the field of another var");
            seen.push(l);
        }
        assert_eq!(seen.len(), 8);
    }

    /// A request of more events than the GCRA's burst is never admitted: a
    /// configuration that allows such requests is refused, naming the var.
    #[test]
    fn events_per_request_over_the_burst_is_refused() {
        let cfg = |pairs: &[(&str, &str)]| {
            let mut all = vec![("SALT_SECRET", "s")];
            all.extend_from_slice(pairs);
            EdgeConfig::from_vars(vars(&all))
        };
        let err = cfg(&[("MAX_EVENTS_PER_REQUEST", "101")]).unwrap_err();
        assert_eq!(err.var, "MAX_EVENTS_PER_REQUEST", "{err}");
        assert!(err.reason.contains("burst is 100"), "{err}");
        let err = cfg(&[("RATE_LIMIT", r#"{"rate_per_sec":10,"burst":50}"#)]).unwrap_err();
        assert_eq!(
            err.var, "MAX_EVENTS_PER_REQUEST",
            "the default 100 over 50: {err}"
        );
        assert!(cfg(&[("MAX_EVENTS_PER_REQUEST", "100")]).is_ok());
        // No limiter, no such bound.
        let off = cfg(&[
            ("RATE_LIMIT", r#"{"rate_per_sec":0,"burst":1}"#),
            ("MAX_EVENTS_PER_REQUEST", "1000"),
        ]);
        assert_eq!(off.unwrap().limits.max_events_per_request, 1000);
    }

    /// `SITE_USAGE` keys are canonical site ids, as `SITES` keys and events' ids are.
    #[test]
    fn usage_seeds_are_keyed_by_canonical_site_id() {
        let usage = |json: &str| {
            EdgeConfig::from_vars(vars(&[("SALT_SECRET", "s"), ("SITE_USAGE", json)]))
                .map(|c| c.usage)
        };
        let u = usage(r#"{" Example.COM\t": {"month_to_date": 7}}"#).unwrap();
        assert_eq!(u.keys().collect::<Vec<_>>(), ["example.com"]);
        assert_eq!(u["example.com"].month_to_date, 7);
        let err = usage(r#"{"a.com": {}, "A.com ": {}}"#).unwrap_err();
        assert_eq!(err.var, "SITE_USAGE");
        assert!(err.reason.contains("same site"), "{err}");
        let err = usage(r#"{" ": {"month_to_date": 1}}"#).unwrap_err();
        assert_eq!(err.var, "SITE_USAGE");
        assert!(err.reason.contains("empty"), "{err}");
    }

    /// Cloudflare's Rate Limiting binding takes a period of 10 or 60 seconds only.
    #[test]
    fn the_rate_limiter_period_is_10_or_60() {
        let period = |v: &str| {
            EdgeConfig::from_vars(vars(&[
                ("SALT_SECRET", "s"),
                ("RATE_LIMITER_PERIOD_SECS", v),
            ]))
            .map(|c| c.rate_limiter_period_secs)
        };
        assert_eq!(period("10"), Ok(10));
        assert_eq!(period("60"), Ok(60));
        for bad in ["0", "1", "30", "61", "600"] {
            let err = period(bad).unwrap_err();
            assert_eq!(err.var, "RATE_LIMITER_PERIOD_SECS", "{err}");
            assert!(err.reason.contains("10 or 60"), "{err}");
        }
    }
}
