//! The fast path of the JSON decoder: one flat event object, as trackers send it.
//!
//! Almost every event a tracker sends is one JSON object of short ASCII strings without
//! escapes, small integers, and at most a flat `props` object. For those, a single
//! pass over the bytes finds every field, checks every limit and decodes the event,
//! with no tape in between; simd-json's two stages (a structural index, then a tape)
//! plus the walk over the tape cost about three times as much per event.
//!
//! The rule that keeps it exact: the fast path either decodes an event that the
//! simd-json path ([`super::json::decode_event`]) would decode to the *same*
//! [`RawEvent`], or it gives up and the caller runs the simd-json path on the same
//! bytes. It gives up on anything unusual — a backslash or a non-ASCII byte, a negative
//! or long number, a float outside the exactly-representable range, a nested value,
//! any limit or type error, a duplicate key — so every error a client sees still comes
//! from one place, and the fast path never has to agree with it on a message.
//! `tests` checks the equality on generated and mutated bodies; the `json_fast_path`
//! fuzz target does the same on arbitrary bytes.
//!
//! Hand-written, not a crate: no JSON crate decodes into borrowed spans of a
//! mutable buffer while deferring to simd-json on exactly the inputs it cannot do
//! alone. No `unsafe`: the line is checked to be ASCII, then turned into a `&str` once.
//!
//! Here: the entry points, the scan of one event object and its props. The byte-level
//! pieces (strings, numbers, literals, members) are in `lex`, the known keys' 16-byte
//! patterns in `keys`.

use std::borrow::Cow;
use std::ops::Range;

mod keys;
mod lex;

use super::fields::{Dialect, Field, Seen};
use super::json::{new_event, set_number, JsonParser, Num};
use super::Parsed;
use crate::{Error, Limits, RawEvent, Rejection, Timings};
use keys::{key_patterns, predicted_key};
use lex::{
    key, literal, next_member, number, skip_scalar, skip_ws, string, string_or_null, string_within,
};

/// Decodes `body` as one event object if it is of the simple kind described above,
/// and pushes it into `out` as event `index`; otherwise hands `body` back untouched
/// for the simd-json path. `scan` is scratch space kept between calls.
pub(crate) fn decode<'a>(
    body: &'a mut [u8],
    dialect: &Dialect,
    limits: &Limits,
    scan: &mut Scan,
    out: &mut Parsed<'a>,
    index: usize,
) -> Option<&'a mut [u8]> {
    if !scan.run(body, dialect, limits) {
        return Some(body);
    }
    scan.push(body, out, index);
    None
}

/// [`decode`] of a body that cannot be modified, already known to be UTF-8: false
/// (nothing pushed) when the simd-json path must decode it.
pub(crate) fn decode_str<'a>(
    body: &'a str,
    dialect: &Dialect,
    limits: &Limits,
    scan: &mut Scan,
    out: &mut Parsed<'a>,
    index: usize,
) -> bool {
    let taken = scan.run(body.as_bytes(), dialect, limits);
    if taken {
        out.events.push((index, scan.build(body)));
    }
    taken
}

/// The first NDJSON line of `text` (up to its first `\n` or its end) through the fast
/// path, found by the scan itself: the line's length when the scan took it as an event
/// (then [`Scan::build`] of the line gives the event), `None` when the caller must find
/// the line's end and give it to the simd-json path. Finding each line with a `memchr`
/// first cost a call and a second pass over its bytes per event.
pub(crate) fn line_len(
    text: &str,
    dialect: &Dialect,
    limits: &Limits,
    scan: &mut Scan,
) -> Option<usize> {
    scan.reset();
    let b = text.as_bytes();
    let end = scan.scan(b, dialect, limits)?;
    matches!(b.get(end), None | Some(b'\n')).then_some(end)
}

/// A whole body that is one event object (Plausible's body, or our own format's single
/// object), through the fast path when `parser` has it on and it takes the body. The
/// one-event limit must hold for it, as the simd-json path checks. `Err` hands the
/// body back for the simd-json path.
pub(crate) fn one_object<'a>(
    body: &'a mut [u8],
    dialect: &Dialect,
    limits: &Limits,
    parser: &mut JsonParser,
) -> std::result::Result<Parsed<'a>, &'a mut [u8]> {
    if !parser.fast || limits.max_events_per_request < 1 {
        return Err(body);
    }
    let mut out = Parsed::default();
    match decode(body, dialect, limits, &mut parser.scan, &mut out, 0) {
        None => Ok(out),
        Some(body) => Err(body),
    }
}

