//! The fast path against the simd-json path: the same bytes must give the same
//! `Result<Parsed>`, whichever path decoded them, and `parse_slice` (no copy) the same
//! as `parse`; and the fast path must really take the common events (else it would be
//! equal only by never running).

use proptest::prelude::*;

use super::super::own::DIALECT as OWN;
use super::super::plausible::DIALECT as PLAUSIBLE;
use super::keys::{OWN_KEYS, PLAUSIBLE_KEYS};
use super::*;
use crate::wire::{Format, Parsed, Parser};

/// Parses `body` twice, with and without the fast path; both answers must be equal.
fn both(format: Format, body: &[u8], limits: &Limits) -> crate::Result<Parsed<'static>> {
    let mut fast_body = body.to_vec();
    let mut slow_body = body.to_vec();
    let mut fast = Parser::new();
    let mut slow = Parser::simd_json_only();
    let a = fast.parse(format, &mut fast_body, limits).map(own_parsed);
    let b = slow.parse(format, &mut slow_body, limits).map(own_parsed);
    let c = Parser::new()
        .parse_slice(format, body, limits)
        .map(own_parsed);
    assert_eq!(
        a,
        c,
        "parse and parse_slice differ on {:?}",
        String::from_utf8_lossy(body)
    );
    assert_eq!(
        a,
        b,
        "fast and simd-json paths differ on {:?}",
        String::from_utf8_lossy(body)
    );
    a
}

