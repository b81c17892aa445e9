//! Plausible's Events API body: what the Plausible tracker (`sendBeacon`, `text/plain`)
//! and server-side integrations (`application/json`) POST to `/api/event`.
//!
//! Field names follow Plausible's server (`Plausible.Ingestion.Request`): short names
//! from the tracker and long names from API users. See the crate docs for the table.

use simd_json::Node;

use super::fields::Dialect;
use super::flat;
use super::json::{decode_event, JsonParser};
use super::{check_body_len, check_events, collect, Parsed};
use crate::{Error, Limits, Result};

pub(super) const DIALECT: Dialect = Dialect { plausible: true };

pub(super) fn parse<'a>(
    parser: &mut JsonParser,
    body: &'a mut [u8],
    limits: &Limits,
) -> Result<Parsed<'a>> {
    check_body_len(body.len(), limits)?;
    let body = match flat::one_object(body, &DIALECT, limits, parser) {
        Ok(out) => return Ok(out),
        Err(body) => body,
    };
    let mut tape = parser.take_tape();
    let res = parser.fill(body, limits.max_depth, "body", &mut tape);
    let out = res.and_then(|()| {
        if !matches!(tape.0.first(), Some(Node::Object { .. })) {
            return Err(Error::WrongType {
                field: "body".into(),
                expected: "object",
            });
        }
        check_events(1, limits)?;
        let mut out = Parsed::default();
        let ev = decode_event(&tape.0, &DIALECT, limits, parser);
        collect(&mut out, 0, ev);
        Ok(out)
    });
    parser.give_tape(tape);
    out
}

/// [`parse`] of a body that cannot be modified: the fast path borrows from `body`;
/// anything else is parsed from a copy and owns its strings.
pub(super) fn parse_slice<'a>(
    parser: &mut JsonParser,
    body: &'a [u8],
    limits: &Limits,
) -> Result<Parsed<'a>> {
    check_body_len(body.len(), limits)?;
    flat::one_object_or_copy(body, &DIALECT, limits, parser, parse)
}

#[cfg(test)]
mod tests {
    use super::super::parse_plausible;
    use crate::{Error, Limits};

