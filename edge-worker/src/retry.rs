//! What the queue consumer does with a failed post to the sink: which failures are
//! retried (and after how long) and which are dead-lettered at once.
//!
//! Retries back off exponentially by the message's delivery attempt, from
//! `QUEUE_RETRY_BASE_SECS` doubling up to `QUEUE_RETRY_MAX_SECS` (see [`crate::config`]),
//! and never come sooner than the sink's `Retry-After`. With the defaults (10 s, 5 min)
//! and `max_retries = 100` in `wrangler.toml`, a message is retried for about 8 hours
//! before Cloudflare moves it to the dead-letter queue.

/// Longest delay Cloudflare Queues accepts for a retry, in seconds (12 hours).
pub const MAX_QUEUE_DELAY_SECS: u32 = 43_200;

/// The backoff of the consumer's retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failed attempt, seconds (at least 1).
    pub base_secs: u32,
    /// Longest delay, seconds (at least `base_secs`, at most [`MAX_QUEUE_DELAY_SECS`]).
    pub max_secs: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_secs: 10,
            max_secs: 300,
        }
    }
}

impl Backoff {
    /// The delay before the next delivery of a message whose `attempts`-th delivery
    /// (1 for the first) just failed: `base × 2^(attempts-1)`, at least `retry_after`
    /// (the sink's `Retry-After`), at most `max_secs`.
    ///
    /// ```
    /// use edge_worker::retry::Backoff;
    /// let b = Backoff { base_secs: 10, max_secs: 300 };
    /// assert_eq!(b.delay_secs(1, None), 10);
    /// assert_eq!(b.delay_secs(3, None), 40);
    /// assert_eq!(b.delay_secs(30, None), 300);
    /// assert_eq!(b.delay_secs(1, Some(30)), 30);
    /// assert_eq!(b.delay_secs(1, Some(3600)), 300);
    /// ```
    pub fn delay_secs(&self, attempts: u32, retry_after: Option<u32>) -> u32 {
        let doublings = attempts.saturating_sub(1).min(31);
        let exp = u64::from(self.base_secs) << doublings;
        let exp = u32::try_from(exp).unwrap_or(u32::MAX);
        exp.max(retry_after.unwrap_or(0))
            .min(self.max_secs)
            .min(MAX_QUEUE_DELAY_SECS)
    }

    /// How long a message is retried, in seconds, before `max_retries` send it to the
    /// dead-letter queue (every delivery failing at once, no `Retry-After` longer than
    /// the backoff).
    pub fn window_secs(&self, max_retries: u32) -> u64 {
        (1..=max_retries)
            .map(|a| u64::from(self.delay_secs(a, None)))
            .sum()
    }
}

/// What to do with the messages of a post the sink did not answer 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The sink refused the body for good (400, 413, 422): sending it again will not
    /// help. The messages go to the dead-letter queue now (a multi-message body is
    /// first split, so only the messages the sink refuses alone go there).
    Permanent,
    /// Anything else: a network error, a 5xx (restart, full spool), 401/403 (the token
    /// changing during a deploy), 408, 429, a 404 from a misrouted `SINK_URL`: retried
    /// with backoff.
    Transient,
}

/// The kind of failure of a post answered `status` (`None`: no answer at all).
pub fn classify(status: Option<u16>) -> Failure {
    match status {
        Some(400 | 413 | 422) => Failure::Permanent,
        _ => Failure::Transient,
    }
}

/// The seconds of a `Retry-After` header (delta-seconds only; an HTTP date, which the
/// sink never sends, is ignored).
pub fn parse_retry_after(value: &str) -> Option<u32> {
    value.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Backoff::default();
        let delays: Vec<u32> = (1..=7).map(|a| b.delay_secs(a, None)).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.delay_secs(0, None), 10, "attempts start at 1");
        assert_eq!(b.delay_secs(u32::MAX, None), 300, "no overflow");
        let wide = Backoff {
            base_secs: u32::MAX,
            max_secs: u32::MAX,
        };
        assert_eq!(wide.delay_secs(5, None), MAX_QUEUE_DELAY_SECS);
    }

    #[test]
    fn retry_after_is_honoured_within_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.delay_secs(1, Some(30)), 30);
        assert_eq!(b.delay_secs(4, Some(30)), 80, "the backoff is longer");
        assert_eq!(b.delay_secs(1, Some(86_400)), 300);
        assert_eq!(parse_retry_after(" 30 "), Some(30));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    /// The defaults with `max_retries = 100` (wrangler.toml) ride out hours of outage.
    #[test]
    fn the_default_window_covers_hours() {
        let w = Backoff::default().window_secs(100);
        assert_eq!(w, 10 + 20 + 40 + 80 + 160 + 95 * 300);
        assert!(w > 7 * 3600, "{w} s");
    }

    #[test]
    fn only_400_413_422_are_permanent() {
        for s in [400, 413, 422] {
            assert_eq!(classify(Some(s)), Failure::Permanent, "{s}");
        }
        for s in [401, 403, 404, 408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(Some(s)), Failure::Transient, "{s}");
        }
        assert_eq!(classify(None), Failure::Transient);
    }
}
