//! The no-JavaScript pixel: `GET /e.gif?site=…&url=…` — one event from a query string.
//!
//! Parameter names are the own format's (`site`, `url`, `name`, `referrer`,
//! `screen_width`, `ts`, the timings, `scroll_depth`, `engagement_ms`), plus `w` for
//! `screen_width`. Props are `p.KEY=VALUE` or `props[KEY]=VALUE`. Values are
//! `application/x-www-form-urlencoded` (percent escapes, `+` for space); invalid UTF-8
//! in an escape becomes U+FFFD. An empty value counts as absent. Unknown parameters
//! (cache busters such as `_=123`) are ignored, repeated or not; a repeated known
//! parameter or prop rejects the event.

use std::borrow::Cow;

use url::form_urlencoded;

use super::fields::{Field, Seen};
use super::json::{new_event, push_prop, set_number, site_value, Num};
use super::{check_events, collect, Parsed};
use crate::{Error, Limits, RawEvent, Result};

/// The field a pixel parameter names (`None` for props and unknown names).
fn lookup(key: &str) -> Option<Field> {
    match key {
        "w" => Some(Field::ScreenWidth),
        "props" => None, // only the bracketed / dotted forms carry props
        k => Field::from_own_name(k.as_bytes()),
    }
}

/// `p.KEY` or `props[KEY]` → `KEY`, keeping the borrow when there is one.
fn prop_key<'a>(key: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    let (start, end) = if key.starts_with("p.") {
        (2, key.len())
    } else if key.starts_with("props[") && key.ends_with(']') {
        (6, key.len() - 1)
    } else {
        return None;
    };
    Some(match key {
        Cow::Borrowed(k) => Cow::Borrowed(&k[start..end]),
        Cow::Owned(k) => Cow::Owned(k[start..end].to_owned()),
    })
}

pub(super) fn parse<'a>(query: &'a str, limits: &Limits) -> Result<Parsed<'a>> {
    check_events(1, limits)?;
    let mut out = Parsed::default();
    collect(&mut out, 0, event(query, limits));
    Ok(out)
}

fn event<'a>(query: &'a str, limits: &Limits) -> Result<RawEvent<'a>> {
    let mut ev = new_event();
    let mut seen = Seen::default();
    let mut url = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if let Some(k) = prop_key(&key) {
            if !value.is_empty() {
                push_prop(&mut ev.props, k, value, limits)?;
            }
            continue;
        }
        let Some(f) = lookup(&key) else {
            continue;
        };
        seen.insert(f)?;
        if value.is_empty() {
            continue;
        }
        let max = match f {
            Field::Url => limits.max_url_len,
            Field::Referrer => limits.max_referrer_len,
            Field::Name => limits.max_name_len,
            Field::Site => limits.max_site_len,
            _ => usize::MAX,
        };
        if value.len() > max {
            return Err(Error::TooLong {
                field: f.name().into(),
                limit: max,
            });
        }
        match f {
            Field::Site => {
                site_value(&value, false, limits)?;
                ev.site = Some(value);
            }
            Field::Url => url = Some(value),
            Field::Name => ev.name = value,
            Field::Referrer => ev.referrer = Some(value),
            _ => set_number(&mut ev, f, number(&value, f)?)?,
        }
    }
    ev.url = url.ok_or_else(|| Error::Missing {
        field: "url".into(),
    })?;
    Ok(ev)
}

/// A decimal number from a query value: digits only for integers (a fraction or an
/// exponent is still a number, so `set_number` can say "integer expected").
fn number(s: &str, f: Field) -> Result<Num> {
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if digits(s) {
        return s
            .parse::<u64>()
            .map(Num::Int)
            .map_err(|_| Error::OutOfRange {
                field: f.name().into(),
                reason: "larger than 18446744073709551615".into(),
            });
    }
    if let Some(rest) = s.strip_prefix('-') {
        if digits(rest) {
            return Ok(Num::Neg(-1)); // only the sign matters: negatives are rejected
        }
    }
    // `f64::from_str` also takes "inf" and "NaN": they pass here and fail the range
    // check of `set_number` with OutOfRange, which is the honest reason.
    s.parse::<f64>()
        .map(Num::Float)
        .map_err(|_| Error::WrongType {
            field: f.name().into(),
            expected: "number",
        })
}

