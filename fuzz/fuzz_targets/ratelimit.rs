//! Any schedule of requests against the GCRA limiter: one key is never admitted more
//! than rate × elapsed + burst times, and the key table stays within its bound.
#![no_main]
use arbitrary::Arbitrary;
use ingest_core::{Decision, RateLimitConfig, RateLimiter};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    rate: u8,
    burst: u8,
    max_keys: u8,
    steps: Vec<(u8, u16, u8)>, // (key, ms since previous step, n)
}

fuzz_target!(|input: Input| {
    let rate = f64::from(input.rate.max(1));
    let burst = u32::from(input.burst.max(1));
    let max_keys = usize::from(input.max_keys.max(1));
    let mut limiter = RateLimiter::new(RateLimitConfig {
        rate_per_sec: rate,
        burst,
        max_keys,
    });
    let mut now = 1_000_000i64;
    let start = now;
    let mut admitted_key0 = 0u64;
    for (key, dt, n) in input.steps {
        now += i64::from(dt);
        let n = u32::from(n % 4) + 1;
        if let Decision::Allow = limiter.check_n(u64::from(key % 8), n, now) {
            if key % 8 == 0 {
                admitted_key0 += u64::from(n);
            }
        }
        assert!(limiter.len() <= max_keys);
    }
    // Eviction can only forget a key whose allowance is full again (idle) or, when the
    // table is full of busy keys, hand it a fresh burst: bound with one extra burst per
    // possible eviction only when the table is smaller than the key space.
    let elapsed_s = (now - start) as f64 / 1000.0;
    let bound = rate * elapsed_s + f64::from(burst);
    if max_keys >= 8 {
        assert!(
            admitted_key0 as f64 <= bound + 1e-6,
            "{admitted_key0} > {bound}"
        );
    }
});
