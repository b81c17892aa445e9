//! The JSON side shared by the Plausible and own formats: running simd-json over a
//! slice into a reusable tape, and turning one tape object into a [`RawEvent`].
//!
//! Strings are taken straight from the tape, which points into the request body
//! (simd-json unescapes in place), so no field is copied into a `String` unless it
//! had to be converted (a number or boolean prop value, a JSON-encoded props string).

use std::borrow::Cow;

use simd_json::{Buffers, Node, StaticNode, Tape};

use super::fields::{Dialect, Field, Seen};
use crate::{Error, Limits, RawEvent, Result};

/// Reusable simd-json state: the stage-1/stage-2 buffers and the tape allocation.
///
/// simd-json's own depth check is used as the nesting limit: stage 1 (a linear SIMD
/// scan that any parse pays anyway) finds the structural characters, and stage 2 stops
/// at the first container that opens deeper than the limit, with a stack bounded by
/// the limit, so a 10^5-deep body costs one linear scan and nothing more. A separate
/// byte scan before it would cost an extra pass over every valid body.
pub(crate) struct JsonParser {
    buffers: Buffers,
    max_depth: usize,
    tape: Option<Tape<'static>>,
    /// Try the fast path ([`super::flat`]) before simd-json; off only in tests that
    /// compare the two.
    pub(crate) fast: bool,
    /// The fast path's scratch space.
    pub(crate) scan: super::flat::Scan,
}

impl Default for JsonParser {
    fn default() -> Self {
        JsonParser {
            buffers: Buffers::new(0),
            max_depth: usize::MAX,
            tape: None,
            fast: true,
            scan: super::flat::Scan::default(),
        }
    }
}

impl JsonParser {
    /// A tape to fill, with the allocation of the previous one.
    pub(crate) fn take_tape<'a>(&mut self) -> Tape<'a> {
        match self.tape.take() {
            Some(t) => t.reset(),
            None => Tape::null(),
        }
    }

    /// Hands the tape's allocation back for the next request.
    pub(crate) fn give_tape(&mut self, tape: Tape<'_>) {
        self.tape = Some(tape.reset());
    }

    /// Parses one JSON value from `input` into `tape`, limiting nesting to `max_depth`
    /// (the top-level value is depth 1). Errors name `field`.
    pub(crate) fn fill<'a>(
        &mut self,
        input: &'a mut [u8],
        max_depth: usize,
        field: &str,
        tape: &mut Tape<'a>,
    ) -> Result<()> {
        if self.max_depth != max_depth {
            self.buffers = Buffers::with_max_depth(input.len(), max_depth);
            self.max_depth = max_depth;
        }
        simd_json::fill_tape(input, &mut self.buffers, tape)
            .map_err(|e| json_error(&e, field, max_depth))
    }
}

/// Maps a simd-json error to ours: depth is its own variant, the rest is `Malformed`.
fn json_error(e: &simd_json::Error, field: &str, max_depth: usize) -> Error {
    use simd_json::ErrorType as T;
    let reason = match e.error() {
        T::DepthLimitExceeded => {
            return Error::TooDeep {
                field: field.to_owned(),
                limit: max_depth,
            }
        }
        T::InvalidUtf8 => "not valid UTF-8".to_owned(),
        T::InvalidUnicodeCodepoint | T::InvalidUnicodeEscape => {
            format!("invalid \\u escape (lone surrogate?) at byte {}", e.index())
        }
        _ => e.to_string(),
    };
    Error::Malformed {
        field: field.to_owned(),
        reason,
    }
}

