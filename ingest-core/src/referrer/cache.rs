//! The sources of recently seen referrer hosts, in a small direct-mapped cache per
//! pipeline (`PipelineConfig::referrer_cache_slots`): always [`referrer_source`]'s
//! answer, cheaper for the few hosts most referrers come from.

use super::referrer_source;

/// The most slots a [`SourceCache`] takes (`PipelineConfig::referrer_cache_slots`).
pub(crate) const MAX_SOURCE_CACHE_SLOTS: usize = 1 << 16;
/// The longest host a [`SourceCache`] keeps; longer ones are looked up every time.
pub(crate) const MAX_CACHED_HOST_LEN: usize = 64;

/// The sources of recently seen referrer hosts, direct-mapped: a few hosts (search
/// engines, social sites) are most referrers, and [`referrer_source`] costs a hash
/// step per byte and a binary search per label, where a hit here costs one
/// comparison. A slot holds the last host that mapped to it; a miss recomputes and
/// replaces it, so the answer is always [`referrer_source`]'s. Its slots are a power
/// of two, each one host of at most [`MAX_CACHED_HOST_LEN`] bytes: with the default
/// 256, 16 KiB of hosts, under 48 KiB with the slots and the strings' spare capacity.
pub(crate) struct SourceCache {
    slots: Vec<(String, Option<&'static str>)>,
    /// `64 - log2(slots)`: `slot_of` keeps the top bits of a product.
    shift: u32,
}

impl SourceCache {
    /// A cache of `slots` slots, rounded up to a power of two and capped at
    /// [`MAX_SOURCE_CACHE_SLOTS`]; 0 caches nothing.
    pub(crate) fn new(slots: usize) -> Self {
        if slots == 0 {
            return SourceCache {
                slots: Vec::new(),
                shift: 0,
            };
        }
        let n = slots.min(MAX_SOURCE_CACHE_SLOTS).next_power_of_two();
        SourceCache {
            slots: vec![(String::new(), None); n],
            shift: 64 - n.trailing_zeros(),
        }
    }

    /// Slots in use.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// [`referrer_source`] of `host`.
    #[inline]
    pub(crate) fn source(&mut self, host: &str) -> Option<&'static str> {
        let b = host.as_bytes();
        // An empty slot holds "", so the empty host is never taken from one.
        if b.is_empty() || b.len() > MAX_CACHED_HOST_LEN || self.slots.is_empty() {
            return referrer_source(host);
        }
        let i = slot_of(b, self.shift);
        let Some(slot) = self.slots.get_mut(i) else {
            return referrer_source(host);
        };
        if crate::short_eq::short_eq(slot.0.as_bytes(), b) {
            return slot.1;
        }
        let source = referrer_source(host);
        slot.0.clear();
        slot.0.push_str(host);
        slot.1 = source;
        source
    }
}

/// The slot of a non-empty host among `2^(64 - shift)`: a multiplicative hash of its
/// length and its first and last 8 bytes (hosts differ at their ends:
/// `www.google.com`, `www.google.de`), of which the top bits are kept.
#[inline]
fn slot_of(b: &[u8], shift: u32) -> usize {
    let (first, last) = match (b.first_chunk::<8>(), b.last_chunk::<8>()) {
        (Some(f), Some(l)) => (u64::from_le_bytes(*f), u64::from_le_bytes(*l)),
        _ => (b.iter().fold(0u64, |h, &c| h << 8 | u64::from(c)), 0),
    };
    let x = (first ^ last.rotate_left(29) ^ b.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // One slot (shift 64) keeps no bits.
    x.checked_shr(shift).unwrap_or(0) as usize
}

#[cfg(test)]
mod tests {
    use super::super::{BRAND_SOURCES, DOMAIN_SOURCES};
    use super::*;

    proptest::proptest! {
        /// Hosts from a small alphabet, so that many repeat and many share a slot.
        #[test]
        fn the_source_cache_answers_like_the_lookup(
            hosts in proptest::collection::vec("[a-z.]{0,3}(google|t|x|bing|reddit)?(\\.[a-z]{1,3}){0,3}", 1..400),
        ) {
            // The default size, the smallest, a rounded-up one, and none.
            for slots in [256, 1, 3, 0] {
                let mut cache = SourceCache::new(slots);
                for h in hosts.iter().chain(&hosts) {
                    proptest::prop_assert_eq!(cache.source(h), referrer_source(h), "{:?}", h);
                }
            }
        }
    }

    #[test]
    fn the_source_cache_size_is_a_capped_power_of_two_and_every_slot_is_reachable() {
        let sizes = [
            (0, 0),
            (1, 1),
            (3, 4),
            (256, 256),
            (usize::MAX, MAX_SOURCE_CACHE_SLOTS),
        ];
        for (asked, got) in sizes {
            assert_eq!(SourceCache::new(asked).slots(), got, "{asked}");
        }
        // With 4 slots, generated hosts land in all of them and never past the end.
        let c = SourceCache::new(4);
        let mut seen = [false; 4];
        for i in 0..200 {
            let h = format!("host{i}.example.com");
            seen[slot_of(h.as_bytes(), c.shift)] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }

    #[test]
    fn the_source_cache_takes_every_known_host_and_long_ones() {
        let mut cache = SourceCache::new(256);
        let long = format!("{}.google.com", "a".repeat(MAX_CACHED_HOST_LEN));
        let mut hosts: Vec<String> = DOMAIN_SOURCES.iter().map(|(d, _)| d.to_string()).collect();
        hosts.extend(BRAND_SOURCES.iter().map(|(b, _)| format!("www.{b}.co.uk")));
        hosts.extend(["", "a", "example.org", "google", long.as_str()].map(String::from));
        for _ in 0..3 {
            for h in &hosts {
                assert_eq!(cache.source(h), referrer_source(h), "{h:?}");
            }
        }
        assert_eq!(cache.source(&long), Some("Google"));
    }
}
