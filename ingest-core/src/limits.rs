//! Every limit the parsers enforce, as one config struct with documented defaults.

use serde::{Deserialize, Serialize};

/// Limits checked before or during parsing, never after allocating everything.
///
/// Each field is a named, documented limit; a service exposes them as configuration.
/// A value at the limit is accepted, one past it is rejected with an [`crate::Error`]
/// naming the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Maximum request body size in bytes. Default 256 KiB.
    pub max_body_bytes: usize,
    /// Maximum events in one request (array elements or NDJSON lines). Default 100.
    pub max_events_per_request: usize,
    /// Maximum length of `url` in bytes. Default 2048.
    pub max_url_len: usize,
    /// Maximum length of `referrer` in bytes. Default 2048.
    pub max_referrer_len: usize,
    /// Maximum length of the event `name` in bytes. Default 120.
    pub max_name_len: usize,
    /// Maximum length of `site` / `domain` in bytes. Default 253 (a DNS name).
    pub max_site_len: usize,
    /// Maximum length of a property key in bytes. Default 300.
    pub max_prop_key_len: usize,
    /// Maximum length of a property value in bytes. Default 2000.
    pub max_prop_value_len: usize,
    /// Maximum properties per event. Default 30.
    pub max_props: usize,
    /// Maximum JSON nesting depth of a body (the top-level value is depth 1). Default 8.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 * 1024,
            max_events_per_request: 100,
            max_url_len: 2048,
            max_referrer_len: 2048,
            max_name_len: 120,
            max_site_len: 253,
            max_prop_key_len: 300,
            max_prop_value_len: 2000,
            max_props: 30,
            max_depth: 8,
        }
    }
}
