//! The GCRA limiter: the admission bound, bounded memory, accurate `retry_after`.

use ingest_core::{Decision, RateLimitConfig, RateLimiter};
use proptest::prelude::*;

fn limiter(rate: f64, burst: u32, max_keys: usize) -> RateLimiter {
    RateLimiter::new(RateLimitConfig {
        rate_per_sec: rate,
        burst,
        max_keys,
    })
}

/// Asserts that in every window `[t_i, t_j]` the admitted cells are at most
/// `rate × (t_j - t_i) + burst`.
fn assert_bound(admitted: &[(i64, u32)], rate: f64, burst: u32) {
    for i in 0..admitted.len() {
        let mut sum = 0u64;
        for &(t, n) in &admitted[i..] {
            sum += u64::from(n);
            let allowed = rate * (t - admitted[i].0) as f64 / 1000.0 + f64::from(burst);
            assert!(
                sum as f64 <= allowed + 1e-9,
                "{sum} cells admitted in [{}, {t}] ms, bound {allowed}",
                admitted[i].0
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_admits_more_than_rate_times_elapsed_plus_burst(
        rate in 0.1f64..2000.0,
        burst in 1u32..40,
        schedule in prop::collection::vec((0i64..1500, 1u32..6, 0u64..4), 1..250),
        start in -1_000_000_000i64..2_000_000_000_000,
    ) {
        // Up to 4 keys, all kept (max_keys 4): each key obeys the bound on its own.
        let mut rl = limiter(rate, burst, 4);
        let mut now = start;
        let mut admitted: Vec<Vec<(i64, u32)>> = vec![Vec::new(); 4];
        for (dt, n, key) in schedule {
            now += dt;
            if rl.check_n(key, n, now) == Decision::Allow {
                admitted[key as usize].push((now, n));
            }
        }
        for a in &admitted {
            assert_bound(a, rate, burst);
        }
    }

    #[test]
    fn retry_after_is_exact(
        rate in 0.5f64..500.0,
        burst in 1u32..20,
        schedule in prop::collection::vec((0i64..300, 1u32..4), 1..100),
    ) {
        let mut rl = limiter(rate, burst, 8);
        let mut now = 0i64;
        for (dt, n) in schedule {
            now += dt;
            let n = n.min(burst);
            let before = rl.clone();
            if let Decision::Deny { retry_after_ms } = rl.check_n(1, n, now) {
                let wait = i64::try_from(retry_after_ms).unwrap();
                prop_assert!(before.clone().check_n(1, n, now + wait).is_allowed());
                if wait > 1 {
                    // Rounded up to whole ms: one ms earlier is still too early.
                    prop_assert!(!before.clone().check_n(1, n, now + wait - 1).is_allowed());
                }
            }
        }
    }

    #[test]
    fn len_never_exceeds_max_keys(
        max_keys in 1usize..64,
        rate in prop::sample::select(vec![0.001f64, 1.0, 1e6]),
        keys in prop::collection::vec(0u64..500, 1..2000),
    ) {
        let mut rl = limiter(rate, 3, max_keys);
        for (i, k) in keys.into_iter().enumerate() {
            rl.check(k, i as i64);
            prop_assert!(rl.len() <= max_keys);
        }
    }
}

#[test]
fn memory_stays_bounded_under_a_million_distinct_keys() {
    // Hot keys (nothing becomes idle: rate 1/hour) and idle keys (rate 1e6/s).
    for rate in [1.0 / 3600.0, 1e6] {
        let max_keys = 10_000;
        let mut rl = limiter(rate, 5, max_keys);
        for k in 0..1_000_000u64 {
            let key = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert!(
                rl.check(key, (k / 100) as i64).is_allowed(),
                "fresh key {k}"
            );
            assert!(rl.len() <= max_keys);
        }
        assert_eq!(rl.len(), max_keys);
    }
}

#[test]
fn an_evicted_hot_key_comes_back_with_a_fresh_burst() {
    // The documented cost of eviction: with max_keys 1, key 2 pushes hot key 1 out.
    let mut rl = limiter(1.0, 2, 1);
    assert!(rl.check_n(1, 2, 0).is_allowed());
    assert!(!rl.check(1, 0).is_allowed());
    assert!(rl.check(2, 0).is_allowed());
    assert!(rl.check_n(1, 2, 0).is_allowed());
}

#[test]
fn config_deserializes_with_defaults() {
    let cfg: RateLimitConfig = serde_json::from_str(r#"{"rate_per_sec": 5}"#).unwrap();
    assert_eq!(cfg.rate_per_sec, 5.0);
    assert_eq!(cfg.burst, RateLimitConfig::default().burst);
    assert!(serde_json::from_str::<RateLimitConfig>(r#"{"rate": 5}"#).is_err());
}
