//! Referrer normalization and source tests: fast path against the `url` crate path,
//! the tables, self-referrals and direct traffic.

use super::*;

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
