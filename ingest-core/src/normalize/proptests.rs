//! The fast path must give exactly what the `url` crate gives, on every input.
//!
//! URLs are generated from pieces, each drawn from ordinary values and from the classes
//! where a hand-written splitter and the WHATWG parser part ways (shared/BASELINES.md):
//! dot segments, spaces and non-ASCII, IDN and punycode hosts, IPv4 numbers, IPv6 with
//! ports, backslashes, whitespace around and inside, userinfo, odd ports and schemes.

use proptest::prelude::*;

use super::fast;
use super::*;

fn scheme() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("https://".to_owned()),
        4 => Just("http://".to_owned()),
        1 => prop::sample::select(vec![
            "HTTP://", "hTtPs://", "http:/", "http:", "https:\\\\", "http:///", "ftp://",
            "ws://", "", "//", "file://", "https//",
        ])
        .prop_map(str::to_owned),
    ]
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z0-9][a-z0-9-]{0,7}",
        2 => "[a-zA-Z0-9-]{0,6}",
        1 => prop::sample::select(vec![
            "www", "WWW", "xn--bcher-kva", "XN--BCHER-KVA", "xn--", "bücher", "ÉCOLE", "0x7f",
            "127", "1", "08", "ex_ample", "a b", "a%41", "ß", "a\tb", "-", "--",
        ])
        .prop_map(str::to_owned),
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (prop::collection::vec(label(), 1..4), "[a-z]{2,6}", prop::bool::weighted(0.05))
            .prop_map(|(labels, tld, dot)| {
                let mut h = labels.join(".");
                h.push('.');
                h.push_str(&tld);
                if dot {
                    h.push('.');
                }
                h
            }),
        1 => prop::sample::select(vec![
            "[::1]", "[2001:DB8::1]", "127.0.0.1", "0x7f.1", "1.2.3", "[::1", "", ".",
            "example..com", ".example.com", "localhost", "user:pw@example.com", "@example.com",
            "exa mple.com", "example.com\\", "a.b.c.d.e.f.g.h",
        ])
        .prop_map(str::to_owned),
    ]
}

fn port() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just(String::new()),
        1 => prop::sample::select(vec![
            ":", ":80", ":443", ":8080", ":0", ":65535", ":65536", ":99999", ":123456", ":abc",
            ":08", ": 80",
        ])
        .prop_map(str::to_owned),
    ]
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => "[a-zA-Z0-9_~.-]{0,10}",
        3 => "[!$&'()*+,;=:@|^\\[\\]a-z%0-9]{0,6}",
        2 => prop::sample::select(vec![
            ".", "..", "%2e", "%2E", ".%2e", "%2e.", "%2e%2E", "...", ".x", "x.", "a b", "é",
            "x\"y", "<>", "{}", "`", "\t", "\n", "a\\b", "%", "%zz", "%C3%A9", "\u{1F600}",
        ])
        .prop_map(str::to_owned),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (prop::sample::select(vec!["/", "/", "/", "\\"]), segment()),
        0..5,
    )
    .prop_map(|parts| {
        parts
            .into_iter()
            .flat_map(|(s, g)| [s.to_owned(), g])
            .collect()
    })
}

fn query_part() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9._~-]{0,8}",
        2 => "[a-zA-Z0-9+%=/?:@!$'()*,;]{0,8}",
        1 => prop::sample::select(vec![
            "%20", "%E2%9C%93", "%FF", "%", "%4", "a b", "\"", "<", ">", "'", "é", "+", "\t",
            "utm_source",
        ])
        .prop_map(str::to_owned),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        3 => prop::sample::select(vec![
            "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term",
            "utm%5Fsource", "UTM_SOURCE", "utm_source+", "ref",
        ])
        .prop_map(str::to_owned),
        2 => query_part(),
    ];
    let pair = (key, prop::option::of(query_part())).prop_map(|(k, v)| match v {
        Some(v) => format!("{k}={v}"),
        None => k,
    });
    prop_oneof![
        2 => Just(String::new()),
        5 => prop::collection::vec(pair, 0..5).prop_map(|pairs| format!("?{}", pairs.join("&"))),
    ]
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        1 => "#[ -~]{0,8}",
        1 => Just("#é \t<>".to_owned()),
    ]
}

