//! A bounded cache of user-agent classifications.
//!
//! Real traffic repeats a few hundred user agents, so the per-event cost should be a
//! hash and a compare, not a classification. The cache is a two-way set-associative
//! table (each UA can live in one of two slots of its set; a miss replaces the one
//! used less recently): a fixed number of slots allocated up front, no per-entry list
//! to maintain, and memory bounded by the slot count times [`MAX_CACHED_UA_LEN`].

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

use super::{classify_user_agent, UaInfo};

/// User agents longer than this are classified every time, not cached, so a hostile
/// client sending megabyte headers cannot make the cache hold them. Real ones are
/// 100–300 bytes.
pub const MAX_CACHED_UA_LEN: usize = 512;

/// The most entries a [`UaCache`] holds (`PipelineConfig::ua_cache_capacity`): all
/// slots are allocated up front, and real traffic repeats a few hundred agents.
pub(crate) const MAX_UA_CACHE_SLOTS: usize = 1 << 16;

struct Slot {
    hash: u64,
    ua: Box<str>,
    info: UaInfo,
}

/// A bounded user-agent → [`UaInfo`] cache.
///
/// ```
/// let mut cache = ingest_core::UaCache::new(1024);
/// let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
/// assert_eq!(cache.classify(ua).browser, "Firefox");
/// assert_eq!(cache.classify(ua).os, "Linux");
/// assert_eq!(cache.hits(), 1);
/// ```
pub struct UaCache {
    /// `sets * ways` slots; set `s` is `slots[s * ways..][..ways]`.
    slots: Vec<Option<Slot>>,
    /// Per set, the way used most recently (the other one is evicted on a miss).
    recent: Vec<u8>,
    ways: usize,
    /// Where UAs that are not cached (too long, or capacity 0) are classified.
    scratch: UaInfo,
    hits: u64,
    misses: u64,
}

impl UaCache {
    /// A cache of at most `capacity` entries (capped at 65,536, then rounded down to a
    /// power of two; 0 disables caching). All slots are allocated here, none later.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.min(MAX_UA_CACHE_SLOTS);
        let slots = if capacity == 0 {
            0
        } else {
            1usize << capacity.ilog2()
        };
        let ways = slots.min(2);
        let sets = slots.checked_div(ways).unwrap_or(0);
        UaCache {
            slots: (0..slots).map(|_| None).collect(),
            recent: vec![0; sets],
            ways,
            scratch: UaInfo::default(),
            hits: 0,
            misses: 0,
        }
    }

    /// The classification of `ua`, from the cache or computed and cached.
    pub fn classify(&mut self, ua: &str) -> &UaInfo {
        if self.slots.is_empty() || ua.len() > MAX_CACHED_UA_LEN {
            self.misses += 1;
            self.scratch = classify_user_agent(ua);
            return &self.scratch;
        }
        let hash = hash(ua);
        let sets = self.recent.len();
        // `sets` is a power of two: the low bits pick the set.
        let set = (hash as usize) & (sets - 1);
        let base = set * self.ways;
        for way in 0..self.ways {
            if matches!(&self.slots[base + way], Some(s) if s.hash == hash && *s.ua == *ua) {
                self.hits += 1;
                self.recent[set] = way as u8;
                return &self.slots[base + way].as_ref().expect("matched above").info;
            }
        }
        self.misses += 1;
        let way = match (0..self.ways).find(|&w| self.slots[base + w].is_none()) {
            Some(empty) => empty,
            None => (usize::from(self.recent[set]) + 1) % self.ways,
        };
        self.recent[set] = way as u8;
        let slot = self.slots[base + way].insert(Slot {
            hash,
            ua: ua.into(),
            info: classify_user_agent(ua),
        });
        &slot.info
    }

    /// How many entries the cache can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many entries it holds now.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// True when nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Lookups that classified (and, when cacheable, cached) the user agent.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Bytes on the heap held by the cache now (slots, keys, version strings): for
    /// memory accounting and the bound test.
    pub fn heap_bytes(&self) -> usize {
        let owned = |c: &std::borrow::Cow<'static, str>| match c {
            std::borrow::Cow::Owned(s) => s.capacity(),
            std::borrow::Cow::Borrowed(_) => 0,
        };
        let info = |i: &UaInfo| {
            owned(&i.browser) + owned(&i.browser_version) + owned(&i.os) + owned(&i.os_version)
        };
        self.slots.capacity() * std::mem::size_of::<Option<Slot>>()
            + self.recent.capacity()
            + info(&self.scratch)
            + self
                .slots
                .iter()
                .flatten()
                .map(|s| s.ua.len() + info(&s.info))
                .sum::<usize>()
    }
}

impl std::fmt::Debug for UaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UaCache")
            .field("capacity", &self.capacity())
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish_non_exhaustive()
    }
}

