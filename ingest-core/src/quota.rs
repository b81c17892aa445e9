//! Monthly event quotas per plan, with a grace period after the limit is first crossed.
//!
//! The caller supplies a site's month-to-date usage and the time; this module decides.
//! Past the plan's monthly events, data is still accepted for the plan's grace period
//! (counted from the *first* crossing this month, kept by the caller in a
//! [`QuotaState`]), with a signal to act on once (send the owner an email, raise an
//! alert). After the grace period, requests are refused with a friendly message until
//! the first day of the next UTC month, when usage and state start again.

/// A plan: how many events a site may send per calendar month (UTC), and how long
/// data is still accepted after the limit is first crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Name used in the sites file (`plan = "growth"`).
    pub name: &'static str,
    /// Events per UTC calendar month.
    pub monthly_events: u64,
    /// Days during which data is still accepted after the limit is first crossed.
    pub grace_days: u32,
}

/// The plans, fixed in code (a plan change is a release, like a price change).
///
/// | plan | events / month | grace |
/// |---|---|---|
/// | `free` | 10 000 | 3 days |
/// | `growth` | 100 000 | 7 days |
/// | `business` | 1 000 000 | 7 days |
/// | `enterprise` | 10 000 000 | 14 days |
/// | `unlimited` | no limit (u64::MAX) | - |
///
/// `unlimited` is for the operator's own sites and for tests.
pub const PLANS: &[Plan] = &[
    Plan {
        name: "free",
        monthly_events: 10_000,
        grace_days: 3,
    },
    Plan {
        name: "growth",
        monthly_events: 100_000,
        grace_days: 7,
    },
    Plan {
        name: "business",
        monthly_events: 1_000_000,
        grace_days: 7,
    },
    Plan {
        name: "enterprise",
        monthly_events: 10_000_000,
        grace_days: 14,
    },
    Plan {
        name: "unlimited",
        monthly_events: u64::MAX,
        grace_days: 0,
    },
];

/// The plan named `name` (exact, lowercase), if any.
pub fn plan(name: &str) -> Option<&'static Plan> {
    PLANS.iter().find(|p| p.name == name)
}

/// What the caller keeps per site between checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaState {
    /// When the site first went over its limit this month (Unix ms); `None` while under.
    pub over_since_ms: Option<i64>,
}

impl QuotaState {
    /// This recorded state as it stands for a site with `usage` events this month on
    /// `plan`: the crossing recorded, or none while the usage is within the plan's limit
    /// — a site back under it (its plan upgraded) has not crossed the new limit yet, and
    /// its grace period starts anew when it does. The edge's and the sink's quota books
    /// both read their state through this.
    pub fn for_usage(self, usage: u64, plan: &Plan) -> QuotaState {
        if usage > plan.monthly_events {
            self
        } else {
            QuotaState::default()
        }
    }
}

/// The answer of [`check_quota`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Under the limit.
    Accept,
    /// Over the limit, within the grace period: accept, and tell the owner.
    AcceptInGrace {
        /// True for exactly one call per crossing (the one that crossed): act on it once.
        first_crossing: bool,
        /// When the grace period ends (Unix ms).
        grace_ends_ms: i64,
    },
    /// Over the limit and past the grace period.
    Refuse {
        /// A friendly message for the JSON reply.
        message: String,
        /// Milliseconds until the quota resets (for `Retry-After`).
        retry_after_ms: u64,
        /// When the quota resets: the start of the next UTC month (Unix ms).
        resets_at_ms: i64,
    },
}

