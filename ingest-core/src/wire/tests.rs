//! Every limit of [`Limits`] at the limit and one past it, for each format that has
//! it, and a property test that no input makes a parser panic.

use proptest::prelude::*;

use super::*;
use crate::Error;

fn leak(s: &str) -> &'static mut [u8] {
    Box::leak(s.as_bytes().to_vec().into_boxed_slice())
}

fn own(body: &str, limits: &Limits) -> Result<Parsed<'static>> {
    parse_own(leak(body), limits)
}

/// The single event's outcome: `Ok` if accepted, its rejection error otherwise.
fn own_event(body: &str, limits: &Limits) -> std::result::Result<(), Error> {
    let p = own(body, limits).unwrap();
    match p.rejected.into_iter().next() {
        Some(r) => Err(r.error),
        None => Ok(()),
    }
}

fn pixel_event(q: &str, limits: &Limits) -> std::result::Result<(), Error> {
    let q: &'static str = Box::leak(q.to_owned().into_boxed_str());
    let p = parse_pixel(q, limits).unwrap();
    match p.rejected.into_iter().next() {
        Some(r) => Err(r.error),
        None => Ok(()),
    }
}

fn plausible_event(body: &str, limits: &Limits) -> std::result::Result<(), Error> {
    let p = parse_plausible(leak(body), limits).unwrap();
    match p.rejected.into_iter().next() {
        Some(r) => Err(r.error),
        None => Ok(()),
    }
}

const EV: &str = r#"{"site":"a.com","url":"https://a.com/"}"#;

#[test]
fn body_bytes() {
    let limits = Limits {
        max_body_bytes: EV.len(),
        ..Limits::default()
    };
    for format in [Format::Own, Format::Plausible] {
        let body = if format == Format::Own {
            EV.to_owned()
        } else {
            EV.replace("site", "d")
        };
        let at = format!("{body}{}", " ".repeat(EV.len() - body.len()));
        assert!(parse(format, leak(&at), &limits).is_ok());
        let past = format!("{at} ");
        assert_eq!(
            parse(format, leak(&past), &limits).unwrap_err(),
            Error::BodyTooLarge {
                limit: EV.len(),
                actual: EV.len() + 1
            }
        );
    }
    let q = "url=u&site=a";
    let limits = Limits {
        max_body_bytes: q.len(),
        ..Limits::default()
    };
    assert!(parse_pixel(q, &limits).is_ok());
    assert!(matches!(
        parse_pixel("url=u&site=ab", &limits),
        Err(Error::BodyTooLarge { .. })
    ));
    // Checked before parsing: garbage past the limit is BodyTooLarge, not Malformed.
    let limits = Limits {
        max_body_bytes: 3,
        ..Limits::default()
    };
    assert!(matches!(
        parse_own(leak("{{{{"), &limits),
        Err(Error::BodyTooLarge { .. })
    ));
}

#[test]
fn events_per_request() {
    let limits = Limits {
        max_events_per_request: 3,
        ..Limits::default()
    };
    let array = |n: usize| format!("[{}]", vec![EV; n].join(","));
    let ndjson = |n: usize| vec![EV; n].join("\n");
    assert_eq!(own(&array(3), &limits).unwrap().events.len(), 3);
    assert_eq!(
        own(&array(4), &limits).unwrap_err(),
        Error::TooManyEvents { limit: 3 }
    );
    assert_eq!(own(&ndjson(3), &limits).unwrap().events.len(), 3);
    assert_eq!(
        own(&ndjson(4), &limits).unwrap_err(),
        Error::TooManyEvents { limit: 3 }
    );
    // Blank lines do not count; the check stops before parsing the line past the limit
    // (here malformed, which would otherwise be a per-line rejection).
    assert_eq!(
        own(&format!("{}\n\n\n", ndjson(3)), &limits)
            .unwrap()
            .events
            .len(),
        3
    );
    assert_eq!(
        own(&format!("{}\n{{bad", ndjson(3)), &limits).unwrap_err(),
        Error::TooManyEvents { limit: 3 }
    );
    let zero = Limits {
        max_events_per_request: 0,
        ..Limits::default()
    };
    assert_eq!(
        own(EV, &zero).unwrap_err(),
        Error::TooManyEvents { limit: 0 }
    );
    assert_eq!(
        parse_pixel("url=u", &zero).unwrap_err(),
        Error::TooManyEvents { limit: 0 }
    );
    let one = Limits {
        max_events_per_request: 1,
        ..Limits::default()
    };
    assert!(own(EV, &one).is_ok());
    assert!(parse_pixel("url=u", &one).is_ok());
}

