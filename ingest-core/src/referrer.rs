//! Referrers: the host an event came from and its *source*, a readable name for
//! well-known hosts.
//!
//! The host is normalized like a page hostname (lowercase, punycode, no trailing dot,
//! `www.` per [`NormalizeConfig::strip_www`]) by the same fast path / `url` crate pair
//! as [`crate::normalize_url`]. An empty or unparseable referrer, one that is not
//! `http`/`https` (`android-app://…`, `about:blank`), and a self-referral (its host
//! equals the page's hostname) are *direct*: host and source both empty.
//!
//! The source comes from two tables (kept sorted for readers; a test checks it, and
//! the lookup uses hash indexes built from them at compile time):
//!
//! - [`DOMAIN_SOURCES`]: a host equal to the domain or a subdomain of it (`t.co`,
//!   `news.ycombinator.com`, `l.facebook.com` under `facebook.com`…). The longest
//!   matching domain wins, so `gemini.google.com` is Gemini, not Google.
//! - [`BRAND_SOURCES`]: a brand label followed by a public-suffix-like tail of one label
//!   (`google.de`) or of two labels whose first is at most three letters
//!   (`google.co.uk`, `yandex.com.tr`, `yahoo.co.jp`), with any subdomains before it
//!   (`search.yahoo.com`, `cn.bing.com`). A brand label further left
//!   (`google.blogspot.com`) does not match.
//!
//! Any other host is its own source (`blog.example.org`).

use std::borrow::Cow;

use crate::normalize::{http_host, http_host_slow, NormalizeConfig};

/// Where an event came from. Both fields are empty for direct traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Referrer<'a> {
    /// The referring host, normalized like a page hostname.
    pub host: Cow<'a, str>,
    /// A readable source name from the tables ("Google", "Hacker News"), else the host.
    pub source: Cow<'a, str>,
}

/// Known referrer domains: `(domain, source)`, matching the domain and its subdomains.
/// Sorted by domain.
pub const DOMAIN_SOURCES: &[(&str, &str)] = &[
    ("bsky.app", "Bluesky"),
    ("chat.openai.com", "ChatGPT"),
    ("chatgpt.com", "ChatGPT"),
    ("claude.ai", "Claude"),
    ("copilot.microsoft.com", "Copilot"),
    ("discord.com", "Discord"),
    ("fb.me", "Facebook"),
    ("gemini.google.com", "Gemini"),
    ("github.com", "GitHub"),
    ("gitlab.com", "GitLab"),
    ("kagi.com", "Kagi"),
    ("lnkd.in", "LinkedIn"),
    ("lobste.rs", "Lobsters"),
    ("mail.google.com", "Gmail"),
    ("mastodon.social", "Mastodon"),
    ("medium.com", "Medium"),
    ("mstdn.social", "Mastodon"),
    ("news.google.com", "Google News"),
    ("news.ycombinator.com", "Hacker News"),
    ("outlook.live.com", "Outlook"),
    ("perplexity.ai", "Perplexity"),
    ("pin.it", "Pinterest"),
    ("producthunt.com", "Product Hunt"),
    ("quora.com", "Quora"),
    ("search.brave.com", "Brave Search"),
    ("slack.com", "Slack"),
    ("stackoverflow.com", "Stack Overflow"),
    ("startpage.com", "Startpage"),
    ("substack.com", "Substack"),
    ("t.co", "Twitter"),
    ("t.me", "Telegram"),
    ("threads.net", "Threads"),
    ("twitter.com", "Twitter"),
    ("vk.com", "VK"),
    ("wikipedia.org", "Wikipedia"),
    ("x.com", "Twitter"),
    ("ya.ru", "Yandex"),
    ("youtu.be", "YouTube"),
];

/// Known brands: `(label, source)`, matching `label.<tld>` and `label.<xx>.<tld>` with
/// any subdomains (see the module docs). Sorted by label.
pub const BRAND_SOURCES: &[(&str, &str)] = &[
    ("baidu", "Baidu"),
    ("bing", "Bing"),
    ("duckduckgo", "DuckDuckGo"),
    ("ecosia", "Ecosia"),
    ("facebook", "Facebook"),
    ("google", "Google"),
    ("instagram", "Instagram"),
    ("linkedin", "LinkedIn"),
    ("naver", "Naver"),
    ("pinterest", "Pinterest"),
    ("qwant", "Qwant"),
    ("reddit", "Reddit"),
    ("seznam", "Seznam"),
    ("tiktok", "TikTok"),
    ("yahoo", "Yahoo!"),
    ("yandex", "Yandex"),
    ("youtube", "YouTube"),
];

