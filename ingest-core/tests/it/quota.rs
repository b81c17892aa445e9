//! Plan quotas: accept, grace after the first crossing (signalled once), refusal with a
//! friendly message until the next UTC month, month reset.

use ingest_core::{check_quota, check_site_quota, plan, QuotaDecision, QuotaState, PLANS};

const DAY: i64 = 86_400_000;
const NOV_1_2026: i64 = 1_793_491_200_000;
const NOV_5_2026: i64 = 1_793_836_800_000;
const DEC_1_2026: i64 = 1_796_083_200_000;
const DEC_20_2026: i64 = 1_797_724_800_000;
const JAN_1_2027: i64 = 1_798_761_600_000;
const FEB_29_2028: i64 = 1_835_395_200_000;
const MAR_1_2028: i64 = 1_835_481_600_000;

#[test]
fn plans_are_a_small_documented_set() {
    let names: Vec<_> = PLANS.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        ["free", "growth", "business", "enterprise", "unlimited"]
    );
    let free = plan("free").unwrap();
    assert_eq!((free.monthly_events, free.grace_days), (10_000, 3));
    assert!(plan("nope").is_none());
}

#[test]
fn under_and_at_the_limit_is_accepted() {
    let free = plan("free").unwrap();
    let mut st = QuotaState::default();
    assert_eq!(
        check_quota(free, 0, 1, &mut st, NOV_5_2026),
        QuotaDecision::Accept
    );
    // At the limit: usage + incoming == monthly events.
    assert_eq!(
        check_quota(free, 9_990, 10, &mut st, NOV_5_2026),
        QuotaDecision::Accept
    );
    assert_eq!(st, QuotaState::default());
}

#[test]
fn grace_starts_at_the_first_crossing_and_is_signalled_once() {
    let free = plan("free").unwrap(); // 3 days of grace
    let mut st = QuotaState::default();
    // One past the limit: the first crossing.
    let d = check_site_quota("example.com", free, 9_990, 11, &mut st, NOV_5_2026);
    let grace_ends_ms = NOV_5_2026 + 3 * DAY;
    assert_eq!(
        d,
        QuotaDecision::AcceptInGrace {
            first_crossing: true,
            grace_ends_ms
        }
    );
    assert_eq!(st.over_since_ms, Some(NOV_5_2026));
    // Later requests in grace: same end, no second signal.
    for t in [NOV_5_2026 + 1, NOV_5_2026 + DAY, grace_ends_ms - 1] {
        assert_eq!(
            check_site_quota("example.com", free, 12_000, 1, &mut st, t),
            QuotaDecision::AcceptInGrace {
                first_crossing: false,
                grace_ends_ms
            }
        );
    }
    // Grace over: refused until December 1st.
    let now = grace_ends_ms;
    match check_site_quota("example.com", free, 15_000, 1, &mut st, now) {
        QuotaDecision::Refuse {
            message,
            retry_after_ms,
            resets_at_ms,
        } => {
            assert_eq!(resets_at_ms, DEC_1_2026);
            assert_eq!(retry_after_ms, (DEC_1_2026 - now) as u64);
            assert_eq!(
                message,
                "example.com has used its 10,000 events for November 2026 (plan free); \
                 data is accepted again on 1 December 2026 (UTC)."
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_new_month_clears_the_state() {
    let growth = plan("growth").unwrap();
    let mut st = QuotaState {
        over_since_ms: Some(NOV_1_2026),
    };
    // Still November, grace (7 days) over: refused.
    assert!(matches!(
        check_quota(growth, 200_000, 1, &mut st, NOV_1_2026 + 8 * DAY),
        QuotaDecision::Refuse { .. }
    ));
    // December: usage starts again from 0.
    assert_eq!(
        check_quota(growth, 0, 1, &mut st, DEC_1_2026),
        QuotaDecision::Accept
    );
    assert_eq!(st.over_since_ms, None);
    // Even a December usage figure that is over (stale November count): a new crossing.
    let mut st = QuotaState {
        over_since_ms: Some(NOV_1_2026),
    };
    assert!(matches!(
        check_quota(growth, 200_000, 1, &mut st, DEC_1_2026),
        QuotaDecision::AcceptInGrace {
            first_crossing: true,
            ..
        }
    ));
}

#[test]
fn dropping_under_the_limit_makes_the_next_crossing_a_new_one() {
    let free = plan("free").unwrap();
    let business = plan("business").unwrap();
    let mut st = QuotaState::default();
    assert!(matches!(
        check_quota(free, 10_000, 1, &mut st, NOV_5_2026),
        QuotaDecision::AcceptInGrace {
            first_crossing: true,
            ..
        }
    ));
    // The owner upgrades: under the new plan's limit.
    assert_eq!(
        check_quota(business, 10_001, 1, &mut st, NOV_5_2026 + DAY),
        QuotaDecision::Accept
    );
    assert_eq!(st.over_since_ms, None);
}

#[test]
fn december_resets_on_january_first() {
    let free = plan("free").unwrap();
    let mut st = QuotaState {
        over_since_ms: Some(DEC_1_2026),
    };
    match check_site_quota("a.org", free, 20_000, 1, &mut st, DEC_20_2026) {
        QuotaDecision::Refuse {
            message,
            resets_at_ms,
            retry_after_ms,
        } => {
            assert_eq!(resets_at_ms, JAN_1_2027);
            assert_eq!(retry_after_ms, (JAN_1_2027 - DEC_20_2026) as u64);
            assert!(message.contains("for December 2026"), "{message}");
            assert!(message.contains("on 1 January 2027"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn leap_february_resets_on_march_first() {
    let free = plan("free").unwrap();
    let mut st = QuotaState {
        over_since_ms: Some(FEB_29_2028 - 10 * DAY),
    };
    let now = FEB_29_2028 + 12 * 3_600_000;
    match check_quota(free, 20_000, 1, &mut st, now) {
        QuotaDecision::Refuse {
            resets_at_ms,
            retry_after_ms,
            message,
        } => {
            assert_eq!(resets_at_ms, MAR_1_2028);
            assert_eq!(retry_after_ms, 12 * 3_600_000);
            assert!(message.starts_with("this site has used its 10,000 events for February 2028"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn unlimited_never_refuses() {
    let unlimited = plan("unlimited").unwrap();
    let mut st = QuotaState::default();
    assert_eq!(
        check_quota(unlimited, u64::MAX - 1, 1, &mut st, NOV_5_2026),
        QuotaDecision::Accept
    );
    // Saturating: usage + incoming cannot overflow into a small number.
    assert!(!matches!(
        check_quota(
            plan("free").unwrap(),
            u64::MAX,
            u64::MAX,
            &mut st,
            NOV_5_2026
        ),
        QuotaDecision::Accept
    ));
}