/// SipHash-1-3 with a fixed key: `siphasher` is already a dependency (privacy), and
/// the key does not matter because a hit also compares the full string — a collision
/// only costs a miss.
fn hash(ua: &str) -> u64 {
    let mut h = SipHasher13::new_with_keys(0x5ca1_ab1e, 0x0dd_ba11);
    h.write(ua.as_bytes());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ua(i: usize) -> String {
        format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{i}.0.0.0 Safari/537.36")
    }

    #[test]
    fn hits_after_the_first_lookup() {
        let mut cache = UaCache::new(64);
        for round in 0..3 {
            for i in 0..20 {
                let info = cache.classify(&ua(i)).clone();
                assert_eq!(info.browser, "Chrome");
                assert_eq!(info.browser_version, format!("{i}.0"), "round {round}");
            }
        }
        // 20 keys in 32 sets of 2: some may collide three-deep and miss again,
        // most are hits.
        assert!(cache.hits() >= 30, "{cache:?}");
        assert_eq!(cache.hits() + cache.misses(), 60);
    }

    #[test]
    fn capacity_is_a_power_of_two_at_most_the_request() {
        assert_eq!(UaCache::new(0).capacity(), 0);
        assert_eq!(UaCache::new(1).capacity(), 1);
        assert_eq!(UaCache::new(2).capacity(), 2);
        assert_eq!(UaCache::new(1000).capacity(), 512);
        assert_eq!(UaCache::new(1024).capacity(), 1024);
        // A huge request is capped, not an allocation of 2^63 slots.
        assert_eq!(UaCache::new(usize::MAX).capacity(), MAX_UA_CACHE_SLOTS);
        assert_eq!(
            UaCache::new(MAX_UA_CACHE_SLOTS + 1).capacity(),
            MAX_UA_CACHE_SLOTS
        );
        assert_eq!(
            UaCache::new(usize::MAX).classify(&ua(7)).browser_version,
            "7.0"
        );
        // Capacity 0 and 1 still classify correctly.
        for cap in [0, 1] {
            let mut c = UaCache::new(cap);
            assert_eq!(c.classify(&ua(1)).browser_version, "1.0");
            assert_eq!(c.classify(&ua(2)).browser_version, "2.0");
            assert_eq!(c.classify(&ua(1)).browser_version, "1.0");
        }
    }

    #[test]
    fn memory_stays_bounded_under_many_distinct_agents() {
        let capacity = 256;
        let mut cache = UaCache::new(capacity);
        let per_entry = std::mem::size_of::<Option<Slot>>() + MAX_CACHED_UA_LEN + 64;
        let bound = capacity * per_entry + capacity / 2 + 64;
        for i in 0..5_000 {
            let agent = format!("{} {i}{}", ua(i % 300), "x".repeat(i % 600));
            let _ = cache.classify(&agent);
            assert!(cache.len() <= capacity);
            if i % 500 == 0 {
                assert!(
                    cache.heap_bytes() <= bound,
                    "{} > {bound}",
                    cache.heap_bytes()
                );
            }
        }
        assert_eq!(cache.len(), capacity, "a full cache stays full");
        assert!(cache.heap_bytes() <= bound);
    }

    #[test]
    fn agents_at_the_length_limit_are_cached() {
        let mut cache = UaCache::new(16);
        let base = ua(98);
        let at_limit = format!("{base}{}", "x".repeat(MAX_CACHED_UA_LEN - base.len()));
        assert_eq!(at_limit.len(), MAX_CACHED_UA_LEN);
        assert_eq!(cache.classify(&at_limit).browser_version, "98.0");
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.classify(&at_limit).browser_version, "98.0");
        assert_eq!(cache.hits(), 1);
    }

    #[test]
    fn long_agents_are_classified_but_not_cached() {
        let mut cache = UaCache::new(16);
        let base = ua(99);
        let long = format!("{base}{}", "x".repeat(MAX_CACHED_UA_LEN + 1 - base.len()));
        assert_eq!(long.len(), MAX_CACHED_UA_LEN + 1);
        assert_eq!(cache.classify(&long).browser_version, "99.0");
        assert_eq!(cache.classify(&long).browser_version, "99.0");
        assert!(cache.is_empty());
        assert_eq!(cache.misses(), 2);
    }

    #[test]
    fn the_less_recent_way_is_evicted() {
        // Capacity 2: one set of two ways, so every key maps to the same set.
        let mut cache = UaCache::new(2);
        let (a, b, c) = (ua(1), ua(2), ua(3));
        cache.classify(&a);
        cache.classify(&b);
        cache.classify(&a); // a is now the recent one
        cache.classify(&c); // evicts b
        let hits = cache.hits();
        cache.classify(&a);
        assert_eq!(cache.hits(), hits + 1, "a stayed");
        cache.classify(&b);
        assert_eq!(cache.hits(), hits + 1, "b was evicted");
    }
}