fn own_parsed(p: Parsed<'_>) -> Parsed<'static> {
    Parsed {
        events: p
            .events
            .into_iter()
            .map(|(i, e)| {
                let o = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
                let ev = RawEvent {
                    site: e.site.map(o),
                    url: o(e.url),
                    name: o(e.name),
                    referrer: e.referrer.map(o),
                    screen_width: e.screen_width,
                    ts: e.ts,
                    props: e.props.into_iter().map(|(k, v)| (o(k), o(v))).collect(),
                    timings: e.timings,
                    scroll_depth: e.scroll_depth,
                    engagement_ms: e.engagement_ms,
                };
                (i, ev)
            })
            .collect(),
        rejected: p.rejected,
    }
}

/// Did the fast path decode `body` by itself?
fn taken(body: &str, dialect: &Dialect, limits: &Limits) -> bool {
    let mut b = body.as_bytes().to_vec();
    let mut out = Parsed::default();
    decode(&mut b, dialect, limits, &mut Scan::default(), &mut out, 0).is_none()
        && out.events.len() == 1
}

const TYPICAL: &str = r#"{"site":"shop.example","url":"https://shop.example/blog/a-b-c?utm_source=news&utm_medium=email","name":"pageview","referrer":"https://www.google.com/","screen_width":1440,"ts":1795392000123,"ttfb_ms":120,"lcp_ms":1830,"cls":0.05,"props":{"plan":"pro","seats":3,"trial":false,"none":null}}"#;

#[test]
fn key_patterns_are_the_keys_the_lookup_knows() {
    for (dialect, keys) in [(&OWN, &OWN_KEYS[..]), (&PLAUSIBLE, &PLAUSIBLE_KEYS[..])] {
        for p in keys {
            let bytes = p.bytes.to_le_bytes();
            let (text, rest) = bytes.split_at(p.len);
            assert!(
                text.starts_with(b"\"") && text.ends_with(b"\":"),
                "{text:?}"
            );
            assert!(rest.iter().all(|&c| c == 0));
            assert_eq!(p.mask.count_ones() as usize, 8 * p.len);
            let name = &text[1..p.len - 2];
            assert_eq!(dialect.field(name), Some(p.field), "{name:?}");
            // Found from any cursor, whether 16 bytes follow or the line ends first.
            let pad = r#"{"a":"0123456789abcdef","#;
            for end in [r#"1,"x":"0123456789abcdef"}"#, "1}"] {
                let line = format!("{pad}{}{end}", s(text));
                for start in 0..keys.len() {
                    let (mut i, mut next) = (pad.len(), start);
                    let f = predicted_key(line.as_bytes(), &mut i, keys, &mut next);
                    assert_eq!((f, i), (Some(p.field), pad.len() + p.len), "{line}");
                }
            }
        }
    }
    // Near misses go to the general key reader.
    for key in [
        r#""sitex":1}"#,
        r#""site" :1}"#,
        r#""Site":1}"#,
        r#""sit":1}"#,
        "\"si",
        // Nothing left: a key expected at the end of the line.
        "",
    ] {
        for line in [
            format!("{{{key}"),
            format!(r#"{{"a":"0123456789abcdef",{key}"#),
        ] {
            let at = line.len() - key.len();
            let (mut i, mut next) = (at, 0);
            assert_eq!(
                predicted_key(line.as_bytes(), &mut i, &OWN_KEYS, &mut next),
                None
            );
            assert_eq!((i, next), (at, 0));
        }
    }
}

fn s(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[test]
fn typical_events_take_the_fast_path() {
    let l = Limits::default();
    assert!(taken(TYPICAL, &OWN, &l));
    assert!(taken(
        r#" { "site" : "a.com" , "url" : "https://a.com/" } "#,
        &OWN,
        &l
    ));
    assert!(taken(
        r#"{"n":"pageview","u":"https://a.com/x","d":"a.com, b.com","r":null,"w":390,"p":{"k":"v"}}"#,
        &PLAUSIBLE,
        &l
    ));
    let p = both(Format::Own, TYPICAL.as_bytes(), &l).unwrap();
    let ev = &p.events[0].1;
    assert_eq!(ev.site.as_deref(), Some("shop.example"));
    assert_eq!(ev.timings.cls, Some(0.05));
    assert_eq!(ev.ts, Some(1_795_392_000_123));
    assert_eq!(
        ev.props,
        vec![
            ("plan".into(), "pro".into()),
            ("seats".into(), "3".into()),
            ("trial".into(), "false".into())
        ]
    );
}

/// `parse_slice` takes the end of a line from the fast path's own scan: every way a
/// line can end, or an object be split over lines, must give what `parse` (lines cut
/// first) gives, and the common lines must still take the fast path.
#[test]
fn lines_ended_by_the_scan_are_the_lines() {
    let t = TYPICAL;
    let split = "{\"site\":\"a.com\",\n\"url\":\"https://a.com/\"}";
    let bodies = [
        (format!("{t}\n{t}"), 2),
        (format!("{t}\n{t}\n"), 2),
        (format!("{t}\r\n{t}\r\n"), 2),
        (format!("{t} \t\r\n\n \n{t}"), 2),
        (format!("{t}\n{split}\n{t}"), 2),
        (format!("{t}\n{t} x\n{t}"), 2),
        (format!("{t}\n{t}{t}\n{t}"), 2),
        (
            format!("{t}\n{{\"site\":\"a.com\",\"url\":\"https://a.com/\"\n}}\n{t}"),
            2,
        ),
    ];
    for (body, events) in &bodies {
        let p = both(Format::Own, body.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(p.events.len(), *events, "{body:?}");
        assert!(p
            .events
            .iter()
            .all(|(_, e)| e.site.as_deref() == Some("shop.example")));
    }
    // The event limit counts lines the scan took as it counts the others.
    let tight = Limits {
        max_events_per_request: 2,
        ..Limits::default()
    };
    assert!(both(Format::Own, bodies[0].0.as_bytes(), &tight).is_ok());
    assert!(both(Format::Own, format!("{t}\n{t}\n{t}").as_bytes(), &tight).is_err());
    // The typical line is taken by the scan, with or without its newline.
    let mut scan = Scan::default();
    let line = format!("{t}\r\n{t}");
    assert_eq!(
        line_len(&line, &OWN, &Limits::default(), &mut scan),
        Some(t.len() + 1)
    );
    assert_eq!(
        line_len(t, &OWN, &Limits::default(), &mut scan),
        Some(t.len())
    );
    assert_eq!(line_len(split, &OWN, &Limits::default(), &mut scan), None);
}

#[test]
fn unusual_events_fall_back() {
    let l = Limits::default();
    for body in [
        r#"{"site":"a.com","url":"https://a.com/caf\u00e9"}"#, // escape
        "{\"site\":\"a.com\",\"url\":\"https://a.com/café\"}", // non-ASCII
        r#"{"site":"a.com","url":"u","ts":-1}"#,               // negative
        r#"{"site":"a.com","url":"u","ts":1234567890123456789}"#, // 19 digits
        r#"{"site":"a.com","url":"u","cls":1e400}"#,           // outside the exact range
        r#"{"site":"a.com","url":"u","x":{"y":1}}"#,           // nested unknown
        r#"{"site":"a.com","url":"u","site":"b"}"#,            // duplicate
        r#"{"site":"a.com"}"#,                                 // no url
        r#"{"site":"a.com","url":"u","ttfb_ms":1.5}"#,         // wrong type
        r#"{"site":"a.com","url":"u"} x"#,                     // trailing bytes
        r#"{"site":"a.com","url":"u",}"#,                      // trailing comma
        r#"{"site":"a.com","url":"u","ttfb_ms":01}"#,          // leading zero
    ] {
        assert!(!taken(body, &OWN, &l), "{body}");
        both(Format::Own, body.as_bytes(), &l).ok();
    }
    // A JSON-encoded props string is Plausible's legacy form: the simd-json path's.
    assert!(!taken(
        r#"{"n":"pageview","u":"u","d":"a","p":"{\"k\":\"v\"}"}"#,
        &PLAUSIBLE,
        &l
    ));
}

#[test]
fn limits_at_and_past_the_edge_agree() {
    let base = Limits::default();
    let at = |n: usize| "x".repeat(n);
    for (limits, body) in [
        (
            Limits {
                max_url_len: 10,
                ..base.clone()
            },
            format!(r#"{{"site":"a","url":"{}"}}"#, at(10)),
        ),
        (
            Limits {
                max_url_len: 10,
                ..base.clone()
            },
            format!(r#"{{"site":"a","url":"{}"}}"#, at(11)),
        ),
        (
            Limits {
                max_site_len: 3,
                ..base.clone()
            },
            r#"{"site":"abcd","url":"u"}"#.to_owned(),
        ),
        (
            Limits {
                max_props: 1,
                ..base.clone()
            },
            r#"{"site":"a","url":"u","props":{"a":"1","b":"2"}}"#.to_owned(),
        ),
        (
            Limits {
                max_depth: 1,
                ..base.clone()
            },
            r#"{"site":"a","url":"u","props":{"a":"1"}}"#.to_owned(),
        ),
        (
            Limits {
                max_events_per_request: 0,
                ..base.clone()
            },
            r#"{"site":"a","url":"u"}"#.to_owned(),
        ),
    ] {
        both(Format::Own, body.as_bytes(), &limits).ok();
        both(Format::Plausible, body.as_bytes(), &limits).ok();
    }
}

/// Pieces of event objects: keys of both formats, unknown ones, and values of every
/// kind the fast path takes or must refuse.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "site",
            "url",
            "name",
            "referrer",
            "screen_width",
            "ts",
            "props",
            "ttfb_ms",
            "fcp_ms",
            "lcp_ms",
            "inp_ms",
            "load_ms",
            "cls",
            "scroll_depth",
            "engagement_ms",
            "n",
            "u",
            "d",
            "r",
            "w",
            "p",
            "m",
            "meta",
            "sd",
            "e",
            "domain",
            "v",
            "x",
        ])
        .prop_map(str::to_owned),
        "[a-z_\\\\\"é]{0,6}",
    ]
}

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9:/?&=._ ,-]{0,24}",
        1 => "[a-z\\\\\"/\t\u{7f}é€😀]{0,8}",
        1 => Just(r"\u00e9\n\/".to_owned()),
    ]
    .prop_map(|s| format!("\"{s}\""))
}