/// [`one_object`] of a body that cannot be modified, else the simd-json path's
/// `parse` of a copy, whose events then own their strings.
pub(crate) fn one_object_or_copy<'a>(
    body: &'a [u8],
    dialect: &Dialect,
    limits: &Limits,
    parser: &mut JsonParser,
    parse: for<'b> fn(&mut JsonParser, &'b mut [u8], &Limits) -> crate::Result<Parsed<'b>>,
) -> crate::Result<Parsed<'a>> {
    if parser.fast && limits.max_events_per_request >= 1 {
        if let Ok(text) = simdutf8::basic::from_utf8(body) {
            let mut out = Parsed::default();
            if decode_str(text, dialect, limits, &mut parser.scan, &mut out, 0) {
                return Ok(out);
            }
        }
    }
    let mut copy = body.to_vec();
    parse(parser, &mut copy, limits).map(super::into_owned)
}

/// A prop value found by the scan.
enum PropValue {
    /// A string: its bytes in the body.
    Str(Range<usize>),
    /// A number or boolean, as the text the simd-json path gives it.
    Text(Cow<'static, str>),
}

/// The event as byte ranges of the body, plus the fields that are not strings; kept by
/// the parser between events so that neither it nor its props list is re-made per event.
pub(crate) struct Scan {
    /// The numeric fields (only those are used).
    nums: RawEvent<'static>,
    site: Option<Range<usize>>,
    url: Option<Range<usize>>,
    name: Option<Range<usize>>,
    referrer: Option<Range<usize>>,
    props: Vec<(Range<usize>, PropValue)>,
}

impl Default for Scan {
    fn default() -> Self {
        Scan {
            nums: new_event(),
            site: None,
            url: None,
            name: None,
            referrer: None,
            props: Vec::new(),
        }
    }
}

impl Scan {
    pub(crate) fn reset(&mut self) {
        let n = &mut self.nums;
        n.screen_width = None;
        n.ts = None;
        n.timings = Timings::default();
        n.scroll_depth = None;
        n.engagement_ms = None;
        self.site = None;
        self.url = None;
        self.name = None;
        self.referrer = None;
        self.props.clear();
    }

    /// Pushes the event of the last successful [`Scan::run`] over `body` into `out`.
    fn push<'a>(&mut self, body: &'a [u8], out: &mut Parsed<'a>, index: usize) {
        // `run` accepted only ASCII bytes, so this cannot fail; if it ever did, the
        // answer would be the simd-json path's answer for such bytes.
        match std::str::from_utf8(body) {
            Ok(text) => out.events.push((index, self.build(text))),
            Err(e) => out.rejected.push(Rejection {
                index,
                error: Error::Malformed {
                    field: "body".into(),
                    reason: format!("not valid UTF-8: {e}"),
                },
            }),
        }
    }

    /// The event of the last successful [`Scan::run`] over `text`. Inlined, so that
    /// the event is built in its place in the caller's `Vec` (returned, it was built
    /// and then copied there: two 200-byte copies an event).
    #[inline(always)]
    pub(crate) fn build<'a>(&mut self, text: &'a str) -> RawEvent<'a> {
        let s = |r: Range<usize>| Cow::Borrowed(&text[r]);
        let n = &self.nums;
        RawEvent {
            site: self.site.take().map(s),
            url: s(self.url.take().unwrap_or(0..0)),
            name: self.name.take().map_or(Cow::Borrowed("pageview"), s),
            referrer: self.referrer.take().map(s),
            screen_width: n.screen_width,
            ts: n.ts,
            props: if self.props.is_empty() {
                Vec::new()
            } else {
                self.props
                    .drain(..)
                    .map(|(k, v)| {
                        let v = match v {
                            PropValue::Str(r) => s(r),
                            PropValue::Text(t) => t,
                        };
                        (s(k), v)
                    })
                    .collect()
            },
            timings: n.timings,
            scroll_depth: n.scroll_depth,
            engagement_ms: n.engagement_ms,
        }
    }
}

impl Scan {
    /// Scans `b` into `self`: true when it is an event object the fast path takes
    /// (whitespace after it, newlines included, is allowed).
    fn run(&mut self, b: &[u8], dialect: &Dialect, limits: &Limits) -> bool {
        self.reset();
        self.scan(b, dialect, limits).is_some_and(|end| {
            b[end..]
                .iter()
                .all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        })
    }

