//! Our own format: one JSON object, a JSON array of objects, or NDJSON.
//!
//! The shape is told from the bytes, so one endpoint takes all three:
//! - first non-blank byte `[` → a JSON array, one event per element;
//! - several non-blank lines whose first one starts with `{` and ends with `}` →
//!   NDJSON, one event per line (a raw newline cannot occur inside a JSON string, so a
//!   line is exactly one value);
//! - anything else → one JSON value, which may be pretty-printed over several lines.
//!
//! For NDJSON a line that is not valid JSON is a rejection of that line, not of the
//! request; for the other shapes malformed JSON is a request-level error.

use simd_json::Node;

use super::fields::Dialect;
use super::flat;
use super::json::{array_iter, decode_event, JsonParser};
use super::{check_body_len, check_events, collect, Parsed};
use crate::{Error, Limits, RawEvent, Result};

pub(super) const DIALECT: Dialect = Dialect { plausible: false };

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

fn trim(line: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = line.iter().position(|b| !ws(b)).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !ws(b)).map_or(start, |e| e + 1);
    &line[start..end]
}

/// The lines of `body` (without their `\n`), found with a SIMD search: a byte loop
/// here cost as much as simd-json's whole stage 1.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(body);
    std::iter::from_fn(move || {
        let r = rest?;
        Some(match memchr::memchr(b'\n', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                &r[..i]
            }
            None => {
                rest = None;
                r
            }
        })
    })
}

/// [`lines`] for a mutable body: each line is handed out as its own `&'a mut` slice.
fn lines_mut(body: &mut [u8]) -> impl Iterator<Item = &mut [u8]> {
    let mut rest = Some(body);
    std::iter::from_fn(move || {
        let r = rest.take()?;
        Some(match memchr::memchr(b'\n', r) {
            Some(i) => {
                let (line, tail) = r.split_at_mut(i);
                rest = Some(&mut tail[1..]);
                line
            }
            None => r,
        })
    })
}

/// Is the body NDJSON (more than one non-blank line, the first a one-line object)?
fn is_ndjson(body: &[u8]) -> bool {
    let mut lines = lines(body).filter(|l| !is_blank(l));
    let Some(first) = lines.next() else {
        return false;
    };
    let first = trim(first);
    first.first() == Some(&b'{') && first.last() == Some(&b'}') && lines.next().is_some()
}

pub(super) fn parse<'a>(
    parser: &mut JsonParser,
    body: &'a mut [u8],
    limits: &Limits,
) -> Result<Parsed<'a>> {
    check_body_len(body.len(), limits)?;
    if is_ndjson(body) {
        return parse_ndjson(parser, body, limits);
    }
    // One object (the tracker's usual body): the fast path first. It needs the
    // one-event limit to hold, as the simd-json path below checks.
    let body = match flat::one_object(body, &DIALECT, limits, parser) {
        Ok(out) => return Ok(out),
        Err(body) => body,
    };
    let mut tape = parser.take_tape();
    let res = parser.fill(body, limits.max_depth, "body", &mut tape);
    let out = res.and_then(|()| {
        let mut out = Parsed::default();
        match tape.0.first() {
            Some(Node::Array { len, .. }) => {
                check_events(*len, limits)?;
                out.events.reserve(*len);
                for (i, el) in array_iter(&tape.0).enumerate() {
                    collect(&mut out, i, decode_event(el, &DIALECT, limits, parser));
                }
            }
            Some(Node::Object { .. }) => {
                check_events(1, limits)?;
                collect(&mut out, 0, decode_event(&tape.0, &DIALECT, limits, parser));
            }
            _ => {
                return Err(Error::WrongType {
                    field: "body".into(),
                    expected: "object, array of objects, or NDJSON",
                })
            }
        }
        Ok(out)
    });
    parser.give_tape(tape);
    out
}

/// Room for every NDJSON line up front: growing a Vec of ~200-byte events by doubling
/// copied each one twice on average and touched fresh pages each time. The shortest
/// event line (`{"url":""}`) has 10 bytes and a newline; the limit bounds the rest.
fn ndjson_out<'a>(body_len: usize, limits: &Limits) -> Parsed<'a> {
    Parsed {
        events: Vec::with_capacity(limits.max_events_per_request.min(body_len / 11 + 1)),
        rejected: Vec::new(),
    }
}