fn number_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f32>().prop_map(|x| x.to_string()),
        any::<f64>().prop_map(|x| format!("{x:e}")),
        (0u64..1 << 54, -25i32..25).prop_map(|(m, e)| format!("{m}e{e}")),
        (0u64..100_000, 0u32..6).prop_map(|(m, d)| format!(
            "{m}.{:0>width$}",
            7,
            width = d as usize + 1
        )),
        prop::sample::select(vec![
            "0",
            "-0",
            "01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "1E5",
            "1e-5",
            "0.0",
            "1e400",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "4294967295",
            "4294967296",
            "65536",
            "250",
            "1.0",
        ])
        .prop_map(str::to_owned),
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => string_value(),
        3 => number_value(),
        1 => prop::sample::select(vec!["null", "true", "false", "nul", "[]", "[1]", "{}"])
            .prop_map(str::to_owned),
    ]
}

fn props_value() -> impl Strategy<Value = String> {
    prop::collection::vec((key(), scalar()), 0..5).prop_map(|pairs| {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => scalar(),
        2 => props_value(),
        1 => props_value().prop_map(|p| format!("{{\"deep\":{p}}}")),
    ]
}

fn ws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "\t", "\r\n "])
}

fn object() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((key(), value(), ws()), 0..10),
        ws(),
        any::<bool>(),
    )
        .prop_map(|(members, w, with_url)| {
            let mut parts: Vec<String> = members
                .iter()
                .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                .collect();
            if with_url {
                parts.insert(0, "\"url\":\"https://a.com/\"".to_owned());
            }
            format!("{w}{{{}}}{w}", parts.join(","))
        })
}