/// Normalizes a referrer URL against the page's (already normalized) hostname.
///
/// ```
/// use ingest_core::{normalize_referrer, NormalizeConfig};
/// let cfg = NormalizeConfig::default();
/// let r = normalize_referrer("https://www.google.co.uk/search?q=x", "example.com", &cfg);
/// assert_eq!((&*r.host, &*r.source), ("google.co.uk", "Google"));
/// let own = normalize_referrer("https://www.example.com/prev", "example.com", &cfg);
/// assert_eq!((&*own.host, &*own.source), ("", ""));
/// ```
pub fn normalize_referrer<'a>(
    referrer: &'a str,
    page_hostname: &str,
    cfg: &NormalizeConfig,
) -> Referrer<'a> {
    if referrer.is_empty() {
        return Referrer::default();
    }
    with_source(http_host(referrer, cfg), page_hostname)
}

/// [`normalize_referrer`] with the `url` crate only (the reference for tests and benches).
pub fn normalize_referrer_slow<'a>(
    referrer: &'a str,
    page_hostname: &str,
    cfg: &NormalizeConfig,
) -> Referrer<'a> {
    with_source(http_host_slow(referrer, cfg), page_hostname)
}

/// [`normalize_referrer`] with the sources of recent hosts remembered in `cache`.
#[inline]
pub(crate) fn normalize_referrer_cached<'a>(
    referrer: &'a str,
    page_hostname: &str,
    cfg: &NormalizeConfig,
    cache: &mut SourceCache,
) -> Referrer<'a> {
    if referrer.is_empty() {
        return Referrer::default();
    }
    with_source_by(http_host(referrer, cfg), page_hostname, |h| cache.source(h))
}

fn with_source<'a>(host: Option<Cow<'a, str>>, page_hostname: &str) -> Referrer<'a> {
    with_source_by(host, page_hostname, referrer_source)
}

#[inline]
fn with_source_by<'a>(
    host: Option<Cow<'a, str>>,
    page_hostname: &str,
    source_of: impl FnOnce(&str) -> Option<&'static str>,
) -> Referrer<'a> {
    match host {
        Some(host) if host != page_hostname => {
            let source = match source_of(&host) {
                Some(name) => Cow::Borrowed(name),
                None => host.clone(),
            };
            Referrer { host, source }
        }
        _ => Referrer::default(),
    }
}

/// The source name of a normalized referrer host, if it is a well-known one.
///
/// ```
/// assert_eq!(ingest_core::referrer_source("old.reddit.com"), Some("Reddit"));
/// assert_eq!(ingest_core::referrer_source("blog.example.org"), None);
/// ```
pub fn referrer_source(host: &str) -> Option<&'static str> {
    // One right-to-left pass hashes every suffix that starts at a label boundary
    // (`a.b.c`, `b.c`, `c`); each is looked up by hash, then compared. This runs for
    // most events, so it avoids string comparisons in a binary search.
    let bytes = host.as_bytes();
    let mut hash = FNV_OFFSET;
    let mut found = None;
    // The dots that end the second and third labels from the right, for brands.
    let mut dots = [None; 2];
    for i in (0..bytes.len()).rev() {
        hash = fnv_step(hash, bytes[i]);
        if i == 0 || bytes[i - 1] == b'.' {
            // Later (longer) matches overwrite earlier ones: the longest domain wins.
            if let Some(name) = lookup(&DOMAIN_INDEX, DOMAIN_SOURCES, &host[i..], hash) {
                found = Some(name);
            }
        }
        if bytes[i] == b'.' {
            match dots {
                [None, _] => dots[0] = Some(i),
                [Some(_), None] => dots[1] = Some(i),
                _ => {}
            }
        }
    }
    if found.is_some() {
        return found;
    }
    // `brand.tld`, or `brand.xx.tld` with `xx` of at most three letters.
    let tld_dot = dots[0]?;
    let second_start = dots[1].map_or(0, |d| d + 1);
    let second = &host[second_start..tld_dot];
    if let Some(name) = brand(second) {
        return Some(name);
    }
    let second_dot = dots[1]?;
    if second.len() > 3 {
        return None;
    }
    let third_start = host[..second_dot].rfind('.').map_or(0, |d| d + 1);
    brand(&host[third_start..second_dot])
}

fn brand(label: &str) -> Option<&'static str> {
    lookup(
        &BRAND_INDEX,
        BRAND_SOURCES,
        label,
        fnv_rev(label.as_bytes()),
    )
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