fn space() -> impl Strategy<Value = &'static str> {
    prop_oneof![20 => Just(""), 1 => prop::sample::select(vec![" ", "\t", "\n", "\u{0}", "\r\n"])]
}

fn any_url() -> impl Strategy<Value = String> {
    (
        space(),
        scheme(),
        host(),
        port(),
        path(),
        query(),
        fragment(),
        space(),
    )
        .prop_map(|(a, s, h, p, pa, q, f, z)| format!("{a}{s}{h}{p}{pa}{q}{f}{z}"))
}

/// Only what real pages send: the fast path must take all of these.
fn ordinary_url() -> impl Strategy<Value = String> {
    let host = (
        prop::collection::vec("[a-zA-Z0-9][a-z0-9]{0,5}(-[a-z0-9]{1,4})?", 1..4),
        "[a-z]{2,6}",
    )
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")));
    let path = prop::collection::vec("[a-zA-Z0-9_~-][a-zA-Z0-9_~.-]{0,9}", 0..4)
        .prop_map(|segments| segments.iter().map(|s| format!("/{s}")).collect::<String>());
    let query = prop::collection::vec(("utm_[a-z]{4,8}|[a-z]{1,5}", "[a-zA-Z0-9%+._-]{0,8}"), 0..4)
        .prop_map(|pairs| {
            let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if pairs.is_empty() {
                String::new()
            } else {
                format!("?{}", pairs.join("&"))
            }
        });
    (
        prop::sample::select(vec!["https://", "http://"]),
        host,
        prop::sample::select(vec!["", ":8080"]),
        path,
        query,
        prop::sample::select(vec!["", "#section-2"]),
    )
        .prop_map(|(s, h, p, pa, q, f)| format!("{s}{h}{p}{pa}{q}{f}"))
}

fn configs() -> impl Strategy<Value = NormalizeConfig> {
    any::<bool>().prop_map(|strip_www| NormalizeConfig { strip_www })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn fast_path_equals_url_crate(url in any_url(), cfg in configs()) {
        prop_assert_eq!(normalize_url(&url, &cfg), normalize_url_slow(&url, &cfg), "url {:?}", url);
        prop_assert_eq!(http_host(&url, &cfg), http_host_slow(&url, &cfg), "url {:?}", url);
    }

    #[test]
    fn referrer_fast_path_equals_url_crate(
        url in any_url(),
        page in prop::sample::select(vec!["example.com", "www.example.com", "google.com", ""]),
        cfg in configs(),
    ) {
        prop_assert_eq!(
            crate::normalize_referrer(&url, page, &cfg),
            crate::normalize_referrer_slow(&url, page, &cfg),
            "referrer {:?}", url
        );
    }

    #[test]
    fn fast_path_equals_url_crate_on_arbitrary_tails(tail in "\\PC{0,40}", cfg in configs()) {
        for url in [format!("http://{tail}"), format!("https://example.com/{tail}")] {
            prop_assert_eq!(normalize_url(&url, &cfg), normalize_url_slow(&url, &cfg), "url {:?}", url);
            prop_assert_eq!(http_host(&url, &cfg), http_host_slow(&url, &cfg), "url {:?}", url);
        }
    }

    #[test]
    fn ordinary_urls_take_the_fast_path(url in ordinary_url(), cfg in configs()) {
        let fast = fast::page_url(&url, &cfg);
        prop_assert!(fast.is_some(), "fast path refused {:?}", url);
        prop_assert_eq!(Ok(fast.unwrap()), normalize_url_slow(&url, &cfg), "url {:?}", url);
    }
}
