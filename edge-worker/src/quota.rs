//! The per-isolate usage book behind the plan quotas.
//!
//! ingest-core decides (plan limit, grace after the first crossing, refusal until the
//! next UTC month); the caller supplies the month-to-date usage. At the edge, that usage
//! is what this isolate has accepted, on top of a seed from configuration
//! (`SITE_USAGE`, e.g. exported from ClickHouse by a scheduled job):
//!
//! - **What it is good for:** a site far over its plan is refused at the edge, before it
//!   costs a Queue message or a sink write; the first crossing is logged once per isolate.
//! - **Its limits:** Cloudflare runs many isolates, each with its own book, and evicts
//!   them at will. An isolate sees a share of a site's traffic, so the quota is enforced
//!   late (up to the number of isolates × the limit) unless `SITE_USAGE` is kept current.
//!   The authoritative count is the sink's (from ClickHouse); the book is a first line.
//!   A Durable Object per site would give one exact counter at the cost of a round trip
//!   per request; this worker does not pay it on the hot path.
//!
//! Memory: one entry per site that has a plan, i.e. per site in `SITES` (without a
//! registry there is no plan, and so no book).

use std::collections::HashMap;

use ingest_core::{check_site_quota, month_bounds, Plan, QuotaDecision, QuotaState};

use crate::config::UsageSeed;

#[derive(Debug, Clone, Copy)]
struct Entry {
    month_start_ms: i64,
    usage: u64,
    state: QuotaState,
}

/// Month-to-date usage and quota state per site, for one isolate.
#[derive(Debug, Default)]
pub struct QuotaBook {
    entries: HashMap<String, Entry>,
}

impl QuotaBook {
    /// An empty book.
    pub fn new() -> Self {
        QuotaBook::default()
    }

    /// Decides whether `incoming` events for `site` (lowercase id) are accepted at
    /// `now_ms` under `plan`, and counts them when they are. `seed` is the usage known
    /// from configuration; it applies to the month in which the site is first seen here.
    pub fn check(
        &mut self,
        site: &str,
        plan: &Plan,
        seed: Option<&UsageSeed>,
        incoming: u64,
        now_ms: i64,
    ) -> QuotaDecision {
        let (month_start_ms, _) = month_bounds(now_ms);
        let entry = self
            .entries
            .entry(site.to_owned())
            .or_insert_with(|| Entry {
                month_start_ms,
                usage: seed.map_or(0, |s| s.month_to_date),
                state: seed.map(UsageSeed::state).unwrap_or_default(),
            });
        if entry.month_start_ms != month_start_ms {
            // A new month: usage starts again (ingest-core clears a stale crossing too).
            *entry = Entry {
                month_start_ms,
                usage: 0,
                state: QuotaState::default(),
            };
        }
        let decision =
            check_site_quota(site, plan, entry.usage, incoming, &mut entry.state, now_ms);
        if !matches!(decision, QuotaDecision::Refuse { .. }) {
            entry.usage = entry.usage.saturating_add(incoming);
        }
        decision
    }

    /// Month-to-date usage this book holds for `site` (seed included).
    pub fn usage(&self, site: &str) -> u64 {
        self.entries.get(site).map_or(0, |e| e.usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest_core::plan;

    const NOV_23: i64 = 1_763_900_000_000; // 2025-11-23
    const DAY: i64 = 86_400_000;

    #[test]
    fn counts_accepted_events_up_to_the_limit_and_then_grace() {
        let free = plan("free").unwrap();
        let mut b = QuotaBook::new();
        assert_eq!(
            b.check("a.com", free, None, 10_000, NOV_23),
            QuotaDecision::Accept
        );
        assert_eq!(b.usage("a.com"), 10_000);
        assert!(matches!(
            b.check("a.com", free, None, 1, NOV_23),
            QuotaDecision::AcceptInGrace {
                first_crossing: true,
                ..
            }
        ));
        assert!(matches!(
            b.check("a.com", free, None, 1, NOV_23 + 1),
            QuotaDecision::AcceptInGrace {
                first_crossing: false,
                ..
            }
        ));
        // Past the grace period (3 days for free): refused, and not counted.
        let d = b.check("a.com", free, None, 1, NOV_23 + 3 * DAY + 1);
        assert!(matches!(d, QuotaDecision::Refuse { .. }), "{d:?}");
        assert_eq!(b.usage("a.com"), 10_002);
    }

    #[test]
    fn a_seed_past_its_grace_refuses_at_once() {
        let free = plan("free").unwrap();
        let (month_start, next) = month_bounds(NOV_23);
        let seed = UsageSeed {
            month_to_date: 50_000,
            over_since_ms: Some(month_start),
        };
        match QuotaBook::new().check("a.com", free, Some(&seed), 1, NOV_23) {
            QuotaDecision::Refuse { resets_at_ms, .. } => assert_eq!(resets_at_ms, next),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn a_new_month_starts_from_zero() {
        let free = plan("free").unwrap();
        let mut b = QuotaBook::new();
        let seed = UsageSeed {
            month_to_date: 50_000,
            over_since_ms: Some(month_bounds(NOV_23).0),
        };
        b.check("a.com", free, Some(&seed), 1, NOV_23);
        let next_month = month_bounds(NOV_23).1 + 1;
        assert_eq!(
            b.check("a.com", free, Some(&seed), 1, next_month),
            QuotaDecision::Accept
        );
        assert_eq!(b.usage("a.com"), 1);
    }
}