/// One NDJSON line through simd-json: `Err` for a request-level problem (the line is
/// not UTF-8: a wrong charset, a property of the request), else the line's outcome.
fn line_event<'l>(
    parser: &mut JsonParser,
    line: &'l mut [u8],
    limits: &Limits,
) -> Result<Result<RawEvent<'l>>> {
    let mut tape = parser.take_tape();
    let r = match parser.fill(line, limits.max_depth, "event", &mut tape) {
        Ok(()) => Ok(decode_event(&tape.0, &DIALECT, limits, parser)),
        Err(Error::Malformed { reason, .. }) if reason.starts_with("not valid UTF-8") => {
            Err(Error::Malformed {
                field: "body".into(),
                reason,
            })
        }
        Err(error) => Ok(Err(error)),
    };
    parser.give_tape(tape);
    r
}

fn parse_ndjson<'a>(
    parser: &mut JsonParser,
    body: &'a mut [u8],
    limits: &Limits,
) -> Result<Parsed<'a>> {
    let mut out = ndjson_out(body.len(), limits);
    let mut seen = 0;
    for (index, line) in lines_mut(body).enumerate() {
        if is_blank(line) {
            continue;
        }
        seen += 1;
        // Counted before the line is parsed: the request stops at the first line past
        // the limit.
        check_events(seen, limits)?;
        let line = if parser.fast {
            match flat::decode(line, &DIALECT, limits, &mut parser.scan, &mut out, index) {
                None => continue,
                Some(line) => line,
            }
        } else {
            line
        };
        let ev = line_event(parser, line, limits)?;
        collect(&mut out, index, ev);
    }
    Ok(out)
}