const fn fnv_step(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3)
}

/// FNV-1a over the bytes from last to first, matching the lookup's right-to-left pass.
const fn fnv_rev(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        hash = fnv_step(hash, bytes[i]);
    }
    hash
}

/// `(hash of key, position in table)`, sorted by hash, built at compile time.
const fn index<const N: usize>(table: &[(&str, &str)]) -> [(u64, usize); N] {
    let mut out = [(0u64, 0usize); N];
    let mut i = 0;
    while i < N {
        out[i] = (fnv_rev(table[i].0.as_bytes()), i);
        i += 1;
    }
    let mut i = 1;
    while i < N {
        let mut j = i;
        while j > 0 && out[j - 1].0 > out[j].0 {
            let t = out[j - 1];
            out[j - 1] = out[j];
            out[j] = t;
            j -= 1;
        }
        i += 1;
    }
    out
}

static DOMAIN_INDEX: [(u64, usize); DOMAIN_SOURCES.len()] = index(DOMAIN_SOURCES);
static BRAND_INDEX: [(u64, usize); BRAND_SOURCES.len()] = index(BRAND_SOURCES);

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
        if slot.0.as_bytes() == b {
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

fn lookup(
    index: &[(u64, usize)],
    table: &[(&str, &'static str)],
    key: &str,
    hash: u64,
) -> Option<&'static str> {
    let at = index.binary_search_by_key(&hash, |&(h, _)| h).ok()?;
    let (name, source) = table[index[at].1];
    (name == key).then_some(source)
}

#[cfg(test)]
mod tests {
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

    fn pair(referrer: &str, page: &str) -> (String, String) {
        let cfg = NormalizeConfig::default();
        let fast = normalize_referrer(referrer, page, &cfg);
        let slow = normalize_referrer_slow(referrer, page, &cfg);
        assert_eq!(fast, slow, "fast and slow differ for {referrer:?}");
        (fast.host.into_owned(), fast.source.into_owned())
    }

    fn hs(host: &str, source: &str) -> (String, String) {
        (host.to_owned(), source.to_owned())
    }

    #[test]
    fn hash_indexes_have_no_collisions() {
        for index in [&DOMAIN_INDEX[..], &BRAND_INDEX[..]] {
            for w in index.windows(2) {
                assert!(w[0].0 < w[1].0, "hash collision or unsorted index");
            }
        }
        for (domain, source) in DOMAIN_SOURCES {
            assert_eq!(referrer_source(domain), Some(*source), "{domain}");
            assert_eq!(
                referrer_source(&format!("sub.{domain}")),
                Some(*source),
                "{domain}"
            );
        }
        for (brand, source) in BRAND_SOURCES {
            assert_eq!(
                referrer_source(&format!("www.{brand}.com")),
                Some(*source),
                "{brand}"
            );
        }
    }

    #[test]
    fn tables_are_sorted_and_unique() {
        for table in [DOMAIN_SOURCES, BRAND_SOURCES] {
            for w in table.windows(2) {
                assert!(
                    w[0].0 < w[1].0,
                    "{:?} must sort before {:?}",
                    w[0].0,
                    w[1].0
                );
            }
            for (key, name) in table {
                assert_eq!(key.to_ascii_lowercase(), *key);
                assert!(!name.is_empty());
            }
        }
    }

    #[test]
    fn search_engines_with_country_domains() {
        let page = "example.com";
        assert_eq!(
            pair("https://www.google.com/", page),
            hs("google.com", "Google")
        );
        assert_eq!(
            pair("https://www.google.co.uk/url?q=x", page),
            hs("google.co.uk", "Google")
        );
        assert_eq!(pair("https://google.de/", page), hs("google.de", "Google"));
        assert_eq!(
            pair("https://www.google.com.br/", page),
            hs("google.com.br", "Google")
        );
        assert_eq!(
            pair("https://cn.bing.com/search", page),
            hs("cn.bing.com", "Bing")
        );
        assert_eq!(
            pair("https://duckduckgo.com/", page),
            hs("duckduckgo.com", "DuckDuckGo")
        );
        assert_eq!(
            pair("https://search.yahoo.co.jp/", page),
            hs("search.yahoo.co.jp", "Yahoo!")
        );
        assert_eq!(
            pair("https://yandex.com.tr/", page),
            hs("yandex.com.tr", "Yandex")
        );
        assert_eq!(pair("https://ya.ru/", page), hs("ya.ru", "Yandex"));
        assert_eq!(
            pair("https://www.baidu.com/link", page),
            hs("baidu.com", "Baidu")
        );
        assert_eq!(
            pair("https://www.ecosia.org/", page),
            hs("ecosia.org", "Ecosia")
        );
        assert_eq!(
            pair("https://search.brave.com/", page),
            hs("search.brave.com", "Brave Search")
        );
    }

    #[test]
    fn social_and_communities() {
        let page = "example.com";
        assert_eq!(pair("https://t.co/abc", page), hs("t.co", "Twitter"));
        assert_eq!(pair("https://x.com/someone", page), hs("x.com", "Twitter"));
        assert_eq!(pair("https://lnkd.in/xyz", page), hs("lnkd.in", "LinkedIn"));
        assert_eq!(
            pair("https://www.linkedin.com/feed", page),
            hs("linkedin.com", "LinkedIn")
        );
        assert_eq!(
            pair("https://l.facebook.com/l.php", page),
            hs("l.facebook.com", "Facebook")
        );
        assert_eq!(
            pair("https://m.facebook.com/", page),
            hs("m.facebook.com", "Facebook")
        );
        assert_eq!(
            pair("https://old.reddit.com/r/rust", page),
            hs("old.reddit.com", "Reddit")
        );
        assert_eq!(
            pair("https://news.ycombinator.com/item?id=1", page),
            hs("news.ycombinator.com", "Hacker News")
        );
        assert_eq!(
            pair("https://github.com/a/b", page),
            hs("github.com", "GitHub")
        );
        assert_eq!(
            pair("https://m.youtube.com/watch", page),
            hs("m.youtube.com", "YouTube")
        );
        assert_eq!(pair("https://youtu.be/x", page), hs("youtu.be", "YouTube"));
        assert_eq!(
            pair("https://chatgpt.com/", page),
            hs("chatgpt.com", "ChatGPT")
        );
        assert_eq!(
            pair("https://www.perplexity.ai/", page),
            hs("perplexity.ai", "Perplexity")
        );
        assert_eq!(
            pair("https://gemini.google.com/app", page),
            hs("gemini.google.com", "Gemini")
        );
        assert_eq!(
            pair("https://mastodon.social/@a", page),
            hs("mastodon.social", "Mastodon")
        );
        assert_eq!(
            pair("https://en.wikipedia.org/wiki/X", page),
            hs("en.wikipedia.org", "Wikipedia")
        );
    }

    #[test]
    fn unknown_hosts_are_their_own_source() {
        let page = "example.com";
        assert_eq!(
            pair("https://Blog.Example.org/post", page),
            hs("blog.example.org", "blog.example.org")
        );
        assert_eq!(
            pair("https://google.blogspot.com/", page),
            hs("google.blogspot.com", "google.blogspot.com")
        );
        assert_eq!(
            pair("https://facebook.github.io/react", page),
            hs("facebook.github.io", "facebook.github.io")
        );
        assert_eq!(
            pair("https://notgithub.com/", page),
            hs("notgithub.com", "notgithub.com")
        );
        assert_eq!(
            pair("https://googleusercontent.com/", page),
            hs("googleusercontent.com", "googleusercontent.com")
        );
        assert_eq!(
            pair("http://localhost:3000/", page),
            hs("localhost", "localhost")
        );
        assert_eq!(
            pair("https://bücher.de/", page),
            hs("xn--bcher-kva.de", "xn--bcher-kva.de")
        );
    }

    #[test]
    fn direct_traffic_and_self_referrals_are_empty() {
        let page = "example.com";
        for r in [
            "",
            "not a url",
            "/relative",
            "android-app://com.google.android.gm/",
            "about:blank",
            "https://example.com/previous",
            "https://www.example.com/previous",
            "HTTPS://EXAMPLE.COM./",
        ] {
            assert_eq!(pair(r, page), hs("", ""), "{r:?}");
        }
        // A sub-domain of the site is another host, kept.
        assert_eq!(
            pair("https://docs.example.com/", page),
            hs("docs.example.com", "docs.example.com")
        );
        // With www kept, www.example.com is not example.com.
        let keep = NormalizeConfig { strip_www: false };
        let r = normalize_referrer("https://www.example.com/", "example.com", &keep);
        assert_eq!(r.host, "www.example.com");
    }

    #[test]
    fn ordinary_referrers_borrow() {
        let r = normalize_referrer(
            "https://blog.example.org/x",
            "example.com",
            &NormalizeConfig::default(),
        );
        assert!(matches!(r.host, Cow::Borrowed(_)));
        assert!(matches!(r.source, Cow::Borrowed(_)));
    }
}