/// Number of tape nodes the value starting at `nodes[0]` spans (itself included).
#[inline]
pub(crate) fn span(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

/// Iterates `(key, value nodes)` of the object whose header is `nodes[0]`.
pub(crate) fn object_iter<'t, 'a>(
    nodes: &'t [Node<'a>],
) -> impl Iterator<Item = (&'a str, &'t [Node<'a>])> + 't {
    let len = match nodes.first() {
        Some(Node::Object { len, .. }) => *len,
        _ => 0,
    };
    let mut i = 1;
    (0..len).map_while(move |_| {
        // simd-json guarantees a string key before every value.
        let &Node::String(key) = nodes.get(i)? else {
            return None;
        };
        let value = nodes.get(i + 1)?;
        let v = nodes.get(i + 1..i + 1 + span(value))?;
        i += 1 + v.len();
        Some((key, v))
    })
}

/// Iterates the element values of the array whose header is `nodes[0]`.
pub(crate) fn array_iter<'t, 'a>(nodes: &'t [Node<'a>]) -> impl Iterator<Item = &'t [Node<'a>]> {
    let len = match nodes.first() {
        Some(Node::Array { len, .. }) => *len,
        _ => 0,
    };
    let mut i = 1;
    (0..len).map_while(move |_| {
        let v = nodes.get(i..i + span(nodes.get(i)?))?;
        i += v.len();
        Some(v)
    })
}

/// A new event with the defaults of every format (`name` = `pageview`).
pub(crate) fn new_event<'a>() -> RawEvent<'a> {
    RawEvent {
        name: Cow::Borrowed("pageview"),
        ..RawEvent::default()
    }
}

/// Decodes one event object. `nodes[0]` must be the object header; anything else is
/// `WrongType { field: "event" }`.
pub(crate) fn decode_event<'a>(
    nodes: &[Node<'a>],
    dialect: &Dialect,
    limits: &Limits,
    parser: &mut JsonParser,
) -> Result<RawEvent<'a>> {
    if !matches!(nodes.first(), Some(Node::Object { .. })) {
        return Err(Error::WrongType {
            field: "event".into(),
            expected: "object",
        });
    }
    let mut ev = new_event();
    let mut seen = Seen::default();
    let mut url = None;
    for (key, v) in object_iter(nodes) {
        let Some(f) = dialect.field(key.as_bytes()) else {
            continue; // unknown keys are ignored: see the crate docs
        };
        seen.insert(f)?;
        match f {
            Field::Site => {
                let site = string(v, f, usize::MAX)?;
                ev.site = site
                    .map(|s| site_value(s, dialect.plausible, limits))
                    .transpose()?
                    .filter(|s| !s.is_empty())
                    .map(Cow::Borrowed);
            }
            Field::Url => url = string(v, f, limits.max_url_len)?,
            Field::Name => {
                // Empty is absent, as in the pixel: a nameless event is a page view.
                if let Some(n) = string(v, f, limits.max_name_len)?.filter(|n| !n.is_empty()) {
                    ev.name = Cow::Borrowed(n);
                }
            }
            Field::Referrer => {
                ev.referrer = string(v, f, limits.max_referrer_len)?.map(Cow::Borrowed)
            }
            Field::Props => props(v, dialect.plausible, limits, parser, &mut ev.props)?,
            _ => {
                let n = number(v, f)?;
                if let Some(n) = n {
                    set_number(&mut ev, f, n)?;
                }
            }
        }
    }
    ev.url = Cow::Borrowed(url.ok_or_else(|| Error::Missing {
        field: "url".into(),
    })?);
    Ok(ev)
}

/// The site id: for Plausible, the first of a comma-separated list, trimmed (Plausible
/// records the event for every listed domain; we keep one row per event).
pub(crate) fn site_value<'s>(s: &'s str, plausible: bool, limits: &Limits) -> Result<&'s str> {
    let s = if plausible {
        s.split(',').next().unwrap_or("").trim()
    } else {
        s
    };
    if s.len() > limits.max_site_len {
        return Err(Error::TooLong {
            field: "site".into(),
            limit: limits.max_site_len,
        });
    }
    Ok(s)
}

/// A string field: null → `None`, a string within `max` bytes → `Some`.
fn string<'a>(v: &[Node<'a>], f: Field, max: usize) -> Result<Option<&'a str>> {
    match v[0] {
        Node::String(s) if s.len() > max => Err(Error::TooLong {
            field: f.name().into(),
            limit: max,
        }),
        Node::String(s) => Ok(Some(s)),
        Node::Static(StaticNode::Null) => Ok(None),
        _ => Err(Error::WrongType {
            field: f.name().into(),
            expected: "string",
        }),
    }
}