    /// Parses one accepted event; the body is leaked so the event can borrow it.
    fn one(body: &str) -> crate::RawEvent<'static> {
        let b = Box::leak(body.as_bytes().to_vec().into_boxed_slice());
        let p = parse_plausible(b, &Limits::default()).unwrap();
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        p.events.into_iter().next().unwrap().1
    }

    fn reject(body: &str) -> Error {
        let mut b = body.as_bytes().to_vec();
        let p = parse_plausible(&mut b, &Limits::default()).unwrap();
        assert!(p.events.is_empty());
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].index, 0);
        p.rejected[0].error.clone()
    }

    fn err(body: &str) -> Error {
        let mut b = body.as_bytes().to_vec();
        parse_plausible(&mut b, &Limits::default()).unwrap_err()
    }

    #[test]
    fn tracker_pageview() {
        // What tracker/src/track.js sends (v = script version, i = interactive, h = hash mode).
        let ev = one(
            r#"{"n":"pageview","v":22,"u":"https://example.com/a?b=1","d":"example.com","r":"https://google.com/","p":{"plan":"pro"},"i":false,"h":1}"#,
        );
        assert_eq!(ev.name, "pageview");
        assert_eq!(ev.url, "https://example.com/a?b=1");
        assert_eq!(ev.site.as_deref(), Some("example.com"));
        assert_eq!(ev.referrer.as_deref(), Some("https://google.com/"));
        assert_eq!(ev.props, vec![("plan".into(), "pro".into())]);
        assert_eq!(ev.screen_width, None);
    }

    #[test]
    fn engagement_event() {
        let ev = one(
            r#"{"n":"engagement","sd":57,"d":"example.com","u":"https://example.com/","p":{},"e":12345,"v":22}"#,
        );
        assert_eq!(ev.name, "engagement");
        assert_eq!(ev.scroll_depth, Some(57));
        assert_eq!(ev.engagement_ms, Some(12345));
        // Rounding past 100 is clamped; a negative depth is out of range.
        assert_eq!(one(r#"{"d":"a","u":"u","sd":101}"#).scroll_depth, Some(100));
        assert!(matches!(
            reject(r#"{"d":"a","u":"u","sd":-1}"#),
            Error::OutOfRange { field, .. } if field == "scroll_depth"
        ));
        assert!(matches!(
            reject(r#"{"d":"a","u":"u","e":4294967296}"#),
            Error::OutOfRange { field, .. } if field == "engagement_ms"
        ));
    }

    #[test]
    fn long_names_and_screen_width() {
        let ev = one(
            r#"{"name":"signup","url":"https://e.com/","domain":"e.com","referrer":"","screen_width":1440,"props":{"a":"b"}}"#,
        );
        assert_eq!(ev.name, "signup");
        assert_eq!(ev.site.as_deref(), Some("e.com"));
        assert_eq!(ev.referrer.as_deref(), Some(""));
        assert_eq!(ev.screen_width, Some(1440));
        assert_eq!(
            one(r#"{"d":"a","u":"u","w":100000}"#).screen_width,
            Some(65535)
        );
        assert_eq!(one(r#"{"d":"a","u":"u"}"#).name, "pageview");
    }

    #[test]
    fn domain_list_takes_the_first() {
        let ev = one(r#"{"d":" a.com , b.com","u":"https://a.com/"}"#);
        assert_eq!(ev.site.as_deref(), Some("a.com"));
        assert_eq!(one(r#"{"d":"","u":"u"}"#).site, None);
        assert_eq!(one(r#"{"u":"u"}"#).site, None);
    }

    #[test]
    fn props_as_json_string_and_scalars() {
        let ev = one(r#"{"d":"a","u":"u","m":"{\"plan\":\"pro\",\"n\":3,\"ok\":true}"}"#);
        assert_eq!(
            ev.props,
            vec![
                ("plan".into(), "pro".into()),
                ("n".into(), "3".into()),
                ("ok".into(), "true".into())
            ]
        );
        // Like Plausible: null, empty, nested values are dropped, the event kept.
        let ev =
            one(r#"{"d":"a","u":"u","p":{"a":null,"b":"","c":[1],"d":{"x":1},"e":1.5,"f":-2}}"#);
        assert_eq!(
            ev.props,
            vec![("e".into(), "1.5".into()), ("f".into(), "-2".into())]
        );
        assert!(matches!(
            reject(r#"{"d":"a","u":"u","p":"not json"}"#),
            Error::Invalid { field, .. } if field == "props"
        ));
        assert!(matches!(
            reject(r#"{"d":"a","u":"u","p":"[1]"}"#),
            Error::WrongType { field, .. } if field == "props"
        ));
        assert!(matches!(
            reject(r#"{"d":"a","u":"u","p":7}"#),
            Error::WrongType { field, .. } if field == "props"
        ));
    }

    #[test]
    fn ignored_fields() {
        let ev = one(
            r#"{"d":"a","u":"u","revenue":{"amount":"10","currency":"EUR"},"$":{"a":1},"interactive":false,"hashMode":1,"v":3}"#,
        );
        assert!(ev.props.is_empty());
    }

    #[test]
    fn duplicates_and_aliases_are_rejected() {
        assert!(matches!(
            reject(r#"{"d":"a","u":"u","n":"x","name":"y"}"#),
            Error::Invalid { field, .. } if field == "name"
        ));
        assert!(matches!(
            reject(r#"{"d":"a","u":"u","u":"v"}"#),
            Error::Invalid { field, .. } if field == "url"
        ));
        assert!(matches!(
            reject(r#"{"d":"a","u":"u","p":{"k":"1","k":"2"}}"#),
            Error::Invalid { field, .. } if field == "props.k"
        ));
    }

    #[test]
    fn request_level_errors() {
        assert!(matches!(err("[]"), Error::WrongType { field, .. } if field == "body"));
        assert!(matches!(err("{\"d\":"), Error::Malformed { field, .. } if field == "body"));
        assert!(matches!(err(""), Error::Malformed { .. }));
        assert!(matches!(err("{} {}"), Error::Malformed { .. }));
        let mut b = br#"{"d":"a","u":"u"}"#.to_vec();
        let limits = Limits {
            max_events_per_request: 0,
            ..Limits::default()
        };
        assert_eq!(
            parse_plausible(&mut b, &limits).unwrap_err(),
            Error::TooManyEvents { limit: 0 }
        );
    }

    #[test]
    fn missing_url_and_wrong_types() {
        assert!(matches!(reject(r#"{"d":"a"}"#), Error::Missing { field } if field == "url"));
        assert!(
            matches!(reject(r#"{"d":"a","u":null}"#), Error::Missing { field } if field == "url")
        );
        assert!(matches!(
            reject(r#"{"d":"a","u":5}"#),
            Error::WrongType { field, .. } if field == "url"
        ));
        assert!(matches!(
            reject(r#"{"d":"a","u":"u","w":"1"}"#),
            Error::WrongType { field, .. } if field == "screen_width"
        ));
        assert!(matches!(
            reject(r#"{"d":"a","u":"u","w":12.5}"#),
            Error::WrongType { field, expected: "integer" } if field == "screen_width"
        ));
    }
}
