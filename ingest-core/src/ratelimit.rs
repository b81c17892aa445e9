//! A GCRA rate limiter keyed by a 64-bit key, with bounded memory and the time passed in.
//!
//! GCRA (the generic cell rate algorithm) keeps one number per key, the *theoretical
//! arrival time* (TAT): the instant at which the key's bucket would be empty again. A
//! request of `n` cells at `now` is admitted when `max(TAT, now) + n·T - now <= burst·T`
//! (with `T = 1 / rate`), and then TAT moves to `max(TAT, now) + n·T`. Over any interval
//! of length `d`, one key is therefore admitted at most `rate·d + burst` cells.
//!
//! Memory is bounded by [`RateLimitConfig::max_keys`]. Entries live in a ring walked by a
//! clock hand (the CLOCK page-replacement scheme) so that admitting a new key when the
//! table is full costs a bounded number of steps, never a scan of every key:
//!
//! 1. an *idle* key (its TAT is not after `now`) is evicted first: such a key behaves
//!    exactly like a key never seen, so dropping it loses nothing;
//! 2. otherwise a key not checked since the hand last passed it (approximately the least
//!    recently used one) is evicted;
//! 3. otherwise, the slot under the hand (approximately the oldest).
//!
//! The effect of cases 2 and 3: an evicted key that is still *hot* comes back as a fresh
//! key with a full burst. With `max_keys` above the number of clients active within one
//! burst period this does not happen; size it that way (each key costs about 50 bytes:
//! a 32-byte slot and its index entry).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

/// Configuration of a [`RateLimiter`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained rate, in cells (events) per second per key. `0` (or a negative, NaN or
    /// infinite value) disables the limiter: every check is allowed. Default 10.
    pub rate_per_sec: f64,
    /// Cells a key may spend at once after being idle (the bucket size). `0` is
    /// treated as `1`. Default 100.
    pub burst: u32,
    /// Maximum number of keys kept in memory (about 50 bytes each). When full, idle
    /// keys are evicted first (lossless), then approximately least recently used ones
    /// (an evicted hot key starts again with a full burst). `0` is treated as `1`.
    /// Default 100 000.
    pub max_keys: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rate_per_sec: 10.0,
            burst: 100,
            max_keys: 100_000,
        }
    }
}

impl RateLimitConfig {
    /// Whether the limiter refuses anything: a positive, finite rate.
    pub fn is_enabled(&self) -> bool {
        self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0
    }

    /// Why a request of `max_events` events (a service's most per request, each event
    /// one cell) could never be admitted, if so: a request of more cells than the burst
    /// is refused whatever the key's history ([`RateLimiter::check_n`]), so a client
    /// sending one would be answered 429 forever. Services check their configuration
    /// with it at start-up.
    pub fn refuses_requests_of(&self, max_events: usize) -> Option<String> {
        let burst = self.burst.max(1);
        (self.is_enabled() && max_events > burst as usize).then(|| {
            format!(
                "a request may carry {max_events} events but the rate limiter's burst is \
                 {burst}: a request of more events than the burst is never admitted; \
                 raise the burst to at least {max_events}, or lower the events per request"
            )
        })
    }
}

/// The answer of [`RateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; the cells were spent.
    Allow,
    /// Refused; nothing was spent.
    Deny {
        /// Milliseconds after which the same request would be admitted (rounded up, at
        /// least 1). For a request larger than the burst, which is never admitted, it is
        /// the time until the key's bucket is full again.
        retry_after_ms: u64,
    },
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Nanoseconds per millisecond.
const NS_PER_MS: i128 = 1_000_000;
/// The longest emission interval: about 31 million years per cell (any smaller rate
/// admits the burst and then nothing, which is what such a rate means).
const MAX_INTERVAL_NS: i128 = 1_000_000_000_000_000_000_000_000;
/// How many slots the clock hand inspects at most to find a victim, so one check costs
/// O(1) even when every key is hot.
const MAX_PROBE: usize = 32;

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: u64,
    /// Theoretical arrival time, ns since the Unix epoch.
    tat_ns: i128,
    /// Set by every check of this key, cleared when the clock hand passes.
    referenced: bool,
}

/// A GCRA limiter over many keys (see the module docs).
///
/// ```
/// use ingest_core::{Decision, RateLimitConfig, RateLimiter};
/// let mut rl = RateLimiter::new(RateLimitConfig { rate_per_sec: 1.0, burst: 2, max_keys: 10 });
/// assert_eq!(rl.check(7, 0), Decision::Allow);
/// assert_eq!(rl.check(7, 0), Decision::Allow);
/// assert_eq!(rl.check(7, 0), Decision::Deny { retry_after_ms: 1000 });
/// assert_eq!(rl.check(7, 1000), Decision::Allow);
/// ```
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Emission interval `T` in ns, rounded *up* so the admitted rate never exceeds the
    /// configured one. `None` when the limiter is disabled.
    interval_ns: Option<i128>,
    burst: u32,
    max_keys: usize,
    index: HashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
    slots: Vec<Slot>,
    hand: usize,
}

