//! Classification of real user agents (copied from browsers, crawlers and tools).

use super::*;

/// (user agent, browser, browser version, os, os version, device, bot)
const CASES: &[(&str, &str, &str, &str, &str, &str, bool)] = &[
    // Chrome
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
     "Chrome", "131.0", "Windows", "10", "desktop", false),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
     "Chrome", "131.0", "macOS", "10.15", "desktop", false),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
     "Chrome", "130.0", "Linux", "", "desktop", false),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
     "Chrome", "131.0", "Android", "10", "mobile", false),
    ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.6668.100 Safari/537.36",
     "Chrome", "129.0", "Android", "13", "tablet", false),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
     "Chrome", "131.0", "iOS", "17.6", "mobile", false),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
     "Chrome", "131.0", "Chrome OS", "", "desktop", false),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/127.0.6533.103 Mobile Safari/537.36",
     "Android WebView", "127.0", "Android", "14", "mobile", false),
    // Firefox
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "Firefox", "133.0", "Windows", "10", "desktop", false),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:132.0) Gecko/20100101 Firefox/132.0",
     "Firefox", "132.0", "macOS", "10.15", "desktop", false),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "Firefox", "133.0", "Linux", "", "desktop", false),
    ("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
     "Firefox", "133.0", "Android", "14", "mobile", false),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/132.0 Mobile/15E148 Safari/605.1.15",
     "Firefox", "132.0", "iOS", "18.1", "mobile", false),
    // Safari
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
     "Safari", "18.1", "macOS", "10.15", "desktop", false),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
     "Safari", "17.6", "iOS", "17.6", "mobile", false),
    ("Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
     "Safari", "17.6", "iPadOS", "17.6", "tablet", false),
    // Edge
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
     "Edge", "131.0", "Windows", "10", "desktop", false),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
     "Edge", "131.0", "macOS", "10.15", "desktop", false),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0",
     "Edge", "131.0", "Android", "10", "mobile", false),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19582",
     "Edge", "18.19582", "Windows", "10", "desktop", false),
    // Opera
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
     "Opera", "115.0", "Windows", "10", "desktop", false),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36 OPR/85.0.0.0",
     "Opera", "85.0", "Android", "10", "mobile", false),
    ("Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.16",
     "Opera", "12.16", "Windows", "7", "desktop", false),
    // Samsung, Yandex, others
    ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
     "Samsung Internet", "26.0", "Android", "14", "mobile", false),
    ("Mozilla/5.0 (Windows NT 6.3; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 YaBrowser/24.6.0.0 Safari/537.36",
     "Yandex Browser", "24.6", "Windows", "8.1", "desktop", false),
    ("Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
     "Internet Explorer", "11.0", "Windows", "7", "desktop", false),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/478.0.0.41.86;FBBV/635112423]",
     "Facebook", "478.0", "iOS", "17.5", "mobile", false),
    // Bots, tools, headless browsers
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "", "", "", "", "", true),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/131.0.6778.69 Safari/537.36",
     "Chrome", "131.0", "", "", "", true),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
     "", "", "", "", "", true),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
     "", "", "", "", "", true),
    ("Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
     "", "", "", "", "", true),
    ("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
     "", "", "", "", "", true),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
     "Safari", "13.1", "macOS", "10.15", "", true),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
     "", "", "", "", "", true),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
     "", "", "", "", "", true),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
     "Chrome", "131.0", "Linux", "", "", true),
    ("curl/8.5.0", "", "", "", "", "", true),
    ("Wget/1.21.4", "", "", "", "", "", true),
    ("python-requests/2.32.3", "", "", "", "", "", true),
    ("Go-http-client/2.0", "", "", "", "", "", true),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "", "", "", "", "", true),
    ("WhatsApp/2.23.20.0", "", "", "", "", "", true),
    ("", "", "", "", "", "", false),
];

#[test]
fn real_user_agents() {
    let mut failures = Vec::new();
    for &(ua, browser, bv, os, ov, device, bot) in CASES {
        let got = classify_user_agent(ua);
        let want = UaInfo {
            browser: browser.into(),
            browser_version: bv.to_owned().into(),
            os: os.into(),
            os_version: ov.to_owned().into(),
            device,
            bot,
        };
        if got != want {
            failures.push(format!("{ua}\n  got  {got:?}\n  want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cache_gives_the_same_answers() {
    let mut cache = UaCache::new(8);
    for _ in 0..3 {
        for &(ua, ..) in CASES {
            assert_eq!(*cache.classify(ua), classify_user_agent(ua), "{ua}");
        }
    }
}

#[test]
fn screen_width_refines_the_device() {
    for (ua_device, width, want) in [
        ("desktop", None, "desktop"),
        ("desktop", Some(0), "desktop"),
        ("desktop", Some(1440), "desktop"),
        ("desktop", Some(TABLET_MAX_WIDTH), "desktop"),
        ("desktop", Some(TABLET_MAX_WIDTH - 1), "tablet"),
        ("desktop", Some(MOBILE_MAX_WIDTH), "tablet"),
        ("desktop", Some(MOBILE_MAX_WIDTH - 1), "mobile"),
        ("mobile", Some(1200), "mobile"),
        ("mobile", None, "mobile"),
        ("tablet", Some(1366), "tablet"),
        ("tablet", Some(360), "mobile"),
        ("", None, ""),
        ("", Some(375), "mobile"),
        ("", Some(768), "tablet"),
        ("", Some(1920), "desktop"),
    ] {
        assert_eq!(
            device_class(ua_device, width),
            want,
            "{ua_device:?} {width:?}"
        );
    }
}

#[test]
fn versions() {
    assert_eq!(version("17_6_1 like", 2), "17.6");
    assert_eq!(version("131.0.6778.73 Mobile", 2), "131.0");
    assert_eq!(version("14; Pixel", 2), "14");
    assert_eq!(version("x", 2), "");
    assert_eq!(version("10.", 2), "10");
    assert_eq!(version("1.2.3", 1), "1");
}

#[test]
fn bot_tokens_are_lowercase() {
    for t in BOT_TOKENS {
        assert_eq!(t.to_ascii_lowercase(), *t);
    }
}
