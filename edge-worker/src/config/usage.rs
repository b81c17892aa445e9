//! `SITE_USAGE`: month-to-date usage per site known before an isolate started, the
//! starting point of its quota book.

use std::collections::HashMap;

use ingest_core::QuotaState;
use serde::Deserialize;

use super::ConfigError;

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

/// `SITE_USAGE`'s JSON, keyed by canonical site id ([`seeds`]).
pub(super) fn read(json: &str) -> Result<HashMap<String, UsageSeed>, ConfigError> {
    let Members(raw) = serde_json::from_str(json).map_err(|e| ConfigError {
        var: "SITE_USAGE",
        reason: format!("expected {{\"site\": {{\"month_to_date\": n}}}}: {e}"),
    })?;
    seeds(raw)
}

/// The object's members in the order written, a repeated key kept, for [`seeds`] to
/// refuse ([`ingest_core::map_entries`]).
#[derive(Deserialize)]
#[serde(transparent)]
struct Members(#[serde(deserialize_with = "ingest_core::map_entries")] Vec<(String, UsageSeed)>);

/// The usage seeds keyed by canonical site id ([`ingest_core::canonical_site`], the
/// form of the events' `site_id` and of the `SITES` keys), so that `" Example.com"`
/// seeds the site `example.com`; a key empty once trimmed, or two keys that are one
/// site (the same key twice included), are refused (which count would be meant cannot
/// be known).
fn seeds(raw: Vec<(String, UsageSeed)>) -> Result<HashMap<String, UsageSeed>, ConfigError> {
    let mut out: HashMap<String, (String, UsageSeed)> = HashMap::with_capacity(raw.len());
    for (key, seed) in raw {
        let Some(site) = ingest_core::canonical_site(&key).map(|s| s.into_owned()) else {
            return Err(ConfigError {
                var: "SITE_USAGE",
                reason: format!("{key:?} is not a site id (empty once trimmed)"),
            });
        };
        if let Some((other, _)) = out.get(&site) {
            let reason = if *other == key {
                format!("{key:?} is given twice")
            } else {
                format!("{other:?} and {key:?} are the same site ({site:?})")
            };
            return Err(ConfigError {
                var: "SITE_USAGE",
                reason,
            });
        }
        out.insert(site, (key, seed));
    }
    Ok(out
        .into_iter()
        .map(|(site, (_, seed))| (site, seed))
        .collect())
}