    /// Scans one event object at the start of `b`, stopping at a raw `\n` (see
    /// [`skip_ws`]): where it stopped after the object and the whitespace that follows
    /// it on its line (`b.len()` or a `\n`; anything else there is `None`).
    fn scan(&mut self, b: &[u8], dialect: &Dialect, limits: &Limits) -> Option<usize> {
        // The props object is at depth 2; leave shallower limits to simd-json's check.
        if limits.max_depth < 2 {
            return None;
        }
        let mut i = skip_ws(b, 0);
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let sp = self;
        let mut seen = Seen::default();
        let mut more = if b.get(i) == Some(&b'}') {
            i = skip_ws(b, i + 1);
            false
        } else {
            true
        };
        let keys = key_patterns(dialect);
        let mut next_key = 0;
        while more {
            let field = match predicted_key(b, &mut i, keys, &mut next_key) {
                Some(f) => Some(f),
                None => {
                    let k = key(b, &mut i)?;
                    dialect.field(&b[k])
                }
            };
            match field {
                None => skip_scalar(b, &mut i)?,
                Some(f) => {
                    seen.insert(f).ok()?;
                    match f {
                        Field::Site => {
                            sp.site = match string_or_null(b, &mut i)? {
                                Some(r) => {
                                    let r = site_range(b, r, dialect.plausible);
                                    if r.len() > limits.max_site_len {
                                        return None;
                                    }
                                    (!r.is_empty()).then_some(r)
                                }
                                None => None,
                            }
                        }
                        Field::Url => sp.url = string_within(b, &mut i, limits.max_url_len)?,
                        Field::Name => {
                            let name = string_within(b, &mut i, limits.max_name_len)?;
                            if let Some(r) = name.filter(|r| !r.is_empty()) {
                                sp.name = Some(r);
                            }
                        }
                        Field::Referrer => {
                            sp.referrer = string_within(b, &mut i, limits.max_referrer_len)?
                        }
                        Field::Props => match b.get(i)? {
                            b'{' => props(b, &mut i, dialect.plausible, limits, &mut sp.props)?,
                            b'n' if literal(b, &mut i, b"null") => {}
                            _ => return None,
                        },
                        _ => {
                            if !literal(b, &mut i, b"null") {
                                let n = match b.get(i)? {
                                    b'0'..=b'9' => number(b, &mut i)?,
                                    _ => return None,
                                };
                                set_number(&mut sp.nums, f, n).ok()?;
                            }
                        }
                    }
                }
            }
            more = next_member(b, &mut i)?;
        }
        if !matches!(b.get(i), None | Some(b'\n')) {
            return None;
        }
        sp.url.as_ref()?;
        Some(i)
    }
}

/// The site id's range: for Plausible, the first of a comma-separated list, trimmed
/// (as [`super::json::site_value`] does; on ASCII without control characters, the only
/// whitespace `str::trim` can meet is the space).
fn site_range(b: &[u8], r: Range<usize>, plausible: bool) -> Range<usize> {
    if !plausible {
        return r;
    }
    let s = &b[r.clone()];
    let end = memchr::memchr(b',', s).unwrap_or(s.len());
    let s = &s[..end];
    let lead = s.iter().take_while(|&&c| c == b' ').count();
    let trail = s[lead..].iter().rev().take_while(|&&c| c == b' ').count();
    r.start + lead..r.start + end - trail
}

/// A flat props object at `b[*i] == '{'`, with the checks of `push_prop`.
fn props(
    b: &[u8],
    i: &mut usize,
    plausible: bool,
    limits: &Limits,
    out: &mut Vec<(Range<usize>, PropValue)>,
) -> Option<()> {
    *i = skip_ws(b, *i + 1);
    if b.get(*i) == Some(&b'}') {
        *i += 1;
        return Some(());
    }
    loop {
        let k = key(b, i)?;
        if k.len() > limits.max_prop_key_len {
            return None;
        }
        let value =
            match b.get(*i)? {
                b'"' => {
                    let r = string(b, i)?;
                    (!(plausible && r.is_empty())).then_some(PropValue::Str(r))
                }
                b'n' => literal(b, i, b"null").then_some(None)?,
                b't' => literal(b, i, b"true")
                    .then_some(Some(PropValue::Text(Cow::Borrowed("true"))))?,
                b'f' => literal(b, i, b"false")
                    .then_some(Some(PropValue::Text(Cow::Borrowed("false"))))?,
                b'0'..=b'9' => Some(PropValue::Text(Cow::Owned(match number(b, i)? {
                    Num::Int(u) => u.to_string(),
                    Num::Float(x) => x.to_string(),
                    Num::Neg(_) => return None,
                }))),
                _ => return None,
            };
        if let Some(v) = value {
            let len = match &v {
                PropValue::Str(r) => r.len(),
                PropValue::Text(t) => t.len(),
            };
            if len > limits.max_prop_value_len
                || out.len() >= limits.max_props
                || out.iter().any(|(ok, _)| b[ok.clone()] == b[k.clone()])
            {
                return None;
            }
            out.push((k, v));
        }
        if !next_member(b, i)? {
            // `next_member` skipped the whitespace after `}`; the caller expects `*i`
            // right after the value, which is equivalent.
            return Some(());
        }
    }
}

#[cfg(test)]
mod tests;