/// Builds an own-format body with `field` set to a string of `len` bytes.
fn with_string(field: &str, len: usize) -> String {
    let v = "x".repeat(len);
    match field {
        "url" => format!(r#"{{"site":"a","url":"{v}"}}"#),
        "site" => format!(r#"{{"site":"{v}","url":"u"}}"#),
        _ => format!(r#"{{"site":"a","url":"u","{field}":"{v}"}}"#),
    }
}

#[test]
fn string_lengths() {
    let l = Limits::default();
    let cases = [
        ("url", l.max_url_len),
        ("referrer", l.max_referrer_len),
        ("name", l.max_name_len),
        ("site", l.max_site_len),
    ];
    for (field, max) in cases {
        assert_eq!(own_event(&with_string(field, max), &l), Ok(()), "{field}");
        assert_eq!(
            own_event(&with_string(field, max + 1), &l),
            Err(Error::TooLong {
                field: field.into(),
                limit: max
            }),
            "{field}"
        );
        // The pixel checks the decoded value.
        let q = |n: usize| match field {
            "url" => format!("url={}", "%41".repeat(n)),
            f => format!("url=u&{f}={}", "%41".repeat(n)),
        };
        assert_eq!(pixel_event(&q(max), &l), Ok(()), "pixel {field}");
        assert_eq!(
            pixel_event(&q(max + 1), &l),
            Err(Error::TooLong {
                field: field.into(),
                limit: max
            }),
            "pixel {field}"
        );
    }
    // A Plausible domain list: the limit applies to the domain kept.
    let d = format!(r#"{{"d":"{},b.com","u":"u"}}"#, "x".repeat(l.max_site_len));
    assert_eq!(plausible_event(&d, &l), Ok(()));
    let d = format!(r#"{{"d":"{}","u":"u"}}"#, "x".repeat(l.max_site_len + 1));
    assert!(matches!(
        plausible_event(&d, &l),
        Err(Error::TooLong { .. })
    ));
}

#[test]
fn prop_lengths_and_count() {
    let l = Limits {
        max_prop_key_len: 5,
        max_prop_value_len: 7,
        max_props: 3,
        ..Limits::default()
    };
    let props = |pairs: &[(&str, &str)]| {
        let inner: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!(r#""{k}":"{v}""#))
            .collect();
        format!(
            r#"{{"site":"a","url":"u","props":{{{}}}}}"#,
            inner.join(",")
        )
    };
    assert_eq!(own_event(&props(&[("kkkkk", "vvvvvvv")]), &l), Ok(()));
    assert_eq!(
        own_event(&props(&[("kkkkkk", "v")]), &l),
        Err(Error::TooLong {
            field: "props".into(),
            limit: 5
        })
    );
    assert_eq!(
        own_event(&props(&[("k", "vvvvvvvv")]), &l),
        Err(Error::TooLong {
            field: "props.k".into(),
            limit: 7
        })
    );
    assert_eq!(
        own_event(&props(&[("a", "1"), ("b", "2"), ("c", "3")]), &l),
        Ok(())
    );
    assert_eq!(
        own_event(
            &props(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]),
            &l
        ),
        Err(Error::TooManyProps {
            field: "props".into(),
            limit: 3
        })
    );
    // Plausible: the same limits, dropped (null) props do not count.
    let p = r#"{"d":"a","u":"u","p":{"a":"1","b":"2","c":"3","z":null}}"#;
    assert_eq!(plausible_event(p, &l), Ok(()));
    let p = r#"{"d":"a","u":"u","p":{"a":"1","b":"2","c":"3","z":4}}"#;
    assert!(matches!(
        plausible_event(p, &l),
        Err(Error::TooManyProps { .. })
    ));
    // Stringified numbers count their text.
    let p = r#"{"d":"a","u":"u","p":{"a":12345678}}"#;
    assert!(matches!(plausible_event(p, &l), Err(Error::TooLong { .. })));
    // Pixel.
    assert_eq!(
        pixel_event("url=u&p.kkkkk=vvvvvvv&p.b=1&props[c]=2", &l),
        Ok(())
    );
    assert!(matches!(
        pixel_event("url=u&p.kkkkkk=v", &l),
        Err(Error::TooLong { .. })
    ));
    assert!(matches!(
        pixel_event("url=u&p.k=vvvvvvvv", &l),
        Err(Error::TooLong { .. })
    ));
    assert!(matches!(
        pixel_event("url=u&p.a=1&p.b=1&p.c=1&p.d=1", &l),
        Err(Error::TooManyProps { .. })
    ));
}

/// An own-format event whose unknown field `x` nests `depth - 1` arrays, so the whole
/// body has nesting depth `depth`.
fn nested(depth: usize) -> String {
    let d = depth - 1;
    format!(
        r#"{{"site":"a","url":"u","x":{}{}}}"#,
        "[".repeat(d),
        "]".repeat(d)
    )
}

#[test]
fn depth() {
    let l = Limits::default();
    assert!(own(&nested(l.max_depth), &l).is_ok());
    assert_eq!(
        own(&nested(l.max_depth + 1), &l).unwrap_err(),
        Error::TooDeep {
            field: "body".into(),
            limit: l.max_depth
        }
    );
    // Arrays count: [ {…} ] is depth 2 at the top.
    let l2 = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    assert!(own(&format!("[{EV}]"), &l2).is_ok());
    assert!(matches!(
        own(r#"[{"site":"a","url":"u","props":{}}]"#, &l2),
        Err(Error::TooDeep { .. })
    ));
    // Plausible.
    let p = |d: usize| {
        format!(
            r#"{{"d":"a","u":"u","x":{}{}}}"#,
            "[".repeat(d - 1),
            "]".repeat(d - 1)
        )
    };
    assert!(parse_plausible(leak(&p(l.max_depth)), &l).is_ok());
    assert!(matches!(
        parse_plausible(leak(&p(l.max_depth + 1)), &l),
        Err(Error::TooDeep { .. })
    ));
    // NDJSON: per line, a too-deep line is that line's rejection.
    let body = format!("{EV}\n{}", nested(l.max_depth + 1));
    let parsed = own(&body, &l).unwrap();
    assert_eq!(parsed.events.len(), 1);
    assert_eq!(
        parsed.rejected[0].error,
        Error::TooDeep {
            field: "event".into(),
            limit: l.max_depth
        }
    );
}

#[test]
fn very_deep_body_is_rejected_without_recursion() {
    let l = Limits {
        max_body_bytes: 1 << 20,
        ..Limits::default()
    };
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(own(&deep, &l), Err(Error::TooDeep { .. })));
    let unclosed = "{\"a\":".repeat(100_000);
    assert!(matches!(own(&unclosed, &l), Err(Error::TooDeep { .. })));
}

#[test]
fn parser_is_reusable_across_limits_and_formats() {
    let mut parser = Parser::new();
    let l = Limits::default();
    let shallow = Limits {
        max_depth: 1,
        ..Limits::default()
    };
    for _ in 0..3 {
        assert_eq!(
            parser
                .parse(Format::Own, leak(EV), &l)
                .unwrap()
                .events
                .len(),
            1
        );
        assert!(parser
            .parse(Format::Own, leak(&format!("[{EV}]")), &shallow)
            .is_err());
        assert_eq!(
            parser
                .parse(Format::Pixel, leak("url=u"), &l)
                .unwrap()
                .events
                .len(),
            1
        );
        let p = parser.parse(
            Format::Plausible,
            leak(r#"{"d":"a","u":"u","m":"{\"k\":1}"}"#),
            &l,
        );
        assert_eq!(p.unwrap().events[0].1.props.len(), 1);
    }
    assert!(matches!(
        parser.parse(Format::Pixel, &mut [0xff, b'='], &l),
        Err(Error::Malformed { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let l = Limits::default();
        for format in [Format::Own, Format::Plausible, Format::Pixel] {
            let mut b = bytes.clone();
            let _ = parse(format, &mut b, &l);
        }
    }

    #[test]
    fn json_like_input_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("{".to_owned()), Just("}".to_owned()), Just("[".to_owned()), Just("]".to_owned()),
                Just(",".to_owned()), Just(":".to_owned()), Just("\n".to_owned()), Just("\"url\"".to_owned()),
                Just("\"site\"".to_owned()), Just("\"props\"".to_owned()), Just("\"p\"".to_owned()),
                Just("\"ts\"".to_owned()), Just("\"cls\"".to_owned()), Just("\"w\"".to_owned()),
                Just("\"\\ud800\"".to_owned()), Just("null".to_owned()), Just("-1".to_owned()),
                Just("1e400".to_owned()), Just("18446744073709551616".to_owned()), Just("0.5".to_owned()),
                "\"[a-z\\\\\"{}]{0,6}\"".prop_map(|s| s),
            ],
            0..40,
        )
    ) {
        let body = parts.concat();
        let l = Limits { max_depth: 4, max_props: 2, ..Limits::default() };
        for format in [Format::Own, Format::Plausible, Format::Pixel] {
            let _ = parse(format, &mut body.clone().into_bytes(), &l);
        }
    }
}

#[test]
fn own_names_map_to_their_fields_and_near_misses_to_none() {
    use super::fields::Field;
    let all = [
        Field::Site,
        Field::Url,
        Field::Name,
        Field::Referrer,
        Field::ScreenWidth,
        Field::Ts,
        Field::Props,
        Field::TtfbMs,
        Field::FcpMs,
        Field::LcpMs,
        Field::InpMs,
        Field::LoadMs,
        Field::Cls,
        Field::ScrollDepth,
        Field::EngagementMs,
    ];
    for f in all {
        let name = f.name().as_bytes();
        assert_eq!(Field::from_own_name(name), Some(f), "{f:?}");
        let mut near = name.to_vec();
        *near.last_mut().unwrap() ^= 0x20;
        assert_eq!(Field::from_own_name(&near), None, "{near:?}");
        assert_eq!(Field::from_own_name(&name[1..]), None);
    }
    for miss in [
        &b""[..],
        b"x",
        b"tx",
        b"urk",
        b"xite",
        b"screen_widthx",
        b"u\0l",
    ] {
        assert_eq!(Field::from_own_name(miss), None, "{miss:?}");
    }
}
