//! The per-isolate usage book behind the plan quotas.
//!
//! ingest-core decides (plan limit, grace after the first crossing, refusal until the
//! next UTC month); the caller supplies the month-to-date usage. At the edge, that usage
//! is what this isolate has accepted, on top of a seed from configuration
//! (`SITE_USAGE`, e.g. exported from ClickHouse by a scheduled job):
//!
//! - **What it is good for:** a site far over its plan is refused at the edge, before it
//!   costs a Queue message or a sink write; the first crossing is logged once per isolate.
//!   [`QuotaBook::check`] only decides; [`QuotaBook::commit`] counts a request's events
//!   and records its crossing once they are enqueued (a 503 counts nothing).
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

    /// The site's entry for the month of `now_ms`: created from `seed` the first time the
    /// site is seen here, started again (usage 0, no crossing) when the month changed.
    fn entry(&mut self, site: &str, seed: Option<&UsageSeed>, now_ms: i64) -> &mut Entry {
        let (month_start_ms, _) = month_bounds(now_ms);
        let entry = self
            .entries
            .entry(site.to_owned())
            .or_insert_with(|| Entry {
                month_start_ms,
                usage: seed.map_or(0, |s| s.month_to_date),
                state: seed.map(UsageSeed::state).unwrap_or_default(),
            });
        if entry.month_start_ms < month_start_ms {
            // A new month: usage starts again (ingest-core clears a stale crossing too).
            *entry = Entry {
                month_start_ms,
                usage: 0,
                state: QuotaState::default(),
            };
        }
        entry
    }

    /// Decides whether `incoming` events for `site` (lowercase id) are accepted at
    /// `now_ms` under `plan`, without recording anything about them: a request whose
    /// events are then not enqueued (the Queue failed, answered 503) must neither count
    /// nor start the site's grace period. [`QuotaBook::commit`] does both once they are
    /// enqueued; until then `first_crossing` only says that this request would cross (two
    /// requests of an isolate checked before either committed may both say so; one
    /// commit is first). `seed` is the usage known from configuration; it applies to the
    /// month in which the site is first seen here.
    pub fn check(
        &mut self,
        site: &str,
        plan: &Plan,
        seed: Option<&UsageSeed>,
        incoming: u64,
        now_ms: i64,
    ) -> QuotaDecision {
        let entry = self.entry(site, seed, now_ms);
        // Decided on a copy: the state changes only in `commit`.
        let mut state = crossing(entry, plan);
        check_site_quota(site, plan, entry.usage, incoming, &mut state, now_ms)
    }

    /// Counts `n` events of `site` enqueued after a [`QuotaBook::check`] at
    /// `checked_at_ms` accepted them, and records the crossing of the plan's limit they
    /// made, if they made it (the grace period runs from `checked_at_ms`). Returns when
    /// the grace period ends for exactly one commit per crossing — the first enqueued
    /// request past the limit — to act on once (log it). Events checked in a month that
    /// has ended since are not counted: they belong to that month.
    pub fn commit(
        &mut self,
        site: &str,
        plan: &Plan,
        seed: Option<&UsageSeed>,
        n: u64,
        checked_at_ms: i64,
    ) -> Option<i64> {
        let entry = self.entry(site, seed, checked_at_ms);
        if month_bounds(checked_at_ms).0 < entry.month_start_ms {
            return None;
        }
        let mut state = crossing(entry, plan);
        let d = check_site_quota(site, plan, entry.usage, n, &mut state, checked_at_ms);
        entry.usage = entry.usage.saturating_add(n);
        entry.state = state;
        d.first_crossing()
    }

    /// Month-to-date usage this book holds for `site` (seed included).
    pub fn usage(&self, site: &str) -> u64 {
        self.entries.get(site).map_or(0, |e| e.usage)
    }
}

/// The site's recorded crossing as it stands for its usage ([`QuotaState::for_usage`]).
fn crossing(entry: &Entry, plan: &Plan) -> QuotaState {
    entry.state.for_usage(entry.usage, plan)
}