impl RateLimiter {
    /// A limiter with the given configuration and no keys.
    pub fn new(cfg: RateLimitConfig) -> Self {
        let rate = cfg.rate_per_sec;
        let interval_ns = if rate.is_finite() && rate > 0.0 {
            // ceil: a rate that is not a whole number of ns per cell is rounded down.
            // Capped at MAX_INTERVAL_NS so `interval × burst` and the TAT stay far
            // inside i128 whatever the rate.
            let t = (1e9 / rate).ceil();
            Some(if t >= MAX_INTERVAL_NS as f64 {
                MAX_INTERVAL_NS
            } else {
                (t as i128).max(1)
            })
        } else {
            None
        };
        RateLimiter {
            interval_ns,
            burst: cfg.burst.max(1),
            max_keys: cfg.max_keys.clamp(1, u32::MAX as usize),
            index: HashMap::default(),
            slots: Vec::new(),
            hand: 0,
        }
    }

    /// Checks one cell for `key` at `now_ms` (Unix ms, from the caller's clock).
    pub fn check(&mut self, key: u64, now_ms: i64) -> Decision {
        self.check_n(key, 1, now_ms)
    }

    /// Checks `n` cells at once (e.g. the events of one request): all are admitted or
    /// none. `n == 0` is always allowed and changes nothing.
    pub fn check_n(&mut self, key: u64, n: u32, now_ms: i64) -> Decision {
        let Some(t) = self.interval_ns else {
            return Decision::Allow;
        };
        if n == 0 {
            return Decision::Allow;
        }
        let now = i128::from(now_ms) * NS_PER_MS;
        let tau = t * i128::from(self.burst);
        let slot = match self.index.get(&key) {
            Some(&i) => i as usize,
            None => {
                // A fresh key: a request that does not fit even an empty bucket is
                // refused without taking a slot.
                if t * i128::from(n) > tau {
                    return Decision::Deny {
                        retry_after_ms: ceil_ms(t),
                    };
                }
                self.insert(key, now)
            }
        };
        let s = &mut self.slots[slot];
        s.referenced = true;
        let base = s.tat_ns.max(now);
        let new_tat = base + t * i128::from(n);
        let over = new_tat - now - tau;
        if over <= 0 {
            s.tat_ns = new_tat;
            Decision::Allow
        } else if t * i128::from(n) > tau {
            Decision::Deny {
                retry_after_ms: ceil_ms((base - now).max(t)),
            }
        } else {
            Decision::Deny {
                retry_after_ms: ceil_ms(over),
            }
        }
    }

    /// Number of keys currently kept (never more than `max_keys`).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no key is kept.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Adds `key` (fresh: TAT = now) and returns its slot, evicting one key if full.
    fn insert(&mut self, key: u64, now: i128) -> usize {
        let fresh = Slot {
            key,
            tat_ns: now,
            referenced: false,
        };
        if self.slots.len() < self.max_keys {
            self.slots.push(fresh);
            let i = self.slots.len() - 1;
            self.index.insert(key, i as u32);
            return i;
        }
        let victim = self.pick_victim(now);
        let old = std::mem::replace(&mut self.slots[victim], fresh);
        self.index.remove(&old.key);
        self.index.insert(key, victim as u32);
        self.hand = (victim + 1) % self.slots.len();
        victim
    }

    /// The CLOCK sweep, bounded by [`MAX_PROBE`] steps (see the module docs).
    fn pick_victim(&mut self, now: i128) -> usize {
        let n = self.slots.len();
        let start = self.hand;
        let mut unreferenced = None;
        for step in 0..MAX_PROBE.min(n) {
            let i = (start + step) % n;
            let s = &mut self.slots[i];
            if s.tat_ns <= now {
                return i;
            }
            if s.referenced {
                s.referenced = false;
            } else if unreferenced.is_none() {
                unreferenced = Some(i);
            }
        }
        unreferenced.unwrap_or(start)
    }
}

fn ceil_ms(ns: i128) -> u64 {
    let ms = (ns + NS_PER_MS - 1) / NS_PER_MS;
    u64::try_from(ms.max(1)).unwrap_or(u64::MAX)
}

