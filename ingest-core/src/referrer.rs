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
//!   (`google.de`) or of two labels whose first is at most three bytes long, whatever
//!   they are (`google.co.uk`, `yandex.com.tr`, `yahoo.co.jp`), with any subdomains before it
//!   (`search.yahoo.com`, `cn.bing.com`). A brand label further left
//!   (`google.blogspot.com`) does not match.
//!
//! Any other host is its own source (`blog.example.org`).

use std::borrow::Cow;

use crate::normalize::{http_host, http_host_slow, NormalizeConfig};

mod cache;
pub(crate) use cache::SourceCache;

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
        Some(host) if !crate::short_eq::short_eq(host.as_bytes(), page_hostname.as_bytes()) => {
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
    // `brand.tld`, or `brand.xx.tld` with `xx` of at most three bytes (any bytes).
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
mod tests;
