//! Privacy: the daily salt, the visitor id, the rate-limit key of a client, event ids.
//!
//! No IP address and no raw user agent is ever stored. A visitor is a keyed 64-bit hash
//! of (site, client IP, user agent) under a salt that changes every UTC day, so the same
//! person is one visitor within a day and cannot be followed across days — and since
//! the salt is *derived* (HMAC-SHA256 of a secret and the date) rather than random,
//! every edge isolate and every sink instance compute the same id without talking to
//! each other. The caller passes the secret and the time; nothing here reads a clock.
//!
//! Hashes are SipHash-2-4 (`siphasher`), a keyed PRF built for short inputs; HMAC and
//! SHA-256 come from the RustCrypto `hmac` and `sha2` crates (pure Rust, wasm-safe).

use std::fmt;
use std::hash::Hasher;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use siphasher::sip::SipHasher24;
use siphasher::sip128::SipHasher24 as SipHasher128;

/// Milliseconds in a UTC day (no leap seconds in Unix time).
pub const DAY_MS: i64 = 86_400_000;

/// A 128-bit SipHash key valid for one UTC day, derived from a secret.
///
/// Derive it once per day (it costs an HMAC) and reuse it for every event of that day;
/// [`DailySalt::day`] tells which day it is for.
///
/// ```
/// use ingest_core::{visitor_id, DailySalt, DAY_MS};
/// let noon = 1_700_000_000_000; // 2023-11-14T22:13:20Z
/// let salt = DailySalt::derive(b"secret", noon);
/// assert_eq!(salt.date(), "2023-11-14");
/// let a = visitor_id(&salt, "example.com", "203.0.113.7", "Mozilla/5.0 ...");
/// let b = visitor_id(&DailySalt::derive(b"secret", noon + 3_600_000), "example.com", "203.0.113.7", "Mozilla/5.0 ...");
/// assert_eq!(a, b); // same UTC day
/// let c = visitor_id(&DailySalt::derive(b"secret", noon + DAY_MS), "example.com", "203.0.113.7", "Mozilla/5.0 ...");
/// assert_ne!(a, c); // next day
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DailySalt {
    key: [u8; 16],
    day: i64,
}

impl DailySalt {
    /// The salt of the UTC date that contains `unix_ms`: the first 128 bits of
    /// HMAC-SHA256(`secret`, `"YYYY-MM-DD"`).
    pub fn derive(secret: &[u8], unix_ms: i64) -> Self {
        let day = day_of(unix_ms);
        // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
        mac.update(date_string(day).as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        DailySalt { key, day }
    }

    /// The day this salt is for, in days since 1970-01-01 (UTC).
    pub fn day(&self) -> i64 {
        self.day
    }

    /// True when `unix_ms` falls on this salt's UTC day (so it can be reused).
    pub fn is_for(&self, unix_ms: i64) -> bool {
        day_of(unix_ms) == self.day
    }

    /// The UTC date this salt is for, `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        date_string(self.day)
    }

    fn hasher(&self) -> SipHasher24 {
        SipHasher24::new_with_key(&self.key)
    }
}

impl fmt::Debug for DailySalt {
    // The key is a secret: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DailySalt")
            .field("date", &self.date())
            .finish_non_exhaustive()
    }
}

/// The visitor id: SipHash-2-4 under the daily salt of `client_ip, 0xff, user_agent,
/// 0xff, site`. `0xff` never occurs in UTF-8, so the fields cannot run into each other.
///
/// The site comes last so that one client's hash state can be reused for every site
/// it sends events for ([`VisitorHasher`]): the IP and the user agent (~120 bytes)
/// are absorbed once per request, and each site costs a copy of the state, a block or
/// two and the finalization. Changing this order (or anything hashed) changes every
/// id: since the salt rotates daily, ids are only ever compared within one UTC day,
/// so such a change splits the visitors of the day it is deployed on, and the edge
/// and the sinks must hash the same way (run the same ingest-core).
pub fn visitor_id(salt: &DailySalt, site: &str, client_ip: &str, user_agent: &str) -> u64 {
    VisitorHasher::new(salt, client_ip, user_agent).visitor_id(site)
}

/// [`visitor_id`] of one client for any number of sites: the SipHash state after
/// `client_ip, 0xff, user_agent, 0xff`.
///
/// ```
/// use ingest_core::{visitor_id, DailySalt, VisitorHasher};
/// let salt = DailySalt::derive(b"secret", 0);
/// let client = VisitorHasher::new(&salt, "203.0.113.7", "Mozilla/5.0 ...");
/// for site in ["example.com", "example.org"] {
///     assert_eq!(client.visitor_id(site), visitor_id(&salt, site, "203.0.113.7", "Mozilla/5.0 ..."));
/// }
/// ```
#[derive(Clone)]
pub struct VisitorHasher {
    client: SipHasher24,
}