/// [`parse`] of a body that cannot be modified: events the fast path takes borrow from
/// `body`; the others are decoded by simd-json from a copy and own their strings.
pub(super) fn parse_slice<'a>(
    parser: &mut JsonParser,
    body: &'a [u8],
    limits: &Limits,
) -> Result<Parsed<'a>> {
    check_body_len(body.len(), limits)?;
    // One UTF-8 check of the whole body gives every NDJSON line its `&str` (checking
    // line by line cost a call per event). A body that fails it is refused by the
    // simd-json path anyway (not UTF-8 is a request-level error): it gets exactly
    // that path, from a copy.
    let text = match simdutf8::basic::from_utf8(body) {
        Ok(text) if is_ndjson(body) => text,
        _ => return flat::one_object_or_copy(body, &DIALECT, limits, parser, parse),
    };
    let mut out = ndjson_out(body.len(), limits);
    let mut seen = 0;
    let mut copy = Vec::new();
    // Line by line, as [`lines`] cuts them (a last, empty line after a final `\n`
    // included): the fast path finds where its line ends; the others are cut at the
    // next `\n` (a SIMD search: `str::split` uses core's byte-wise `memchr`, which
    // showed at 10% of the plain path).
    let (mut start, mut index) = (0, 0);
    while let Some(rest) = text.get(start..) {
        if parser.fast {
            if let Some(len) = flat::line_len(rest, &DIALECT, limits, &mut parser.scan) {
                seen += 1;
                check_events(seen, limits)?;
                out.events.push((index, parser.scan.build(&rest[..len])));
                (start, index) = (start + len + 1, index + 1);
                continue;
            }
        }
        let len = memchr::memchr(b'\n', rest.as_bytes()).unwrap_or(rest.len());
        let line = &rest[..len];
        (start, index) = (start + len + 1, index + 1);
        if is_blank(line.as_bytes()) {
            continue;
        }
        seen += 1;
        check_events(seen, limits)?;
        copy.clear();
        copy.extend_from_slice(line.as_bytes());
        let ev = line_event(parser, &mut copy, limits)?.map(RawEvent::into_owned);
        collect(&mut out, index - 1, ev);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::parse_own;
    use super::*;
    use crate::RawEvent;

    fn parsed(body: &str) -> Parsed<'static> {
        parsed_with(body, &Limits::default()).unwrap()
    }

    fn parsed_with(body: &str, limits: &Limits) -> Result<Parsed<'static>> {
        let b = Box::leak(body.as_bytes().to_vec().into_boxed_slice());
        parse_own(b, limits)
    }

    fn one(body: &str) -> RawEvent<'static> {
        let p = parsed(body);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.events.len(), 1);
        p.events.into_iter().next().unwrap().1
    }

    fn reject(body: &str) -> Error {
        let p = parsed(body);
        assert!(p.events.is_empty(), "{:?}", p.events);
        assert_eq!(p.rejected.len(), 1);
        p.rejected.into_iter().next().unwrap().error
    }

    const OK: &str = r#"{"site":"a.com","url":"https://a.com/"}"#;

    proptest::proptest! {
        /// The memchr line splitters cut exactly where `split` on `\n` does.
        #[test]
        fn lines_match_split(body in proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(b'\n'), proptest::prelude::any::<u8>()], 0..200)
        ) {
            let expected: Vec<Vec<u8>> = body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let got: Vec<Vec<u8>> = lines(&body).map(<[u8]>::to_vec).collect();
            proptest::prop_assert_eq!(&got, &expected);
            let mut b = body.clone();
            let got_mut: Vec<Vec<u8>> = lines_mut(&mut b).map(|l| l.to_vec()).collect();
            proptest::prop_assert_eq!(&got_mut, &expected);
        }
    }

    #[test]
    fn every_field() {
        let ev = one(
            r#"{"site":"a.com","url":"https://a.com/x","name":"signup","referrer":"https://b.com/",
                "screen_width":390,"ts":1700000000000,"props":{"plan":"pro","seats":3,"trial":false},
                "ttfb_ms":120,"fcp_ms":800,"lcp_ms":1200,"inp_ms":40,"load_ms":1500,"cls":0.05,
                "scroll_depth":80,"engagement_ms":5000}"#,
        );
        assert_eq!(ev.site.as_deref(), Some("a.com"));
        assert_eq!(ev.url, "https://a.com/x");
        assert_eq!(ev.name, "signup");
        assert_eq!(ev.referrer.as_deref(), Some("https://b.com/"));
        assert_eq!(ev.screen_width, Some(390));
        assert_eq!(ev.ts, Some(1_700_000_000_000));
        assert_eq!(
            ev.props,
            vec![
                ("plan".into(), "pro".into()),
                ("seats".into(), "3".into()),
                ("trial".into(), "false".into())
            ]
        );
        let t = ev.timings;
        assert_eq!(
            (t.ttfb_ms, t.fcp_ms, t.lcp_ms, t.inp_ms, t.load_ms, t.cls),
            (
                Some(120),
                Some(800),
                Some(1200),
                Some(40),
                Some(1500),
                Some(0.05)
            )
        );
        assert_eq!(ev.scroll_depth, Some(80));
        assert_eq!(ev.engagement_ms, Some(5000));
    }

    #[test]
    fn defaults_nulls_and_unknown_fields() {
        let ev = one(
            r#"{"site":"a.com","url":"https://a.com/","referrer":null,"cls":null,"future_field":{"x":[1,2]}}"#,
        );
        assert_eq!(ev.name, "pageview");
        assert_eq!(one(r#"{"url":"u","name":""}"#).name, "pageview");
        assert_eq!(one(r#"{"url":"u","name":null}"#).name, "pageview");
        assert_eq!(ev.referrer, None);
        assert_eq!(ev.timings.cls, None);
        // site is optional at this layer: the pipeline rejects its absence.
        assert_eq!(one(r#"{"url":"u"}"#).site, None);
    }

    #[test]
    fn strings_are_borrowed_and_unescaped() {
        let ev = one(r#"{"site":"a.com","url":"https://a.com/caf\u00e9?q=\"x\""}"#);
        assert_eq!(ev.url, "https://a.com/café?q=\"x\"");
        assert!(matches!(ev.url, std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn array_partial_acceptance() {
        let p = parsed(&format!(
            r#"[{OK}, {{"site":"a.com"}}, 5, {OK}, {{"url":"u","ts":-1}}]"#
        ));
        let idx: Vec<usize> = p.events.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![0, 3]);
        let rej: Vec<(usize, &str)> = p
            .rejected
            .iter()
            .map(|r| (r.index, r.error.field()))
            .collect();
        assert_eq!(rej, vec![(1, "url"), (2, "event"), (4, "ts")]);
    }

    #[test]
    fn ndjson_blank_lines_crlf_and_bad_lines() {
        let body = format!("{OK}\r\n\r\n{{\"site\":\"a.com\"}}\r\n{{bad json\n  \n{OK}");
        let p = parsed(&body);
        let idx: Vec<usize> = p.events.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![0, 5]);
        assert_eq!(p.rejected.len(), 2);
        assert_eq!(
            (p.rejected[0].index, p.rejected[0].error.field()),
            (2, "url")
        );
        assert_eq!(p.rejected[1].index, 3);
        assert!(matches!(&p.rejected[1].error, Error::Malformed { field, .. } if field == "event"));
        // A trailing newline is not an event.
        assert_eq!(parsed(&format!("{OK}\n{OK}\n")).events.len(), 2);
    }

    #[test]
    fn single_object_pretty_printed() {
        let ev = one("{\n  \"site\": \"a.com\",\n  \"url\": \"https://a.com/\",\n  \"props\": {\n    \"k\": \"v\"\n  }\n}\n");
        assert_eq!(ev.props.len(), 1);
    }

    #[test]
    fn request_level_errors() {
        let err = |b: &str| parsed_with(b, &Limits::default()).unwrap_err();
        assert!(matches!(err(""), Error::Malformed { field, .. } if field == "body"));
        assert!(matches!(err("  \n "), Error::Malformed { .. }));
        assert!(matches!(err("[{\"site\":"), Error::Malformed { .. }));
        assert!(matches!(err("\"str\""), Error::WrongType { field, .. } if field == "body"));
        assert!(matches!(err("{\"a\":1} x"), Error::Malformed { .. }));
        // Invalid UTF-8, in a single body and in one NDJSON line.
        let bad = |bytes: &[u8]| {
            let b = Box::leak(bytes.to_vec().into_boxed_slice());
            parse_own(b, &Limits::default()).unwrap_err()
        };
        assert!(
            matches!(bad(b"{\"site\":\"\xff\",\"url\":\"u\"}"), Error::Malformed { field, .. } if field == "body")
        );
        let mut nd = format!("{OK}\n").into_bytes();
        nd.extend_from_slice(b"{\"site\":\"\xc3\x28\",\"url\":\"u\"}");
        assert!(matches!(bad(&nd), Error::Malformed { field, .. } if field == "body"));
    }

    #[test]
    fn lone_surrogate_escape_is_malformed() {
        let e = parsed_with(r#"{"site":"a","url":"\ud800"}"#, &Limits::default()).unwrap_err();
        assert!(
            matches!(&e, Error::Malformed { field, .. } if field == "body"),
            "{e:?}"
        );
        // In NDJSON it rejects the line only.
        let p = parsed(&format!("{OK}\n{{\"site\":\"a\",\"url\":\"\\udc00x\"}}"));
        assert_eq!(p.events.len(), 1);
        assert!(matches!(p.rejected[0].error, Error::Malformed { .. }));
        // A valid pair is fine.
        assert_eq!(one(r#"{"site":"a","url":"\ud83d\ude00"}"#).url, "😀");
    }

    #[test]
    fn numbers() {
        let field_err = |b: &str| {
            let e = reject(b);
            (e.code(), e.field().to_owned())
        };
        let base = |kv: &str| format!(r#"{{"site":"a","url":"u",{kv}}}"#);
        assert_eq!(
            field_err(&base(r#""ttfb_ms":4294967296"#)),
            ("out_of_range", "ttfb_ms".into())
        );
        assert_eq!(
            one(&base(r#""ttfb_ms":4294967295"#)).timings.ttfb_ms,
            Some(u32::MAX)
        );
        assert_eq!(
            field_err(&base(r#""lcp_ms":-5"#)),
            ("out_of_range", "lcp_ms".into())
        );
        assert_eq!(
            field_err(&base(r#""fcp_ms":1.5"#)),
            ("wrong_type", "fcp_ms".into())
        );
        assert_eq!(
            field_err(&base(r#""inp_ms":"3""#)),
            ("wrong_type", "inp_ms".into())
        );
        assert_eq!(
            field_err(&base(r#""load_ms":true"#)),
            ("wrong_type", "load_ms".into())
        );
        assert_eq!(
            field_err(&base(r#""ts":18446744073709551615"#)),
            ("out_of_range", "ts".into())
        );
        assert_eq!(one(&base(r#""ts":9223372036854775807"#)).ts, Some(i64::MAX));
        assert_eq!(
            field_err(&base(r#""cls":-0.1"#)),
            ("out_of_range", "cls".into())
        );
        assert_eq!(
            field_err(&base(r#""cls":1e39"#)),
            ("out_of_range", "cls".into())
        );
        assert_eq!(one(&base(r#""cls":1"#)).timings.cls, Some(1.0));
        assert_eq!(
            one(&base(r#""screen_width":65536"#)).screen_width,
            Some(65535)
        );
        assert_eq!(
            field_err(&base(r#""screen_width":-1"#)),
            ("out_of_range", "screen_width".into())
        );
        assert_eq!(
            field_err(&base(r#""engagement_ms":1e3"#)),
            ("wrong_type", "engagement_ms".into())
        );
        assert_eq!(one(&base(r#""scroll_depth":250"#)).scroll_depth, Some(100));
    }

    #[test]
    fn integers_past_u64_are_out_of_range() {
        // simd-json's `big-int-as-float` turns them into floats; they are still
        // integers, too large for any field.
        let base = |kv: &str| format!(r#"{{"site":"a","url":"u",{kv}}}"#);
        for v in [
            "18446744073709551616",
            &"9".repeat(30),
            "-99999999999999999999",
            // One below i64::MIN: as a float it rounds to i64::MIN itself.
            "-9223372036854775809",
        ] {
            let e = reject(&base(&format!(r#""ts":{v}"#)));
            assert!(
                matches!(&e, Error::OutOfRange { field, .. } if field == "ts"),
                "{v}: {e:?}"
            );
        }
        let e = reject(&base(r#""screen_width":1e30"#));
        assert!(
            matches!(&e, Error::OutOfRange { field, .. } if field == "screen_width"),
            "{e:?}"
        );
        // A float overflowing f64 is a number simd-json refuses: the body is malformed.
        let e = parsed_with(&base(r#""cls":1e400"#), &Limits::default()).unwrap_err();
        assert!(
            matches!(&e, Error::Malformed { field, .. } if field == "body"),
            "{e:?}"
        );
    }

    #[test]
    fn props_numbers_are_reprinted_from_the_parsed_value() {
        let ev = one(
            r#"{"site":"a","url":"u","props":{"a":1.50,"b":1e2,"c":1.0,"d":-2,"e":2.5E-3,"f":true}}"#,
        );
        let got: Vec<(&str, &str)> = ev.props.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            got,
            [
                ("a", "1.5"),
                ("b", "100"),
                ("c", "1"),
                ("d", "-2"),
                ("e", "0.0025"),
                ("f", "true")
            ]
        );
    }

    #[test]
    fn props_strict_types_and_duplicates() {
        assert!(matches!(
            reject(r#"{"site":"a","url":"u","props":{"k":{"x":1}}}"#),
            Error::WrongType { field, .. } if field == "props.k"
        ));
        assert!(matches!(
            reject(r#"{"site":"a","url":"u","props":"{}"}"#),
            Error::WrongType { field, .. } if field == "props"
        ));
        assert!(matches!(
            reject(r#"{"site":"a","url":"u","props":{"k":"1","k":"1"}}"#),
            Error::Invalid { field, .. } if field == "props.k"
        ));
        assert!(matches!(
            reject(r#"{"site":"a","url":"u","site":"b"}"#),
            Error::Invalid { field, .. } if field == "site"
        ));
        // A repeated unknown key is ignored, like any unknown key.
        assert_eq!(
            one(r#"{"site":"a","url":"u","x":1,"x":{"y":2}}"#)
                .site
                .as_deref(),
            Some("a")
        );
        let ev = one(r#"{"site":"a","url":"u","props":{"empty":"","null":null}}"#);
        assert_eq!(ev.props, vec![("empty".into(), "".into())]);
    }
}