#[cfg(test)]
mod tests {
    use super::super::parse_pixel;
    use super::*;

    fn one(q: &'static str) -> RawEvent<'static> {
        let p = parse_pixel(q, &Limits::default()).unwrap();
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        p.events.into_iter().next().unwrap().1
    }

    fn reject(q: &'static str) -> Error {
        let p = parse_pixel(q, &Limits::default()).unwrap();
        assert!(p.events.is_empty());
        assert_eq!(p.rejected[0].index, 0);
        p.rejected.into_iter().next().unwrap().error
    }

    #[test]
    fn every_field() {
        let ev = one(
            "site=a.com&url=https%3A%2F%2Fa.com%2Fx%3Fy%3D1&name=sign+up&referrer=https://b.com/&w=390\
             &ts=1700000000000&ttfb_ms=1&fcp_ms=2&lcp_ms=3&inp_ms=4&load_ms=5&cls=0.25\
             &scroll_depth=50&engagement_ms=7&p.plan=pro&props[seats]=3&_=123",
        );
        assert_eq!(ev.site.as_deref(), Some("a.com"));
        assert_eq!(ev.url, "https://a.com/x?y=1");
        assert_eq!(ev.name, "sign up");
        assert_eq!(ev.referrer.as_deref(), Some("https://b.com/"));
        assert_eq!(ev.screen_width, Some(390));
        assert_eq!(ev.ts, Some(1_700_000_000_000));
        let t = ev.timings;
        assert_eq!(
            (t.ttfb_ms, t.fcp_ms, t.lcp_ms, t.inp_ms, t.load_ms, t.cls),
            (Some(1), Some(2), Some(3), Some(4), Some(5), Some(0.25))
        );
        assert_eq!((ev.scroll_depth, ev.engagement_ms), (Some(50), Some(7)));
        assert_eq!(
            ev.props,
            vec![("plan".into(), "pro".into()), ("seats".into(), "3".into())]
        );
        assert!(matches!(ev.site, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn defaults_and_empty_values() {
        let ev = one("site=a.com&url=u&referrer=&w=&p.x=");
        assert_eq!(ev.name, "pageview");
        assert_eq!((ev.referrer, ev.screen_width), (None, None));
        assert!(ev.props.is_empty());
        assert!(one("url=u").site.is_none());
        assert!(matches!(reject("site=a.com"), Error::Missing { field } if field == "url"));
        assert!(matches!(reject("site=a.com&url="), Error::Missing { .. }));
    }

    #[test]
    fn numbers_and_duplicates() {
        let code = |q: &'static str| {
            let e = reject(q);
            (e.code(), e.field().to_owned())
        };
        assert_eq!(code("url=u&w=-1"), ("out_of_range", "screen_width".into()));
        assert_eq!(code("url=u&w=1.5"), ("wrong_type", "screen_width".into()));
        assert_eq!(code("url=u&w=abc"), ("wrong_type", "screen_width".into()));
        assert_eq!(
            code("url=u&ttfb_ms=99999999999999999999999"),
            ("out_of_range", "ttfb_ms".into())
        );
        assert_eq!(code("url=u&cls=inf"), ("out_of_range", "cls".into()));
        assert_eq!(code("url=u&cls=NaN"), ("out_of_range", "cls".into()));
        assert_eq!(code("url=u&url=v"), ("invalid", "url".into()));
        assert_eq!(
            code("url=u&w=1&screen_width=2"),
            ("invalid", "screen_width".into())
        );
        assert_eq!(
            code("url=u&p.k=1&props[k]=2"),
            ("invalid", "props.k".into())
        );
        assert_eq!(one("url=u&w=70000").screen_width, Some(65535));
        assert_eq!(one("url=u&_=1&_=2").url, "u");
    }

    #[test]
    fn invalid_utf8_escape_is_replaced() {
        assert_eq!(one("url=%FF").url, "\u{FFFD}");
    }
}
