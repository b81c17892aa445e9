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

use std::borrow::Cow;
use std::ops::Range;

use super::json::{new_event, set_number, Dialect, Field, JsonParser, Num, Seen};
use super::Parsed;
use crate::{Error, Limits, RawEvent, Rejection, Timings};

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
    fn reset(&mut self) {
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

    /// The event of the last successful [`Scan::run`] over `text`.
    fn build<'a>(&mut self, text: &'a str) -> RawEvent<'a> {
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

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `w` that ends a plain string run: `"`, `\`, a control
/// character (< 0x20) or a non-ASCII byte. The lowest set bit is exact (the classic
/// SWAR zero-byte tests can only flag false positives above a true one).
#[inline]
fn specials(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let quote = zero(w ^ (LO * b'"' as u64));
    let backslash = zero(w ^ (LO * b'\\' as u64));
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    quote | backslash | control | (w & HI)
}

/// The string starting at `b[*i] == '"'`: its content's range, with `*i` moved past the
/// closing quote. `None` for escapes, control or non-ASCII bytes, or no closing quote.
#[inline]
fn string(b: &[u8], i: &mut usize) -> Option<Range<usize>> {
    let start = *i + 1;
    let mut j = start;
    while let Some(chunk) = b.get(j..j + 8) {
        let w = u64::from_le_bytes(chunk.try_into().ok()?);
        let m = specials(w);
        if m != 0 {
            j += (m.trailing_zeros() / 8) as usize;
            return close(b, start, j, i);
        }
        j += 8;
    }
    while let Some(&c) = b.get(j) {
        if c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c) {
            break;
        }
        j += 1;
    }
    close(b, start, j, i)
}

#[inline]
fn close(b: &[u8], start: usize, j: usize, i: &mut usize) -> Option<Range<usize>> {
    if b.get(j) != Some(&b'"') {
        return None;
    }
    *i = j + 1;
    Some(start..j)
}

/// A string or `null` at `b[*i]`; anything else is `None` (the caller gives up).
#[inline]
fn string_or_null(b: &[u8], i: &mut usize) -> Option<Option<Range<usize>>> {
    match b.get(*i)? {
        b'"' => string(b, i).map(Some),
        b'n' => literal(b, i, b"null").then_some(None),
        _ => None,
    }
}

/// [`string_or_null`] of at most `max` bytes (a longer one is the simd-json path's
/// `TooLong`).
#[inline]
fn string_within(b: &[u8], i: &mut usize, max: usize) -> Option<Option<Range<usize>>> {
    match string_or_null(b, i)? {
        Some(r) if r.len() > max => None,
        r => Some(r),
    }
}

#[inline]
fn literal(b: &[u8], i: &mut usize, lit: &[u8]) -> bool {
    if b.get(*i..*i + lit.len()) == Some(lit) {
        *i += lit.len();
        true
    } else {
        false
    }
}

/// Powers of ten that are exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A non-negative JSON number at `b[*i]`, of the forms whose value is certain: an
/// integer of at most 18 digits (simd-json's `U64`/`I64`), or a fraction or exponent
/// whose digits fit 2^53 and whose power of ten is at most 22 — one correctly rounded
/// operation on exact operands (Clinger's fast path), so every correct parser gives the
/// same f64. Anything else (a minus sign included) is `None`.
#[inline(always)]
fn number(b: &[u8], i: &mut usize) -> Option<Num> {
    let mut j = *i;
    let mut m: u64 = 0;
    let mut digits = 0u32;
    while let Some(&c @ b'0'..=b'9') = b.get(j) {
        m = m * 10 + (c - b'0') as u64;
        digits += 1;
        j += 1;
        if digits > 18 {
            return None;
        }
    }
    // JSON: at least one digit, and no leading zero before more digits.
    if digits == 0 || (digits > 1 && b[*i] == b'0') {
        return None;
    }
    let mut exp: i32 = 0;
    let mut float = false;
    if b.get(j) == Some(&b'.') {
        float = true;
        j += 1;
        let before = digits;
        while let Some(&c @ b'0'..=b'9') = b.get(j) {
            m = m * 10 + (c - b'0') as u64;
            digits += 1;
            exp -= 1;
            j += 1;
            if digits > 18 {
                return None;
            }
        }
        if digits == before {
            return None;
        }
    }
    if let Some(b'e' | b'E') = b.get(j) {
        float = true;
        j += 1;
        let neg = match b.get(j) {
            Some(b'-') => {
                j += 1;
                true
            }
            Some(b'+') => {
                j += 1;
                false
            }
            _ => false,
        };
        let mut e: i32 = 0;
        let mut n = 0;
        while let Some(&c @ b'0'..=b'9') = b.get(j) {
            e = e * 10 + (c - b'0') as i32;
            n += 1;
            j += 1;
            if n > 3 {
                return None;
            }
        }
        if n == 0 {
            return None;
        }
        exp += if neg { -e } else { e };
    }
    *i = j;
    if !float {
        return Some(Num::Int(m));
    }
    if m > 1 << 53 || !(-22..=22).contains(&exp) {
        return None;
    }
    let x = m as f64;
    Some(Num::Float(if exp >= 0 {
        x * POW10[exp as usize]
    } else {
        x / POW10[(-exp) as usize]
    }))
}

/// Skips a scalar value (an unknown key's); containers and anything unusual are `None`.
#[inline]
fn skip_scalar(b: &[u8], i: &mut usize) -> Option<()> {
    match b.get(*i)? {
        b'"' => string(b, i).map(drop),
        b'n' => literal(b, i, b"null").then_some(()),
        b't' => literal(b, i, b"true").then_some(()),
        b'f' => literal(b, i, b"false").then_some(()),
        b'0'..=b'9' => number(b, i).map(drop),
        _ => None,
    }
}

/// After a value: `,` (more members: `Some(true)`) or `}` (`Some(false)`).
#[inline]
fn next_member(b: &[u8], i: &mut usize) -> Option<bool> {
    // Compact JSON, as trackers send it: `,"` goes straight to the next key.
    if b.get(*i) == Some(&b',') && b.get(*i + 1) == Some(&b'"') {
        *i += 1;
        return Some(true);
    }
    *i = skip_ws(b, *i);
    let c = *b.get(*i)?;
    *i = skip_ws(b, *i + 1);
    match c {
        b',' => Some(true),
        b'}' => Some(false),
        _ => None,
    }
}