/// A JSON number as the numeric fields see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    /// A non-negative integer.
    Int(u64),
    /// A negative integer.
    Neg(i64),
    /// A number written with a fraction or an exponent.
    Float(f64),
}

/// A numeric field: null → `None`.
fn number(v: &[Node<'_>], f: Field) -> Result<Option<Num>> {
    #[allow(unreachable_patterns)] // 128-bit variants exist only with simd-json's `128bit`
    match v[0] {
        Node::Static(StaticNode::Null) => Ok(None),
        Node::Static(StaticNode::U64(u)) => Ok(Some(Num::Int(u))),
        Node::Static(StaticNode::I64(i)) if i >= 0 => Ok(Some(Num::Int(i as u64))),
        Node::Static(StaticNode::I64(i)) => Ok(Some(Num::Neg(i))),
        Node::Static(StaticNode::F64(x)) => Ok(Some(Num::Float(x))),
        Node::Static(StaticNode::Bool(_))
        | Node::String(_)
        | Node::Object { .. }
        | Node::Array { .. } => Err(Error::WrongType {
            field: f.name().into(),
            expected: "number",
        }),
        _ => Err(Error::OutOfRange {
            field: f.name().into(),
            reason: "number out of range".into(),
        }),
    }
}

/// Stores a numeric field into the event, checking its type and range:
/// integers for everything but `cls`; `screen_width` is clamped to 65535 and
/// `scroll_depth` to 100 (a browser may round past them); other out-of-range values,
/// negatives and non-finite numbers are `OutOfRange`.
#[inline(always)]
pub(crate) fn set_number(ev: &mut RawEvent<'_>, f: Field, n: Num) -> Result<()> {
    let out = |reason: &str| Error::OutOfRange {
        field: f.name().into(),
        reason: reason.into(),
    };
    if f == Field::Cls {
        let x = match n {
            Num::Int(u) => u as f64,
            Num::Neg(_) => return Err(out("negative")),
            Num::Float(x) => x,
        };
        if !x.is_finite() || x < 0.0 || x > f32::MAX as f64 {
            return Err(out("must be a finite number >= 0"));
        }
        ev.timings.cls = Some(x as f32);
        return Ok(());
    }
    let u = match n {
        Num::Int(u) => u,
        Num::Neg(_) => return Err(out("negative")),
        // An integer literal past u64 arrives as a float (simd-json's
        // `big-int-as-float`): it is an integer, just too large.
        Num::Float(x) if x.fract() == 0.0 && x >= u64::MAX as f64 => {
            return Err(out("larger than 18446744073709551615"))
        }
        // `<=`: the first integer below i64::MIN (…809) rounds to i64::MIN as a float,
        // and i64::MIN itself arrives as an integer, so a whole float there is past it.
        Num::Float(x) if x.fract() == 0.0 && x <= i64::MIN as f64 => return Err(out("negative")),
        Num::Float(_) => {
            return Err(Error::WrongType {
                field: f.name().into(),
                expected: "integer",
            })
        }
    };
    let u32_of = |u: u64| u32::try_from(u).map_err(|_| out("larger than 4294967295"));
    match f {
        Field::ScreenWidth => ev.screen_width = Some(u.min(u16::MAX as u64) as u16),
        Field::ScrollDepth => ev.scroll_depth = Some(u.min(100) as u8),
        Field::Ts => {
            ev.ts = Some(i64::try_from(u).map_err(|_| out("larger than i64::MAX"))?);
        }
        Field::TtfbMs => ev.timings.ttfb_ms = Some(u32_of(u)?),
        Field::FcpMs => ev.timings.fcp_ms = Some(u32_of(u)?),
        Field::LcpMs => ev.timings.lcp_ms = Some(u32_of(u)?),
        Field::InpMs => ev.timings.inp_ms = Some(u32_of(u)?),
        Field::LoadMs => ev.timings.load_ms = Some(u32_of(u)?),
        Field::EngagementMs => ev.engagement_ms = Some(u32_of(u)?),
        _ => unreachable!("not a numeric field: {f:?}"),
    }
    Ok(())
}

/// Props pairs as stored in [`RawEvent::props`].
pub(crate) type Props<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// Checks a prop key/value pair against the limits and the pairs already kept, and
/// keeps it. Shared with the pixel format.
pub(crate) fn push_prop<'a>(
    out: &mut Props<'a>,
    key: Cow<'a, str>,
    value: Cow<'a, str>,
    limits: &Limits,
) -> Result<()> {
    if key.len() > limits.max_prop_key_len {
        return Err(Error::TooLong {
            field: "props".into(),
            limit: limits.max_prop_key_len,
        });
    }
    if value.len() > limits.max_prop_value_len {
        return Err(Error::TooLong {
            field: format!("props.{key}"),
            limit: limits.max_prop_value_len,
        });
    }
    // Quadratic, but bounded by max_props (30 by default) and usually 0–3 pairs: a
    // set would cost more than it saves.
    if out.iter().any(|(k, _)| *k == key) {
        return Err(Error::invalid(format!("props.{key}"), "duplicate key"));
    }
    if out.len() >= limits.max_props {
        return Err(Error::TooManyProps {
            field: "props".into(),
            limit: limits.max_props,
        });
    }
    out.push((key, value));
    Ok(())
}