/// One byte replaced, inserted or removed, at a position from `at`.
fn mutate(mut b: Vec<u8>, op: u8, at: usize, byte: u8) -> Vec<u8> {
    if b.is_empty() {
        return b;
    }
    let i = at % b.len();
    match op % 4 {
        0 => b[i] = byte,
        1 => b.insert(i, byte),
        2 => {
            b.remove(i);
        }
        _ => {}
    }
    b
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        3 => Just(Limits::default()),
        1 => (1usize..30, 1usize..4, 0usize..4, 1usize..4).prop_map(|(len, props, depth, events)| Limits {
            max_url_len: len,
            max_referrer_len: len,
            max_name_len: len,
            max_site_len: len,
            max_prop_key_len: len / 2,
            max_prop_value_len: len,
            max_props: props,
            max_depth: depth,
            max_events_per_request: events,
            ..Limits::default()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// A single object, in both formats, mutated or not.
    #[test]
    fn one_object_equals_the_simd_json_path(
        obj in object(), op in any::<u8>(), at in any::<usize>(), byte in any::<u8>(),
        limits in limits(),
    ) {
        let body = mutate(obj.into_bytes(), op, at, byte);
        both(Format::Own, &body, &limits).ok();
        both(Format::Plausible, &body, &limits).ok();
    }

    /// NDJSON bodies: every line goes through the fast path or the simd-json one.
    #[test]
    fn ndjson_equals_the_simd_json_path(
        lines in prop::collection::vec((object(), any::<u8>(), any::<usize>(), any::<u8>()), 2..6),
        limits in limits(),
    ) {
        let mut body = Vec::new();
        for (obj, op, at, byte) in lines {
            // A newline inside (whitespace, or the mutation's) splits the line: the
            // fast path must stop at it as `parse` does (it finds the lines itself).
            body.extend(mutate(obj.into_bytes(), op, at, byte));
            body.push(b'\n');
        }
        both(Format::Own, &body, &limits).ok();
    }

    /// Numbers in every field: the exact-float rule gives simd-json's f64 and text.
    #[test]
    fn numbers_equal_the_simd_json_path(n in number_value(), f in key()) {
        let body = format!(r#"{{"site":"a","url":"u","{f}":{n},"props":{{"k":{n}}}}}"#);
        both(Format::Own, body.as_bytes(), &Limits::default()).ok();
    }
}
