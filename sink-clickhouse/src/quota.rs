//! Sites and monthly quotas: the sites file (reloaded when it changes) and each site's
//! month-to-date usage — read from ClickHouse and cached for 15 minutes (the cache is
//! dropped when the sites file changes), plus what this instance stored that ClickHouse
//! does not show yet, and when each site over its limit crossed it (so the grace period
//! survives a restart); in embedded mode only the local count (since start) exists.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use ingest_core::{check_site_quota, month_bounds, Plan, QuotaDecision, QuotaState, SiteRegistry};

/// How long usage read from ClickHouse is trusted.
pub const USAGE_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
struct Usage {
    month_start_ms: i64,
    /// From ClickHouse at the last refresh.
    base: HashMap<String, u64>,
    /// Stored by this instance since the last refresh.
    local: HashMap<String, u64>,
    states: HashMap<String, QuotaState>,
    /// Sites whose crossing time this month was read from the store: it does not move
    /// once read (rows are not deleted), so it is asked once.
    crossing_read: HashSet<String>,
    refreshed: Option<Instant>,
}

impl Usage {
    /// Starts the month of `now_ms` if it is not the one counted: everything counted
    /// before belongs to the old one.
    fn roll_month(&mut self, now_ms: i64) {
        let (start, _) = month_bounds(now_ms);
        if self.month_start_ms != start {
            self.month_start_ms = start;
            self.base.clear();
            self.local.clear();
            self.states.clear();
            self.crossing_read.clear();
        }
    }

    /// The site's month-to-date count as known here.
    fn used(&self, site: &str) -> u64 {
        self.base.get(site).copied().unwrap_or(0) + self.local.get(site).copied().unwrap_or(0)
    }

    /// The site's recorded crossing as it stands for its count
    /// ([`QuotaState::for_usage`]).
    fn crossing(&self, site: &str, used: u64, plan: &Plan) -> QuotaState {
        self.states
            .get(site)
            .copied()
            .unwrap_or_default()
            .for_usage(used, plan)
    }
}

/// Sites and quota bookkeeping.
pub struct Quotas {
    path: Option<PathBuf>,
    registry: RwLock<Option<Arc<SiteRegistry>>>,
    mtime: Mutex<Option<SystemTime>>,
    usage: Mutex<Usage>,
}