/// `"key"` then `:`: the key's range, with `*i` at the value.
#[inline]
fn key(b: &[u8], i: &mut usize) -> Option<Range<usize>> {
    if b.get(*i) != Some(&b'"') {
        return None;
    }
    let k = string(b, i)?;
    *i = skip_ws(b, *i);
    if b.get(*i) != Some(&b':') {
        return None;
    }
    *i = skip_ws(b, *i + 1);
    Some(k)
}

/// A known key as it appears in compact JSON, `"name":`, as the little-endian
/// integer of its bytes: matching it at a position is one 16-byte load, a xor and a
/// mask, where [`key`] scans the string, skips whitespace and looks the name up.
#[derive(Clone, Copy)]
struct KeyPattern {
    bytes: u128,
    mask: u128,
    /// Bytes of `"name":`.
    len: usize,
    field: Field,
}

impl KeyPattern {
    const fn new(name: &str, field: Field) -> Self {
        let n = name.as_bytes();
        assert!(n.len() + 3 <= 16, "key patterns are at most 16 bytes");
        let mut bytes = b'"' as u128;
        let mut k = 0;
        while k < n.len() {
            bytes |= (n[k] as u128) << (8 * (k + 1));
            k += 1;
        }
        bytes |= (b'"' as u128) << (8 * (n.len() + 1));
        bytes |= (b':' as u128) << (8 * (n.len() + 2));
        let len = n.len() + 3;
        let mask = if len == 16 {
            u128::MAX
        } else {
            (1u128 << (8 * len)) - 1
        };
        KeyPattern {
            bytes,
            mask,
            len,
            field,
        }
    }
}