/// Events per site of a request, in the order the sites first appear (a request holds
/// one or a few sites: a small vector beats a map).
pub fn per_site<'a>(sites: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, u64)> {
    let mut per_site: Vec<(&str, u64)> = Vec::new();
    for site in sites {
        match per_site.iter_mut().find(|(s, _)| *s == site) {
            Some((_, n)) => *n += 1,
            None => per_site.push((site, 1)),
        }
    }
    per_site
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest_core::plan;

    const NOV_23: i64 = 1_763_900_000_000; // 2025-11-23
    const DAY: i64 = 86_400_000;

    /// Check and then commit (what the fetch handler does once the Queue took them).
    fn take(b: &mut QuotaBook, plan: &Plan, n: u64, at: i64) -> QuotaDecision {
        let d = b.check("a.com", plan, None, n, at);
        if !matches!(d, QuotaDecision::Refuse { .. }) {
            b.commit("a.com", plan, None, n, at);
        }
        d
    }

    #[test]
    fn counts_committed_events_up_to_the_limit_and_then_grace() {
        let free = plan("free").unwrap();
        let mut b = QuotaBook::new();
        assert_eq!(take(&mut b, free, 10_000, NOV_23), QuotaDecision::Accept);
        assert_eq!(b.usage("a.com"), 10_000);
        assert!(matches!(
            take(&mut b, free, 1, NOV_23),
            QuotaDecision::AcceptInGrace {
                first_crossing: true,
                ..
            }
        ));
        assert!(matches!(
            take(&mut b, free, 1, NOV_23 + 1),
            QuotaDecision::AcceptInGrace {
                first_crossing: false,
                ..
            }
        ));
        // Past the grace period (3 days for free): refused, and not counted.
        let d = take(&mut b, free, 1, NOV_23 + 3 * DAY + 1);
        assert!(matches!(d, QuotaDecision::Refuse { .. }), "{d:?}");
        assert_eq!(b.usage("a.com"), 10_002);
    }

    /// A request whose events the Queue did not take leaves no trace: neither its count
    /// nor its crossing; the grace period starts with the first crossing enqueued.
    #[test]
    fn a_check_without_commit_counts_nothing_and_starts_no_grace() {
        let free = plan("free").unwrap();
        let mut b = QuotaBook::new();
        let month = month_bounds(NOV_23).0;
        let seed = UsageSeed {
            month_to_date: 10_000,
            over_since_ms: None,
        };
        let in_grace = |b: &mut QuotaBook, at: i64, first: bool| {
            matches!(
                b.check("a.com", free, Some(&seed), 1, at),
                QuotaDecision::AcceptInGrace { first_crossing, grace_ends_ms }
                    if first_crossing == first && grace_ends_ms == at + 3 * DAY
            )
        };
        // Day 1 and day 5 cross, and their sends fail: nothing is committed.
        assert!(in_grace(&mut b, month + DAY, true));
        assert!(in_grace(&mut b, month + 5 * DAY, true));
        assert_eq!(b.usage("a.com"), 10_000, "a failed send is not counted");
        // Day 6's crossing is the first one enqueued: its grace runs from day 6.
        assert!(in_grace(&mut b, month + 6 * DAY, true));
        assert_eq!(
            b.commit("a.com", free, Some(&seed), 1, month + 6 * DAY),
            Some(month + 9 * DAY)
        );
        assert_eq!(b.usage("a.com"), 10_001);
        assert!(matches!(
            b.check("a.com", free, Some(&seed), 1, month + 8 * DAY),
            QuotaDecision::AcceptInGrace { first_crossing: false, grace_ends_ms }
                if grace_ends_ms == month + 9 * DAY
        ));
        assert!(matches!(
            b.check("a.com", free, Some(&seed), 1, month + 9 * DAY),
            QuotaDecision::Refuse { .. }
        ));
    }

    /// Requests of one isolate checked before any of them was enqueued (they interleave
    /// at the Queue send): each commit counts, and exactly one is the first crossing.
    #[test]
    fn of_interleaved_crossings_one_commit_is_first() {
        let free = plan("free").unwrap();
        let mut b = QuotaBook::new();
        let seed = UsageSeed {
            month_to_date: 9_990,
            over_since_ms: None,
        };
        for _ in 0..4 {
            assert!(matches!(
                b.check("a.com", free, Some(&seed), 20, NOV_23),
                QuotaDecision::AcceptInGrace {
                    first_crossing: true,
                    ..
                }
            ));
        }
        let firsts: Vec<i64> = (0..4)
            .filter_map(|_| b.commit("a.com", free, Some(&seed), 20, NOV_23))
            .collect();
        assert_eq!(firsts, [NOV_23 + 3 * DAY]);
        assert_eq!(b.usage("a.com"), 9_990 + 4 * 20);
        // A commit of events checked in the month that has ended since is not counted
        // in the new one.
        let next = month_bounds(NOV_23).1;
        assert_eq!(
            b.check("a.com", free, Some(&seed), 1, next + 1),
            QuotaDecision::Accept
        );
        assert_eq!(b.commit("a.com", free, Some(&seed), 5, NOV_23), None);
        assert_eq!(b.usage("a.com"), 0);
    }

    #[test]
    fn per_site_counts_in_first_seen_order() {
        assert_eq!(
            per_site(["b.com", "a.com", "b.com"]),
            [("b.com", 2), ("a.com", 1)]
        );
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
        b.commit("a.com", free, Some(&seed), 1, NOV_23);
        let next_month = month_bounds(NOV_23).1 + 1;
        assert_eq!(
            b.check("a.com", free, Some(&seed), 1, next_month),
            QuotaDecision::Accept
        );
        b.commit("a.com", free, Some(&seed), 1, next_month);
        assert_eq!(b.usage("a.com"), 1);
    }
}