/// Keys are expected to be keyed hashes already (e.g. of the client IP under the daily
/// salt), so a cheap bit mixer (the splitmix64 finalizer) spreads them well. Written
/// here because std's `RandomState` draws OS randomness, which this crate avoids, and
/// two lines do not warrant a dependency.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl(rate: f64, burst: u32, max_keys: usize) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            rate_per_sec: rate,
            burst,
            max_keys,
        })
    }

    #[test]
    fn burst_then_steady_rate() {
        let mut r = rl(10.0, 5, 10);
        for _ in 0..5 {
            assert_eq!(r.check(1, 1000), Decision::Allow);
        }
        assert_eq!(
            r.check(1, 1000),
            Decision::Deny {
                retry_after_ms: 100
            }
        );
        assert_eq!(r.check(1, 1099), Decision::Deny { retry_after_ms: 1 });
        assert_eq!(r.check(1, 1100), Decision::Allow);
        // Another key is independent.
        assert_eq!(r.check(2, 1100), Decision::Allow);
    }

    #[test]
    fn zero_rate_disables_and_zero_n_is_free() {
        let mut r = rl(0.0, 1, 10);
        for _ in 0..1000 {
            assert!(r.check(1, 0).is_allowed());
        }
        assert_eq!(r.len(), 0);
        let mut r = rl(f64::NAN, 1, 10);
        assert!(r.check(1, 0).is_allowed());
        let mut r = rl(1.0, 1, 10);
        assert!(r.check_n(1, 0, 0).is_allowed());
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn check_n_at_and_past_burst() {
        let mut r = rl(1.0, 10, 10);
        assert_eq!(r.check_n(1, 10, 0), Decision::Allow); // at the burst
        let mut r = rl(1.0, 10, 10);
        assert_eq!(
            r.check_n(1, 11, 0),
            Decision::Deny {
                retry_after_ms: 1000
            }
        ); // past it: never admitted, and no slot taken
        assert_eq!(r.len(), 0);
        assert!(r.check_n(1, 4, 0).is_allowed());
        assert_eq!(
            r.check_n(1, 11, 0),
            Decision::Deny {
                retry_after_ms: 4000
            }
        );
    }

    #[test]
    fn max_keys_at_and_past_limit() {
        let mut r = rl(1.0, 1, 3);
        for k in 0..3 {
            assert!(r.check(k, 0).is_allowed());
        }
        assert_eq!(r.len(), 3); // at the limit: all kept
        assert!(r.check(3, 0).is_allowed()); // past it: one evicted
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn idle_keys_are_evicted_before_hot_ones() {
        let mut r = rl(1.0, 5, 4);
        // Key 0 spends its whole burst: it stays hot for 5 s.
        assert!(r.check_n(0, 5, 0).is_allowed());
        for k in 1..4 {
            assert!(r.check(k, 0).is_allowed()); // hot for 1 s
        }
        // At 2 s keys 1..3 are idle; key 0 is not. New keys must push out idle ones only.
        for k in 10..13 {
            assert!(r.check(k, 2000).is_allowed());
        }
        assert!(r.index.contains_key(&0));
        // Its state was kept: a fresh key would take 3 cells, key 0 has only 2 left.
        assert_eq!(
            r.check_n(0, 3, 2000),
            Decision::Deny {
                retry_after_ms: 1000
            }
        );
    }

    #[test]
    fn extreme_rates_and_times_do_not_overflow() {
        let mut r = rl(1e-300, u32::MAX, 4);
        assert!(r.check_n(1, u32::MAX, i64::MAX).is_allowed());
        assert!(!r.check(1, i64::MAX).is_allowed());
        assert!(r.check(2, i64::MIN).is_allowed());
        let mut r = rl(1e300, 1, 4);
        assert!(r.check(1, 0).is_allowed());
        assert_eq!(r.check(1, 0), Decision::Deny { retry_after_ms: 1 });
        assert!(r.check(1, 1).is_allowed());
    }

    #[test]
    fn time_going_backwards_does_not_refill() {
        let mut r = rl(1.0, 1, 4);
        assert!(r.check(1, 10_000).is_allowed());
        assert!(!r.check(1, 5_000).is_allowed());
    }

    #[test]
    fn a_request_larger_than_the_burst_is_a_configuration_error() {
        let cfg = RateLimitConfig::default();
        assert_eq!(cfg.refuses_requests_of(100), None, "the defaults fit");
        let why = cfg
            .refuses_requests_of(101)
            .expect("101 events > burst 100");
        assert!(why.contains("101") && why.contains("burst is 100"), "{why}");
        // Indeed never admitted, however long the key has been idle.
        let mut l = RateLimiter::new(cfg.clone());
        assert!(matches!(
            l.check_n(1, 101, 1_000_000),
            Decision::Deny { .. }
        ));
        let off = RateLimitConfig {
            rate_per_sec: 0.0,
            ..cfg
        };
        assert!(!off.is_enabled());
        assert_eq!(off.refuses_requests_of(10_000), None, "a disabled limiter");
    }
}