/// The `props` object: string values kept, numbers and booleans turned into their JSON
/// text, null dropped; nested values rejected (own) or dropped (Plausible). Plausible
/// may also send the object JSON-encoded in a string (legacy `m`/`meta`).
fn props<'a>(
    v: &[Node<'a>],
    plausible: bool,
    limits: &Limits,
    parser: &mut JsonParser,
    out: &mut Props<'a>,
) -> Result<()> {
    match v[0] {
        Node::Static(StaticNode::Null) => Ok(()),
        Node::Object { .. } => props_object(v, plausible, limits, out),
        Node::String(s) if plausible => {
            // The string's bytes are borrowed immutably from the body; simd-json needs
            // a mutable buffer, so parse a copy and own the results.
            if s.len() > limits.max_body_bytes {
                return Err(Error::TooLong {
                    field: "props".into(),
                    limit: limits.max_body_bytes,
                });
            }
            let mut copy = s.as_bytes().to_vec();
            let mut tape = Tape::null();
            parser
                .fill(&mut copy, limits.max_depth, "props", &mut tape)
                .map_err(|e| match e {
                    Error::Malformed { reason, .. } => {
                        Error::invalid("props", format!("not a JSON object: {reason}"))
                    }
                    other => other,
                })?;
            if !matches!(tape.0.first(), Some(Node::Object { .. })) {
                return Err(Error::WrongType {
                    field: "props".into(),
                    expected: "object",
                });
            }
            let mut owned = Vec::new();
            props_object(&tape.0, plausible, limits, &mut owned)?;
            out.extend(
                owned
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned()))),
            );
            Ok(())
        }
        _ => Err(Error::WrongType {
            field: "props".into(),
            expected: "object",
        }),
    }
}

fn props_object<'a>(
    v: &[Node<'a>],
    plausible: bool,
    limits: &Limits,
    out: &mut Props<'a>,
) -> Result<()> {
    for (key, val) in object_iter(v) {
        if key.len() > limits.max_prop_key_len {
            return Err(Error::TooLong {
                field: "props".into(),
                limit: limits.max_prop_key_len,
            });
        }
        #[allow(unreachable_patterns)] // 128-bit variants exist only with simd-json's `128bit`
        let value: Cow<'a, str> = match val[0] {
            Node::String("") if plausible => continue,
            Node::String(s) => Cow::Borrowed(s),
            Node::Static(StaticNode::Null) => continue,
            Node::Static(StaticNode::Bool(b)) => Cow::Borrowed(if b { "true" } else { "false" }),
            Node::Static(StaticNode::I64(i)) => Cow::Owned(i.to_string()),
            Node::Static(StaticNode::U64(u)) => Cow::Owned(u.to_string()),
            Node::Static(StaticNode::F64(x)) => Cow::Owned(x.to_string()),
            _ if plausible => continue,
            _ => {
                return Err(Error::WrongType {
                    field: format!("props.{key}"),
                    expected: "string, number or boolean",
                })
            }
        };
        push_prop(out, Cow::Borrowed(key), value, limits)?;
    }
    Ok(())
}