impl QuotaDecision {
    /// When the grace period ends, for the one decision that crossed the limit (the
    /// moment to tell the owner, once); `None` for every other decision.
    pub fn first_crossing(&self) -> Option<i64> {
        match *self {
            QuotaDecision::AcceptInGrace {
                first_crossing: true,
                grace_ends_ms,
            } => Some(grace_ends_ms),
            _ => None,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// [`check_site_quota`] with the site named "this site" in the message.
pub fn check_quota(
    plan: &Plan,
    usage_month_to_date: u64,
    incoming: u64,
    state: &mut QuotaState,
    now_ms: i64,
) -> QuotaDecision {
    check_site_quota(
        "this site",
        plan,
        usage_month_to_date,
        incoming,
        state,
        now_ms,
    )
}

/// Decides whether `incoming` more events for `site` are accepted at `now_ms`, given
/// the site's usage so far this UTC month, and updates `state`.
///
/// - Usage + incoming at or under the limit: [`QuotaDecision::Accept`] (and the state is
///   cleared, so a later crossing, e.g. after a downgrade, is a new first crossing).
/// - Over it: the first call records the crossing (`first_crossing: true`); until
///   `grace_days` after it, [`QuotaDecision::AcceptInGrace`]; after that,
///   [`QuotaDecision::Refuse`] until the start of the next UTC month.
/// - A state recorded in an earlier month is cleared first.
///
/// ```
/// use ingest_core::{check_site_quota, plan, QuotaDecision, QuotaState};
/// let free = plan("free").unwrap();
/// let mut st = QuotaState::default();
/// let now = 1_763_900_000_000; // 2025-11-23
/// assert_eq!(check_site_quota("a.com", free, 9_999, 1, &mut st, now), QuotaDecision::Accept);
/// assert!(matches!(
///     check_site_quota("a.com", free, 10_000, 1, &mut st, now),
///     QuotaDecision::AcceptInGrace { first_crossing: true, .. }
/// ));
/// ```
pub fn check_site_quota(
    site: &str,
    plan: &Plan,
    usage_month_to_date: u64,
    incoming: u64,
    state: &mut QuotaState,
    now_ms: i64,
) -> QuotaDecision {
    let (month_start, next_month) = month_bounds(now_ms);
    if state.over_since_ms.is_some_and(|t| t < month_start) {
        state.over_since_ms = None;
    }
    if usage_month_to_date.saturating_add(incoming) <= plan.monthly_events {
        state.over_since_ms = None;
        return QuotaDecision::Accept;
    }
    let first_crossing = state.over_since_ms.is_none();
    let since = *state.over_since_ms.get_or_insert(now_ms);
    let grace_ends_ms = since.saturating_add(i64::from(plan.grace_days) * DAY_MS);
    if now_ms < grace_ends_ms {
        return QuotaDecision::AcceptInGrace {
            first_crossing,
            grace_ends_ms,
        };
    }
    let (y, m, _) = civil_from_days(month_start.div_euclid(DAY_MS));
    let (ny, nm, nd) = civil_from_days(next_month.div_euclid(DAY_MS));
    QuotaDecision::Refuse {
        message: format!(
            "{site} has used its {} events for {} {y} (plan {}); data is accepted again on {nd} {} {ny} (UTC).",
            thousands(plan.monthly_events),
            MONTHS[m as usize - 1],
            plan.name,
            MONTHS[nm as usize - 1],
        ),
        retry_after_ms: u64::try_from(next_month - now_ms).unwrap_or(0),
        resets_at_ms: next_month,
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The start of the UTC month containing `now_ms` and the start of the next one (Unix ms).
pub fn month_bounds(now_ms: i64) -> (i64, i64) {
    let (y, m, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
    let start = days_from_civil(y, m, 1) * DAY_MS;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (start, days_from_civil(ny, nm, 1) * DAY_MS)
}

// Howard Hinnant's `days_from_civil` / `civil_from_days` (proleptic Gregorian calendar).
// Hand-written: two short, well-known functions, instead of a date crate for one use.

/// Days since 1970-01-01 of the date `y-m-d`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(y, m, d)` of `z` days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) * DAY_MS
    }

    /// A recorded crossing stands while the usage is over the plan's limit and is
    /// forgotten when it is back within it (an upgraded plan).
    #[test]
    fn a_crossing_stands_only_over_the_limit() {
        let free = plan("free").unwrap();
        let crossed = QuotaState {
            over_since_ms: Some(7),
        };
        assert_eq!(crossed.for_usage(free.monthly_events + 1, free), crossed);
        assert_eq!(
            crossed.for_usage(free.monthly_events, free),
            QuotaState::default()
        );
        let bigger = plan("growth").unwrap();
        assert!(bigger.monthly_events > free.monthly_events + 1);
        assert_eq!(
            crossed.for_usage(free.monthly_events + 1, bigger),
            QuotaState::default(),
            "over free's limit but within growth's"
        );
    }

    #[test]
    fn calendar_round_trips_and_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for z in -800_000..800_000 {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn month_bounds_dec_to_jan_and_leap_february() {
        // 2026-12-31 23:59:59.999 -> December 2026, next is 2027-01-01.
        let t = ms(2027, 1, 1) - 1;
        assert_eq!(month_bounds(t), (ms(2026, 12, 1), ms(2027, 1, 1)));
        assert_eq!(month_bounds(ms(2027, 1, 1)).0, ms(2027, 1, 1));
        // Leap February 2028 has 29 days; 2100 is not a leap year; 2000 is.
        assert_eq!(
            month_bounds(ms(2028, 2, 29) + 5).1 - ms(2028, 2, 1),
            29 * DAY_MS
        );
        assert_eq!(
            month_bounds(ms(2100, 2, 10)).1 - ms(2100, 2, 1),
            28 * DAY_MS
        );
        assert_eq!(
            month_bounds(ms(2000, 2, 10)).1 - ms(2000, 2, 1),
            29 * DAY_MS
        );
        assert_eq!(month_bounds(ms(1969, 12, 5)), (ms(1969, 12, 1), 0));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn plans_are_known_by_name() {
        assert_eq!(plan("growth").unwrap().monthly_events, 100_000);
        assert!(plan("Growth").is_none());
        assert!(plan("gold").is_none());
    }
}