impl VisitorHasher {
    /// The state of one client under `salt`.
    pub fn new(salt: &DailySalt, client_ip: &str, user_agent: &str) -> Self {
        let mut client = salt.hasher();
        client.write(client_ip.as_bytes());
        client.write(&[0xff]);
        client.write(user_agent.as_bytes());
        client.write(&[0xff]);
        VisitorHasher { client }
    }

    /// The visitor id of this client on `site`.
    #[inline]
    pub fn visitor_id(&self, site: &str) -> u64 {
        let mut h = self.client;
        h.write(site.as_bytes());
        h.finish()
    }
}

impl fmt::Debug for VisitorHasher {
    // The state is keyed by the salt and derived from the IP: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VisitorHasher").finish_non_exhaustive()
    }
}

/// The rate-limit key of a client: a keyed hash of its IP under the daily salt, with a
/// domain separator so it never equals a [`visitor_id`] input. The limiter never sees
/// the IP itself.
pub fn client_key(salt: &DailySalt, client_ip: &str) -> u64 {
    let mut h = salt.hasher();
    h.write(b"client-key");
    h.write_u8(0xff);
    h.write(client_ip.as_bytes());
    h.finish()
}

/// The id of the `index`-th event of a request whose `seed` the caller drew (at random,
/// or derived from a request id so a retry gets the same ids).
///
/// Deterministic, and distinct for distinct indexes of one seed *by construction*: the
/// first 12 bytes are SipHash-128 of the seed (keyed by it), the last 4 are the index
/// XOR a seed-derived mask. Bits are set to make it an RFC 9562 UUID version 8, as
/// ClickHouse's `UUID` column and tools that print UUIDs expect.
pub fn event_id(seed: &[u8; 16], index: u32) -> [u8; 16] {
    EventIds::new(seed).get(index)
}

/// [`event_id`] of one seed for many indexes: the SipHash-128 of the seed is the same
/// for every event of a request, so it is computed once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventIds {
    /// The hash with the version and variant bits set; the last 4 bytes are the mask.
    base: [u8; 16],
    mask: u32,
}

impl EventIds {
    pub(crate) fn new(seed: &[u8; 16]) -> Self {
        let mut base = SipHasher128::new_with_key(seed)
            .hash(b"event-id")
            .as_bytes();
        let mask = u32::from_be_bytes([base[12], base[13], base[14], base[15]]);
        base[6] = (base[6] & 0x0f) | 0x80; // version 8
        base[8] = (base[8] & 0x3f) | 0x80; // variant 10
        EventIds { base, mask }
    }

    pub(crate) fn get(&self, index: u32) -> [u8; 16] {
        let mut id = self.base;
        id[12..].copy_from_slice(&(index ^ self.mask).to_be_bytes());
        id
    }
}

/// Days since 1970-01-01 of the UTC day containing `unix_ms` (floor, also before 1970).
pub fn day_of(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(DAY_MS)
}

/// `YYYY-MM-DD` of a day number. Years outside 0..=9999 get a sign and more digits
/// (ISO 8601 expanded form), which no real clock gives but must not panic.
pub(crate) fn date_string(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    if (0..=9999).contains(&y) {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        format!("{y:+05}-{m:02}-{d:02}")
    }
}

