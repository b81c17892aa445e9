//! The per-request limits of ingest-core's parsers ([`Limits`]) as vars; a value at a limit is
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
//! `MAX_BODY_BYTES` (1024–262144, default 128 KiB) is read here too: it is the
//! pipeline's `max_body_bytes`.

use ingest_core::Limits;

use super::{number, ConfigError};

/// Default of `MAX_BODY_BYTES`: 128 KiB. Every event of a request goes into one Queue
/// `sendBatch` (at most 256 KB); a body of this size encodes to well under that unless
/// its properties are escaping-heavy (see [`crate::messages`]).
pub const DEFAULT_MAX_BODY_BYTES: usize = 128 * 1024;

/// A var that sets one of ingest-core's per-request [`Limits`].
pub(super) struct LimitVar {
    /// The var's name.
    pub(super) var: &'static str,
    /// Smallest value accepted.
    pub(super) min: usize,
    /// Largest value accepted.
    pub(super) max: usize,
    /// The field of [`Limits`] it sets.
    pub(super) field: fn(&mut Limits) -> &mut usize,
}

/// The limit vars; the module docs' table says what each refuses and why its bounds
/// are where they are.
pub(super) const LIMIT_VARS: [LimitVar; 8] = [
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

/// The pipeline's limits: ingest-core's defaults (but `MAX_BODY_BYTES`'s own), each
/// [`LIMIT_VARS`] var that is set read and checked against its bounds.
pub(super) fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Limits, ConfigError> {
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
        *value = number(get, var, *value)?;
        if !(min..=max).contains(value) {
            return Err(ConfigError {
                var,
                reason: format!("{value}: {min} to {max} expected"),
            });
        }
    }
    Ok(limits)
}
