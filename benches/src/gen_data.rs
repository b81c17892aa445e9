//! The tables the generator draws from: real-world user agents with rough 2025–26
//! traffic shares, bots, referrer sources, words for domains and paths.

use crate::gen::Device;

/// A browser user agent and its share of human traffic (relative weight).
#[derive(Debug, Clone, Copy)]
pub struct Ua {
    /// The `User-Agent` header, verbatim from real browsers.
    pub ua: &'static str,
    /// The device it runs on (sets the screen width).
    pub device: Device,
    /// Relative weight.
    pub weight: f64,
}

const fn ua(ua: &'static str, device: Device, weight: f64) -> Ua {
    Ua { ua, device, weight }
}

use Device::{Desktop as D, Mobile as M, Tablet as T};

/// 32 real browser user agents, weighted roughly as web traffic is.
pub const UAS: &[Ua] = &[
    ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", D, 14.0),
    ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36", D, 6.0),
    ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", D, 2.0),
    ua("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", D, 7.0),
    ua("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", D, 1.5),
    ua("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", D, 0.8),
    ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", D, 5.0),
    ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0", D, 1.5),
    ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", D, 3.0),
    ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0", D, 0.8),
    ua("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0", D, 0.8),
    ua("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", D, 0.7),
    ua("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", D, 0.4),
    ua("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", D, 4.0),
    ua("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15", D, 1.0),
    ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0", D, 0.8),
    ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 YaBrowser/24.12.0.0 Safari/537.36", D, 0.5),
    ua("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1.1 Mobile/15E148 Safari/604.1", M, 12.0),
    ua("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", M, 4.0),
    ua("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", M, 2.0),
    ua("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/22B83 [FBAN/FBIOS;FBAV/489.0.0.42.101;FBBV/663413427]", M, 1.0),
    ua("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", M, 14.0),
    ua("Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36", M, 2.0),
    ua("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36", M, 1.0),
    ua("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36", M, 2.5),
    ua("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", M, 0.6),
    ua("Mozilla/5.0 (Linux; Android 13; M2101K6G) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 OPR/86.0.0.0", M, 0.5),
    ua("Mozilla/5.0 (Linux; U; Android 12; en-US; RMX3085 Build/SP1A.210812.016) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/123.0.6312.80 UCBrowser/13.7.0.1320 Mobile Safari/537.36", M, 0.4),
    ua("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0", M, 0.3),
    ua("Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", T, 2.0),
    ua("Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", T, 0.8),
    ua("Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/131.2.1 like Chrome/131.0.6778.85 Safari/537.36", T, 0.2),
];

/// Bots and non-browser clients, picked uniformly for bot visitors.
pub const BOTS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
    "python-requests/2.32.3",
    "curl/8.5.0",
];

/// Desktop screen widths (CSS px).
pub const DESKTOP_WIDTHS: &[u16] = &[1920, 1920, 1920, 1536, 1366, 1440, 2560, 1280, 1680, 1600];
/// Phone screen widths.
pub const MOBILE_WIDTHS: &[u16] = &[390, 393, 412, 414, 360, 375, 430, 384];
/// Tablet screen widths.
pub const TABLET_WIDTHS: &[u16] = &[768, 810, 820, 1024, 800, 834];

/// Search engines (host, whether the referrer carries a query, as some still do).
pub const SEARCH_ENGINES: &[(&str, bool)] = &[
    ("www.google.com", false),
    ("www.google.com", false),
    ("www.google.com", false),
    ("www.google.com", false),
    ("www.google.de", false),
    ("www.google.co.uk", false),
    ("www.bing.com", true),
    ("duckduckgo.com", false),
    ("search.yahoo.com", false),
    ("yandex.ru", false),
    ("www.baidu.com", true),
    ("www.ecosia.org", true),
    ("search.brave.com", true),
];

/// Social networks as they appear in referrers.
pub const SOCIAL: &[&str] = &[
    "t.co",
    "www.facebook.com",
    "l.facebook.com",
    "m.facebook.com",
    "www.linkedin.com",
    "lnkd.in",
    "www.reddit.com",
    "old.reddit.com",
    "www.instagram.com",
    "l.instagram.com",
    "www.youtube.com",
    "www.pinterest.com",
    "mastodon.social",
    "bsky.app",
];

/// Other well-known referrers (with a path).
pub const REFERRER_SITES: &[&str] = &[
    "news.ycombinator.com/",
    "news.ycombinator.com/item?id=41234567",
    "github.com/",
    "github.com/rust-lang/rust/issues/12345",
    "stackoverflow.com/questions/1234567/how-to",
    "en.wikipedia.org/wiki/Web_analytics",
    "medium.com/@someone/a-post-3f2a1b",
    "dev.to/",
    "www.producthunt.com/posts/something",
    "substack.com/",
    "chatgpt.com/",
    "www.perplexity.ai/",
];

/// `utm_source` values.
pub const UTM_SOURCES: &[&str] = &[
    "google",
    "newsletter",
    "twitter",
    "facebook",
    "linkedin",
    "reddit",
    "bing",
    "partner",
    "producthunt",
    "hn",
];
/// `utm_medium` values.
pub const UTM_MEDIUMS: &[&str] = &[
    "cpc",
    "email",
    "social",
    "referral",
    "display",
    "organic",
    "affiliate",
];
/// `utm_content` values.
pub const UTM_CONTENTS: &[&str] = &["hero", "footer", "sidebar", "banner-a", "banner-b"];
/// `utm_campaign` values.
pub const CAMPAIGNS: &[&str] = &[
    "black_friday_2026",
    "spring-launch",
    "weekly-digest",
    "retargeting",
    "brand",
    "webinar_nov",
    "free-trial",
    "q4-promo",
];

/// Custom event names.
pub const CUSTOM_EVENTS: &[&str] = &[
    "Signup",
    "Outbound Link: Click",
    "File Download",
    "Purchase",
    "404",
    "Form: Submission",
];

/// Prop sets: each a list of (key, possible values).
pub const PROP_SETS: &[&[(&str, &[&str])]] = &[
    &[("plan", &["free", "pro", "business", "enterprise"])],
    &[
        ("author", &["alice", "bob", "carol", "dave", "erin"]),
        ("category", &["news", "howto", "release"]),
    ],
    &[("variant", &["A", "B"]), ("logged_in", &["true", "false"])],
    &[(
        "url",
        &["https://example.org/out", "https://docs.example.net/x"],
    )],
    &[("method", &["google", "email", "github"])],
];

/// Words for domains.
pub const BRANDS: &[&str] = &[
    "acme", "nova", "blue", "bright", "cloud", "data", "pixel", "swift", "green", "north", "urban",
    "alpha", "vivid", "metro", "solar", "quant", "hyper", "true", "open", "smart",
];

/// Words for paths and domains.
pub const PATH_WORDS: &[&str] = &[
    "analytics",
    "guide",
    "release",
    "pricing",
    "rust",
    "privacy",
    "garden",
    "coffee",
    "travel",
    "recipes",
    "shoes",
    "laptop",
    "review",
    "tutorial",
    "news",
    "update",
    "design",
    "cloud",
    "security",
    "startup",
    "marketing",
    "python",
    "kitchen",
    "bike",
    "camera",
    "music",
    "health",
    "finance",
    "tips",
    "beginners",
    "advanced",
    "faq",
    "install",
    "api",
    "changelog",
    "roadmap",
    "team",
    "careers",
    "story",
    "events",
];

/// Top-level domains.
pub const TLDS: &[&str] = &[
    "com", "com", "com", "io", "de", "co.uk", "net", "org", "dev", "fr", "app",
];