/// Gregorian (year, month, day) of a day number: Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html>), valid for the whole `i64`
/// range of `day_of`. Hand-written because it is ten lines and chrono would pull a
/// time-zone stack into the wasm build for one date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(days: i64) -> i64 {
        days * DAY_MS
    }

    #[test]
    fn known_dates() {
        for (day, want) in [
            (0, "1970-01-01"),
            (-1, "1969-12-31"),
            (-719_468, "0000-03-01"),
            (-719_469, "0000-02-29"), // year 0 is a leap year
            (-719_529, "-0001-12-31"),
            (10_957, "2000-01-01"),
            (11_016, "2000-02-29"), // divisible by 400: leap
            (11_017, "2000-03-01"),
            (19_782, "2024-02-29"),
            (19_783, "2024-03-01"),
            (47_540, "2100-02-28"), // divisible by 100: not leap
            (47_541, "2100-03-01"),
            (2_932_896, "9999-12-31"),
            (2_932_897, "+10000-01-01"),
        ] {
            assert_eq!(date_string(day), want, "day {day}");
        }
        assert_eq!(day_of(1_700_000_000_000), 19_675);
        assert_eq!(date_string(19_675), "2023-11-14");
        assert_eq!(day_of(-1), -1, "one ms before the epoch is 1969-12-31");
        assert_eq!(day_of(ms(1) - 1), 0);
        assert_eq!(day_of(ms(1)), 1);
    }

    #[test]
    fn extreme_times_do_not_panic() {
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
            let salt = DailySalt::derive(b"s", t);
            assert!(salt.is_for(t));
            assert!(!salt.date().is_empty());
        }
    }

    #[test]
    fn salt_rotates_at_utc_midnight() {
        let secret = b"wrangler secret";
        let day = 19_675;
        let start = DailySalt::derive(secret, ms(day));
        let end = DailySalt::derive(secret, ms(day + 1) - 1);
        let next = DailySalt::derive(secret, ms(day + 1));
        assert_eq!(start, end);
        assert_ne!(start, next);
        assert_eq!(start.day(), day);
        assert_eq!(next.day(), day + 1);
        assert!(start.is_for(ms(day) + 12 * 3_600_000));
        assert!(!start.is_for(ms(day + 1)));
        let id = |s: &DailySalt| visitor_id(s, "example.com", "198.51.100.4", "UA");
        assert_eq!(id(&start), id(&end));
        assert_ne!(id(&start), id(&next));
        // Another secret: another salt.
        assert_ne!(DailySalt::derive(b"other", ms(day)), start);
        // HMAC-SHA256("key", "2023-11-14")'s first bytes, computed independently
        // (python3: hmac.new(b"key", b"2023-11-14", "sha256")), pin the derivation.
        let pinned = DailySalt::derive(b"key", ms(day));
        assert_eq!(hex(&pinned.key), "415a2a75c2060d3a9967ab9d85eb9c25");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let salt = DailySalt::derive(b"key", ms(19_675));
        let shown = format!("{salt:?}");
        assert!(shown.contains("2023-11-14"), "{shown}");
        assert!(!shown.contains(&hex(&salt.key)[..8]));
    }

    #[test]
    fn visitor_id_is_siphash_of_the_joined_fields_at_any_length() {
        let salt = DailySalt::derive(b"k", 0);
        for ua_len in [0, 1, 6, 7, 8, 10, 300, 2000] {
            let ua = "u".repeat(ua_len);
            let client = VisitorHasher::new(&salt, "10.0.0.1", &ua);
            for site in ["", "s", "site", "a-longer-site.example.com"] {
                let joined = [
                    b"10.0.0.1".as_slice(),
                    &[0xff],
                    ua.as_bytes(),
                    &[0xff],
                    site.as_bytes(),
                ]
                .concat();
                let want = salt.hasher().hash(&joined);
                assert_eq!(
                    visitor_id(&salt, site, "10.0.0.1", &ua),
                    want,
                    "ua of {ua_len} bytes"
                );
                assert_eq!(client.visitor_id(site), want, "ua of {ua_len} bytes");
            }
        }
    }

    #[test]
    fn visitor_id_fields_do_not_run_into_each_other() {
        let salt = DailySalt::derive(b"k", 0);
        assert_ne!(
            visitor_id(&salt, "ab", "c", "d"),
            visitor_id(&salt, "a", "bc", "d")
        );
        assert_ne!(
            visitor_id(&salt, "a", "bc", "d"),
            visitor_id(&salt, "a", "b", "cd")
        );
        assert_ne!(
            visitor_id(&salt, "a", "b", "c"),
            visitor_id(&salt, "a", "b", "C")
        );
        assert_ne!(client_key(&salt, "1.2.3.4"), client_key(&salt, "1.2.3.5"));
        assert_eq!(client_key(&salt, "1.2.3.4"), client_key(&salt, "1.2.3.4"));
        let next = DailySalt::derive(b"k", DAY_MS);
        assert_ne!(client_key(&salt, "1.2.3.4"), client_key(&next, "1.2.3.4"));
    }

    #[test]
    fn event_ids_are_uuid_v8_and_distinct() {
        let seed = [7u8; 16];
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            let id = event_id(&seed, i);
            assert_eq!(id, event_id(&seed, i), "deterministic");
            assert_eq!(id[6] >> 4, 8, "version 8");
            assert_eq!(id[8] >> 6, 0b10, "RFC 9562 variant");
            assert!(seen.insert(id));
        }
        assert_ne!(event_id(&[1; 16], 0), event_id(&[2; 16], 0));
    }

    proptest! {
        #[test]
        fn same_day_same_salt(t in -(1i64 << 50)..(1i64 << 50), dt in 0i64..DAY_MS) {
            let start = day_of(t) * DAY_MS;
            prop_assert_eq!(DailySalt::derive(b"s", t), DailySalt::derive(b"s", start + dt));
            prop_assert_ne!(DailySalt::derive(b"s", t), DailySalt::derive(b"s", start + DAY_MS + dt));
        }

        #[test]
        fn civil_dates_are_consecutive(day in -(1i64 << 40)..(1i64 << 40)) {
            let (y0, m0, d0) = civil_from_days(day);
            let (y1, m1, d1) = civil_from_days(day + 1);
            prop_assert!((1..=12).contains(&m0) && (1..=31).contains(&d0));
            let next_in_month = (y1, m1, d1) == (y0, m0, d0 + 1);
            let next_month = d1 == 1 && ((y1, m1) == (y0, m0 + 1) || (y1, m1, m0) == (y0 + 1, 1, 12));
            prop_assert!(next_in_month || next_month, "{:?} -> {:?}", (y0, m0, d0), (y1, m1, d1));
        }
    }
}