/// Loads a TOML sites file.
pub fn load_sites(path: &Path) -> Result<SiteRegistry, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str::<SiteRegistry>(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Quotas {
    /// Loads the sites file, if any (an error here stops the start-up).
    pub fn new(path: Option<PathBuf>) -> Result<Self, String> {
        let (registry, mtime) = match &path {
            Some(p) => (
                Some(Arc::new(load_sites(p)?)),
                std::fs::metadata(p).and_then(|m| m.modified()).ok(),
            ),
            None => (None, None),
        };
        Ok(Quotas {
            path,
            registry: RwLock::new(registry),
            mtime: Mutex::new(mtime),
            usage: Mutex::new(Usage::default()),
        })
    }

    /// The current registry (`None`: any site accepted, no quotas).
    pub fn registry(&self) -> Option<Arc<SiteRegistry>> {
        self.registry.read().expect("registry lock").clone()
    }

    /// Reloads the sites file if its modification time changed; on success the usage
    /// cache is invalidated. A broken file keeps the previous registry (logged).
    /// Returns true when reloaded.
    pub fn reload_if_changed(&self) -> bool {
        let Some(p) = &self.path else { return false };
        let mtime = std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if *self.mtime.lock().expect("mtime lock") == mtime {
            return false;
        }
        *self.mtime.lock().expect("mtime lock") = mtime;
        match load_sites(p) {
            Ok(r) => {
                tracing::info!(sites = r.len(), "sites file reloaded");
                *self.registry.write().expect("registry lock") = Some(Arc::new(r));
                self.usage.lock().expect("usage lock").refreshed = None;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "sites file changed but does not load; keeping the previous one");
                false
            }
        }
    }

    /// True when the usage should be read again (never read, older than
    /// [`USAGE_TTL`], or invalidated).
    pub fn needs_refresh(&self) -> bool {
        let u = self.usage.lock().expect("usage lock");
        u.refreshed.is_none_or(|t| t.elapsed() >= USAGE_TTL)
    }

    /// Replaces the usage with what the store reports for the month starting at
    /// `month_start_ms`.
    ///
    /// Within the same month a refresh never lowers a site's count: each site's usage
    /// becomes the larger of the store's count and the one held before it (the last
    /// read plus what this instance stored since). What this instance stored and the
    /// store does not show yet — events still in the spool, waiting for their load
    /// (ClickHouse down, a backlog) — stays counted, as the part of the count the store
    /// does not hold. (With several instances on one table this takes the larger of
    /// the two, not their sum: it can undercount other instances' new events by up to
    /// this one's backlog, until that backlog is loaded.)
    ///
    /// `crossed` gives, for sites the store shows over their limit, when they crossed
    /// it (the `received_at` of the first event past the limit, Unix ms): the grace
    /// period runs from there, so a restart — or another instance — does not open it
    /// again.
    pub fn set_usage(
        &self,
        month_start_ms: i64,
        base: HashMap<String, u64>,
        crossed: HashMap<String, i64>,
    ) {
        let mut u = self.usage.lock().expect("usage lock");
        if month_start_ms < u.month_start_ms {
            // Read for a month that ended while the query ran: `check` has moved on,
            // and taking it would put the old month's counts back.
            return;
        }
        let mut local = HashMap::new();
        if u.month_start_ms == month_start_ms {
            // What was held before, per site; the part the store does not show stays
            // local. (A count never goes back within a month: rows are not deleted, so
            // a read showing less — a lagging replica — does not lower it either.)
            let mut before = std::mem::take(&mut u.base);
            for (site, n) in u.local.drain() {
                *before.entry(site).or_default() += n;
            }
            for (site, n) in before {
                let missing = n.saturating_sub(base.get(&site).copied().unwrap_or(0));
                if missing > 0 {
                    local.insert(site, missing);
                }
            }
        } else {
            u.states.clear();
            u.crossing_read.clear();
        }
        for (site, at_ms) in crossed {
            if at_ms < month_start_ms {
                continue;
            }
            u.crossing_read.insert(site.clone());
            let st = u.states.entry(site).or_default();
            st.over_since_ms = Some(st.over_since_ms.map_or(at_ms, |t| t.min(at_ms)));
        }
        u.month_start_ms = month_start_ms;
        u.base = base;
        u.local = local;
        u.refreshed = Some(Instant::now());
    }

    /// Sites the month's `usage` (read for the month starting at `month_start_ms`)
    /// shows over their plan's limit, with that limit: the sites whose crossing time
    /// [`Quotas::set_usage`] wants — those whose crossing was not read this month yet.
    pub fn over_limit(
        &self,
        month_start_ms: i64,
        usage: &HashMap<String, u64>,
    ) -> Vec<(String, u64)> {
        let Some(reg) = self.registry() else {
            return Vec::new();
        };
        let u = self.usage.lock().expect("usage lock");
        let known =
            |site: &str| u.month_start_ms == month_start_ms && u.crossing_read.contains(site);
        let mut over: Vec<(String, u64)> = usage
            .iter()
            .filter(|(site, _)| !known(site))
            .filter_map(|(site, &n)| {
                let plan = reg.get(site)?.plan_def()?;
                (n > plan.monthly_events).then(|| (site.clone(), plan.monthly_events))
            })
            .collect();
        over.sort();
        over
    }

    /// Decides whether `incoming` more events of `site` are accepted now, without
    /// recording anything about them: a request whose events are then not stored (the
    /// spool failed) must not start a grace period, or use up the one first crossing,
    /// for events that were never accepted. [`Quotas::commit`] records the crossing once
    /// they are stored; until then `first_crossing` only says that this request would
    /// cross (two requests checked at once may both say so; one commit wins).
    pub fn check(&self, site: &str, incoming: u64, now_ms: i64) -> QuotaDecision {
        let Some(reg) = self.registry() else {
            return QuotaDecision::Accept;
        };
        let Some(plan) = reg.get(site).and_then(|c| c.plan_def()) else {
            return QuotaDecision::Accept;
        };
        let mut u = self.usage.lock().expect("usage lock");
        u.roll_month(now_ms);
        let used = u.used(site);
        // Decided on a copy: the state changes only in `commit`.
        let mut st = u.crossing(site, used, plan);
        check_site_quota(site, plan, used, incoming, &mut st, now_ms)
    }

    /// Counts `n` events of `site` stored by this instance after a
    /// [`Quotas::check`] at `checked_at_ms` accepted them, and records the crossing of
    /// the site's limit they made, if they made it: the grace period runs from
    /// `checked_at_ms`. Returns when the grace period ends for exactly one commit per
    /// crossing — the first stored request past the limit — to act on once (log, email
    /// the owner). Done under the one lock, so of requests crossing at once only one
    /// is first.
    ///
    /// Events checked in a month that has ended since are not counted: they belong to
    /// that month (the store shows them there).
    pub fn commit(&self, site: &str, n: u64, checked_at_ms: i64) -> Option<i64> {
        if !self.enabled() {
            return None;
        }
        let plan = self
            .registry()
            .and_then(|r| r.get(site).and_then(|c| c.plan_def()));
        let mut u = self.usage.lock().expect("usage lock");
        if month_bounds(checked_at_ms).0 < u.month_start_ms {
            return None;
        }
        let used = u.used(site);
        *u.local.entry(site.to_owned()).or_default() += n;
        let plan = plan?;
        let mut st = u.crossing(site, used, plan);
        let d = check_site_quota(site, plan, used, n, &mut st, checked_at_ms);
        u.states.insert(site.to_owned(), st);
        d.first_crossing()
    }

    /// True when a sites file is configured: only then are requests checked and
    /// counted (without one, [`Quotas::record`] does nothing, and the routes skip
    /// counting rows per site).
    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }

    /// Counts `n` events of `site` stored by this instance that no [`Quotas::check`]
    /// admitted (an edge batch: the edge applied the quota); a crossing they make is
    /// recorded by the next [`Quotas::commit`].
    pub fn record(&self, site: &str, n: u64, now_ms: i64) {
        if self.path.is_none() {
            return;
        }
        let mut u = self.usage.lock().expect("usage lock");
        // The month starts here too: counted into a month not yet started (a fresh
        // process whose first stored events are edge batches), they were wiped by the
        // first `check` that started it.
        u.roll_month(now_ms);
        match u.local.get_mut(site) {
            Some(c) => *c += n,
            None => {
                u.local.insert(site.to_owned(), n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(dir: &Path, plan: &str) -> PathBuf {
        let p = dir.join("sites.toml");
        std::fs::write(&p, format!("[sites.\"a.com\"]\nplan = \"{plan}\"\n")).unwrap();
        p
    }

    /// Events stored before any check (edge batches reaching a fresh process) count:
    /// the first check of the month does not wipe them.
    #[test]
    fn events_recorded_before_the_first_check_count() {
        let d = tempfile::tempdir().unwrap();
        let q = Quotas::new(Some(sites(d.path(), "free"))).unwrap();
        let now = 1_763_900_000_000;
        q.record("a.com", 10_000, now);
        assert!(matches!(
            q.check("a.com", 1, now),
            QuotaDecision::AcceptInGrace { .. }
        ));
    }

    #[test]
    fn counts_locally_and_refuses_past_grace() {
        let d = tempfile::tempdir().unwrap();
        let q = Quotas::new(Some(sites(d.path(), "free"))).unwrap();
        let now = 1_763_900_000_000;
        assert_eq!(q.check("a.com", 10, now), QuotaDecision::Accept);
        q.record("a.com", 10_000, now);
        assert!(matches!(
            q.check("a.com", 1, now),
            QuotaDecision::AcceptInGrace {
                first_crossing: true,
                ..
            }
        ));
        assert_eq!(q.commit("a.com", 1, now), Some(now + 3 * 86_400_000));
        let later = now + 4 * 86_400_000;
        if month_bounds(later).0 == month_bounds(now).0 {
            assert!(matches!(
                q.check("a.com", 1, later),
                QuotaDecision::Refuse { .. }
            ));
        }
        // Unknown site: the registry decides elsewhere; no plan, no quota.
        assert_eq!(q.check("b.com", 1, now), QuotaDecision::Accept);
    }

    /// A request whose events the spool did not store leaves no trace: the grace
    /// period starts with the first request past the limit that was stored.
    #[test]
    fn a_crossing_not_stored_starts_no_grace_period() {
        let d = tempfile::tempdir().unwrap();
        let q = Quotas::new(Some(sites(d.path(), "free"))).unwrap();
        let (month, _) = month_bounds(1_763_900_000_000);
        let day = 86_400_000;
        q.set_usage(
            month,
            HashMap::from([("a.com".into(), 10_000)]),
            HashMap::new(),
        );
        let in_grace = |at: i64, first: bool| {
            matches!(
                q.check("a.com", 1, at),
                QuotaDecision::AcceptInGrace { first_crossing, grace_ends_ms }
                    if first_crossing == first && grace_ends_ms == at + 3 * day
            )
        };
        // Day 1 and day 5 cross, and their stores fail: nothing is committed.
        assert!(in_grace(month + day, true));
        assert!(in_grace(month + 5 * day, true));
        // Day 6's crossing is the first one stored: its grace runs from day 6.
        assert!(in_grace(month + 6 * day, true));
        assert_eq!(q.commit("a.com", 1, month + 6 * day), Some(month + 9 * day));
        assert!(matches!(
            q.check("a.com", 1, month + 8 * day),
            QuotaDecision::AcceptInGrace { first_crossing: false, grace_ends_ms, .. }
                if grace_ends_ms == month + 9 * day
        ));
        assert!(matches!(
            q.check("a.com", 1, month + 9 * day),
            QuotaDecision::Refuse { .. }
        ));
    }

    /// Requests checked at once that each cross the limit: each commit counts, one is
    /// the first crossing, and the grace period runs from its check.
    #[test]
    fn of_concurrent_crossings_one_commit_is_first() {
        let d = tempfile::tempdir().unwrap();
        let q = Arc::new(Quotas::new(Some(sites(d.path(), "free"))).unwrap());
        let (month, _) = month_bounds(1_763_900_000_000);
        let now = month + 86_400_000;
        q.set_usage(
            month,
            HashMap::from([("a.com".into(), 9_990)]),
            HashMap::new(),
        );
        // Every check before any commit: all would cross.
        let checked = Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (q, checked) = (q.clone(), checked.clone());
                std::thread::spawn(move || {
                    assert!(matches!(
                        q.check("a.com", 20, now),
                        QuotaDecision::AcceptInGrace {
                            first_crossing: true,
                            ..
                        }
                    ));
                    checked.wait();
                    q.commit("a.com", 20, now)
                })
            })
            .collect();
        let firsts: Vec<i64> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(firsts, [now + 3 * 86_400_000]);
        assert_eq!(q.usage.lock().unwrap().used("a.com"), 9_990 + 8 * 20);
        // Under the limit a commit records no crossing; a site back under its limit (a
        // plan upgrade) forgets it, and its next crossing is a first one again.
        assert_eq!(q.commit("b.com", 5, now), None);
        std::fs::write(
            d.path().join("sites.toml"),
            "[sites.\"a.com\"]\nplan = \"growth\"\n",
        )
        .unwrap();
        std::fs::File::options()
            .write(true)
            .open(d.path().join("sites.toml"))
            .unwrap()
            .set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert!(q.reload_if_changed());
        assert_eq!(q.check("a.com", 1, now), QuotaDecision::Accept);
        assert_eq!(
            q.commit("a.com", 100_000, now + 1),
            Some(now + 1 + 7 * 86_400_000)
        );
    }

    #[test]
    fn reload_on_change_invalidates_usage() {
        let d = tempfile::tempdir().unwrap();
        let p = sites(d.path(), "free");
        let q = Quotas::new(Some(p.clone())).unwrap();
        q.set_usage(
            month_bounds(1_763_900_000_000).0,
            HashMap::new(),
            HashMap::new(),
        );
        assert!(!q.needs_refresh());
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&p, "[sites.\"a.com\"]\nplan = \"business\"\n").unwrap();
        let t = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert!(q.reload_if_changed());
        assert!(q.needs_refresh());
        assert_eq!(q.registry().unwrap().get("a.com").unwrap().plan, "business");
        std::fs::write(&p, "not toml [").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t + Duration::from_secs(5))
            .unwrap();
        assert!(!q.reload_if_changed());
        assert_eq!(q.registry().unwrap().get("a.com").unwrap().plan, "business");
    }

    /// A refresh while the spool still holds stored events (the store does not show
    /// them yet) keeps them counted; a store that shows more (another instance) wins.
    #[test]
    fn a_refresh_keeps_what_the_store_does_not_show_yet() {
        let d = tempfile::tempdir().unwrap();
        let q = Quotas::new(Some(sites(d.path(), "free"))).unwrap();
        let now = 1_763_900_000_000;
        let month = month_bounds(now).0;
        q.set_usage(
            month,
            HashMap::from([("a.com".into(), 4_000)]),
            HashMap::new(),
        );
        q.record("a.com", 6_000, now);
        // Only 1,000 of the 6,000 are loaded when the store is read again.
        q.set_usage(
            month,
            HashMap::from([("a.com".into(), 5_000)]),
            HashMap::new(),
        );
        assert!(matches!(
            q.check("a.com", 1, now),
            QuotaDecision::AcceptInGrace { .. }
        ));
        // The store lost nothing it once showed: a read showing less (a lagging
        // replica) does not lower the count either.
        q.set_usage(month, HashMap::new(), HashMap::new());
        assert!(matches!(
            q.check("a.com", 1, now),
            QuotaDecision::AcceptInGrace { .. }
        ));
        // A read of this month that ends after the next has begun changes nothing: not
        // the new month's counts, not its (absent) base.
        let next = month_bounds(now).1;
        assert_eq!(q.check("a.com", 1, next + 1), QuotaDecision::Accept);
        q.record("a.com", 9_999, next + 1);
        q.set_usage(
            month,
            HashMap::from([("a.com".into(), 20_000)]),
            HashMap::new(),
        );
        assert_eq!(q.check("a.com", 1, next + 1), QuotaDecision::Accept);
        assert!(matches!(
            q.check("a.com", 2, next + 1),
            QuotaDecision::AcceptInGrace { .. }
        ));
        // Next month, the old counts are gone.
        q.set_usage(next, HashMap::from([("a.com".into(), 3)]), HashMap::new());
        assert_eq!(q.check("a.com", 1, next + 1), QuotaDecision::Accept);
        // Another instance's events, shown by the store, count too.
        q.set_usage(
            next,
            HashMap::from([("a.com".into(), 10_000)]),
            HashMap::new(),
        );
        assert!(matches!(
            q.check("a.com", 1, next + 1),
            QuotaDecision::AcceptInGrace { .. }
        ));
    }

    /// The grace period runs from when the store shows the limit was crossed, not from
    /// when this instance first saw it (a restart does not open it again).
    #[test]
    fn the_grace_period_starts_when_the_store_shows_the_crossing() {
        let d = tempfile::tempdir().unwrap();
        let q = Quotas::new(Some(sites(d.path(), "free"))).unwrap();
        let (month, _) = month_bounds(1_763_900_000_000);
        let crossed_at = month + 86_400_000;
        let usage = HashMap::from([("a.com".into(), 10_500)]);
        assert_eq!(q.over_limit(month, &usage), [("a.com".to_owned(), 10_000)]);
        assert!(q
            .over_limit(month, &HashMap::from([("a.com".into(), 10_000)]))
            .is_empty());
        q.set_usage(
            month,
            usage.clone(),
            HashMap::from([("a.com".into(), crossed_at)]),
        );
        // Read once a month: the crossing does not move.
        assert!(q.over_limit(month, &usage).is_empty());
        let (next, _) = month_bounds(month_bounds(month).1);
        assert_eq!(q.over_limit(next, &usage).len(), 1);
        let day2 = crossed_at + 2 * 86_400_000;
        assert!(matches!(
            q.check("a.com", 1, day2),
            QuotaDecision::AcceptInGrace { first_crossing: false, grace_ends_ms, .. }
                if grace_ends_ms == crossed_at + 3 * 86_400_000
        ));
        assert!(matches!(
            q.check("a.com", 1, crossed_at + 4 * 86_400_000),
            QuotaDecision::Refuse { .. }
        ));
    }
}