/// The own format's keys: page fields, timings, then props, as the benches' generator
/// writes them and as our tracker writes its page fields (any order is correct; a key where the order expects it costs one comparison, one written out of
/// order costs one per pattern until the match, see [`predicted_key`]).
static OWN_KEYS: [KeyPattern; 15] = [
    KeyPattern::new("site", Field::Site),
    KeyPattern::new("url", Field::Url),
    KeyPattern::new("name", Field::Name),
    KeyPattern::new("referrer", Field::Referrer),
    KeyPattern::new("screen_width", Field::ScreenWidth),
    KeyPattern::new("ts", Field::Ts),
    KeyPattern::new("ttfb_ms", Field::TtfbMs),
    KeyPattern::new("fcp_ms", Field::FcpMs),
    KeyPattern::new("lcp_ms", Field::LcpMs),
    KeyPattern::new("inp_ms", Field::InpMs),
    KeyPattern::new("load_ms", Field::LoadMs),
    KeyPattern::new("cls", Field::Cls),
    KeyPattern::new("scroll_depth", Field::ScrollDepth),
    KeyPattern::new("engagement_ms", Field::EngagementMs),
    KeyPattern::new("props", Field::Props),
];

/// Plausible's keys, short names (its script's) first.
static PLAUSIBLE_KEYS: [KeyPattern; 16] = [
    KeyPattern::new("n", Field::Name),
    KeyPattern::new("u", Field::Url),
    KeyPattern::new("d", Field::Site),
    KeyPattern::new("r", Field::Referrer),
    KeyPattern::new("w", Field::ScreenWidth),
    KeyPattern::new("p", Field::Props),
    KeyPattern::new("m", Field::Props),
    KeyPattern::new("sd", Field::ScrollDepth),
    KeyPattern::new("e", Field::EngagementMs),
    KeyPattern::new("name", Field::Name),
    KeyPattern::new("url", Field::Url),
    KeyPattern::new("domain", Field::Site),
    KeyPattern::new("referrer", Field::Referrer),
    KeyPattern::new("screen_width", Field::ScreenWidth),
    KeyPattern::new("props", Field::Props),
    KeyPattern::new("meta", Field::Props),
];

fn key_patterns(dialect: &Dialect) -> &'static [KeyPattern] {
    if dialect.plausible {
        &PLAUSIBLE_KEYS
    } else {
        &OWN_KEYS
    }
}

/// The known key written as `"name":` at `b[*i]`, tried from `keys[*next]` on (the
/// key after the previous one, so a client's fixed key order costs one comparison
/// per key), with `*i` moved to the value and `*next` past the match. `None` when no
/// pattern matches here: the caller reads the key with [`key`], which gives the same
/// answer for every key a pattern matches (a unit test holds this).
#[inline]
fn predicted_key(b: &[u8], i: &mut usize, keys: &[KeyPattern], next: &mut usize) -> Option<Field> {
    let at = *i;
    // The 16 bytes from `at`; near the end of the line, the last 16 shifted down, so
    // the bytes past the end read as zero, which no pattern byte is.
    let w = if let Some(chunk) = b.get(at..at + 16) {
        u128::from_le_bytes(chunk.try_into().ok()?)
    } else {
        let tail = b.get(b.len().checked_sub(16)?..)?;
        // `at == b.len()` shifts everything out (128 bits: `checked_shr` says 0).
        let shift = 8 * (at + 16).checked_sub(b.len())?;
        u128::from_le_bytes(tail.try_into().ok()?)
            .checked_shr(u32::try_from(shift).ok()?)
            .unwrap_or(0)
    };
    let n = keys.len();
    let mut k = *next;
    for _ in 0..n {
        if k >= n {
            k = 0;
        }
        let p = &keys[k];
        if (w ^ p.bytes) & p.mask == 0 {
            *i = skip_ws(b, at + p.len);
            *next = k + 1;
            return Some(p.field);
        }
        k += 1;
    }
    None
}

impl Scan {
    /// Scans `b` into `self`: true when it is an event object the fast path takes.
    fn run(&mut self, b: &[u8], dialect: &Dialect, limits: &Limits) -> bool {
        self.reset();
        self.scan(b, dialect, limits).is_some()
    }

    fn scan(&mut self, b: &[u8], dialect: &Dialect, limits: &Limits) -> Option<()> {
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
        if i != b.len() {
            return None;
        }
        sp.url.as_ref()?;
        Some(())
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
