//! Wire formats in: request bodies (and the pixel's query string) → [`RawEvent`]s.
//!
//! Three formats, all described in the crate docs (`ingest_core` § *Wire formats*),
//! which are the public contract:
//!
//! - [`Format::Plausible`]: the Plausible Events API body ([`parse_plausible`]);
//! - [`Format::Own`]: our JSON object, array or NDJSON ([`parse_own`]);
//! - [`Format::Pixel`]: a `GET /e.gif?…` query string ([`parse_pixel`]).
//!
//! A problem with the request as a whole (too large, not JSON, too deep, too many
//! events) is an `Err` naming the field `"body"`; a problem with one event is a
//! [`Rejection`] in [`Parsed::rejected`] and the other events are still accepted.
//!
//! The free functions allocate fresh parser buffers per call; a service that parses
//! many requests keeps a [`Parser`] and reuses them.

use crate::{Limits, RawEvent, Rejection, Result};

mod fields;
mod flat;
mod json;
mod own;
mod pixel;
mod plausible;

/// The CORS headers of a tracker route's reply to a preflight (`OPTIONS`): any origin,
/// the tracker's methods and its one request header, cached for a day. Every other
/// tracker reply carries the first, [`CORS_ALLOW_ORIGIN`]. The edge worker and the
/// sink answer with these same headers, so a page's tracker can post to either. Names
/// are lowercase (HTTP/2's spelling, and what `http::HeaderName::from_static` takes).
pub const CORS_PREFLIGHT_HEADERS: [(&str, &str); 4] = [
    CORS_ALLOW_ORIGIN,
    ("access-control-allow-methods", "GET, POST, OPTIONS"),
    ("access-control-allow-headers", "Content-Type"),
    ("access-control-max-age", "86400"),
];

/// The CORS header of every tracker reply, errors included: readable by a page of any
/// origin, without credentials (the tracker sends none, and browsers refuse `*` with
/// credentials anyway).
pub const CORS_ALLOW_ORIGIN: (&str, &str) = ("access-control-allow-origin", "*");

/// The wire format of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plausible's Events API body (`POST /api/event`), sent as `text/plain` or JSON.
    Plausible,
    /// Our own format: one JSON object, a JSON array of objects, or NDJSON (`POST /e`).
    Own,
    /// A pixel query string (`GET /e.gif?site=…&url=…`), without the leading `?`.
    Pixel,
}

/// The events of one request: those that passed the wire checks, each with its index
/// in the request, and those that did not, with the reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed<'a> {
    /// Accepted events with their index (array position, or 0-based NDJSON line).
    pub events: Vec<(usize, RawEvent<'a>)>,
    /// Rejected events, in index order.
    pub rejected: Vec<Rejection>,
}

/// A reusable parser: keeps simd-json's buffers and tape allocation between requests.
///
/// ```
/// use ingest_core::{Format, Limits, Parser};
///
/// let mut parser = Parser::new();
/// let mut body = br#"{"site":"example.com","url":"https://example.com/"}"#.to_vec();
/// let parsed = parser.parse(Format::Own, &mut body, &Limits::default()).unwrap();
/// assert_eq!(parsed.events.len(), 1);
/// assert_eq!(parsed.events[0].1.name, "pageview");
/// ```
#[derive(Default)]
pub struct Parser {
    json: json::JsonParser,
}

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser").finish_non_exhaustive()
    }
}

impl Parser {
    /// A parser with empty buffers (they grow to the largest body seen).
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that never takes the fast path for flat event objects and decodes
    /// everything through simd-json's tape: the reference the fast path is tested and
    /// fuzzed against (the answers are equal; this one is slower).
    pub fn simd_json_only() -> Self {
        let mut p = Self::default();
        p.json.fast = false;
        p
    }

    /// Parses a body in `format`. For [`Format::Pixel`] the body is the query string,
    /// which must be UTF-8 (percent-encoded bytes inside it may be anything).
    ///
    /// simd-json unescapes strings in place, so `body` is modified.
    pub fn parse<'a>(
        &mut self,
        format: Format,
        body: &'a mut [u8],
        limits: &Limits,
    ) -> Result<Parsed<'a>> {
        match format {
            Format::Plausible => self.parse_plausible(body, limits),
            Format::Own => self.parse_own(body, limits),
            Format::Pixel => self.parse_slice(format, body, limits),
        }
    }

    /// [`Parser::parse`] of a body that cannot be modified (a shared `bytes::Bytes`, a
    /// memory-mapped file, a buffer that is parsed again later): nothing is copied for
    /// the events the fast path takes (flat objects of plain ASCII strings — nearly all
    /// that trackers send), which borrow from `body`; any other event is decoded from a
    /// copy and owns its strings. The answer equals [`Parser::parse`]'s on a copy.
    ///
    /// ```
    /// use ingest_core::{Format, Limits, Parser};
    ///
    /// let body = b"{\"site\":\"a.com\",\"url\":\"https://a.com/\"}\n{\"site\":\"a.com\",\"url\":\"https://a.com/caf\\u00e9\"}";
    /// let parsed = Parser::new().parse_slice(Format::Own, body, &Limits::default()).unwrap();
    /// assert_eq!(parsed.events[1].1.url, "https://a.com/café");
    /// ```
    pub fn parse_slice<'a>(
        &mut self,
        format: Format,
        body: &'a [u8],
        limits: &Limits,
    ) -> Result<Parsed<'a>> {
        match format {
            Format::Plausible => plausible::parse_slice(&mut self.json, body, limits),
            Format::Own => own::parse_slice(&mut self.json, body, limits),
            Format::Pixel => {
                check_body_len(body.len(), limits)?;
                let query = std::str::from_utf8(body).map_err(|e| crate::Error::Malformed {
                    field: "body".into(),
                    reason: format!("not valid UTF-8: {e}"),
                })?;
                pixel::parse(query, limits)
            }
        }
    }

    /// See [`parse_plausible`].
    pub fn parse_plausible<'a>(
        &mut self,
        body: &'a mut [u8],
        limits: &Limits,
    ) -> Result<Parsed<'a>> {
        plausible::parse(&mut self.json, body, limits)
    }

    /// See [`parse_own`].
    pub fn parse_own<'a>(&mut self, body: &'a mut [u8], limits: &Limits) -> Result<Parsed<'a>> {
        own::parse(&mut self.json, body, limits)
    }
}

/// Parses a body in `format` (see [`Parser::parse`]).
pub fn parse<'a>(format: Format, body: &'a mut [u8], limits: &Limits) -> Result<Parsed<'a>> {
    Parser::new().parse(format, body, limits)
}

/// Parses a Plausible Events API body: one JSON object (see the crate docs for the
/// fields). Per-event problems are a rejection at index 0.
///
/// ```
/// use ingest_core::{parse_plausible, Limits};
///
/// let mut body = br#"{"n":"pageview","u":"https://example.com/a","d":"example.com","r":null}"#.to_vec();
/// let parsed = parse_plausible(&mut body, &Limits::default()).unwrap();
/// let ev = &parsed.events[0].1;
/// assert_eq!(ev.site.as_deref(), Some("example.com"));
/// assert_eq!(ev.referrer, None);
/// ```
pub fn parse_plausible<'a>(body: &'a mut [u8], limits: &Limits) -> Result<Parsed<'a>> {
    Parser::new().parse_plausible(body, limits)
}

/// Parses our own format: one JSON object, a JSON array of objects, or NDJSON.
///
/// ```
/// use ingest_core::{parse_own, Limits};
///
/// let mut body = b"{\"site\":\"a.com\",\"url\":\"https://a.com/\"}\n\n{\"site\":\"a.com\"}\n".to_vec();
/// let parsed = parse_own(&mut body, &Limits::default()).unwrap();
/// assert_eq!(parsed.events.len(), 1);
/// assert_eq!(parsed.rejected[0].index, 2); // NDJSON index = line, blank lines count
/// assert_eq!(parsed.rejected[0].error.field(), "url");
/// ```
pub fn parse_own<'a>(body: &'a mut [u8], limits: &Limits) -> Result<Parsed<'a>> {
    Parser::new().parse_own(body, limits)
}

/// Parses a pixel query string (without the leading `?`).
///
/// ```
/// use ingest_core::{parse_pixel, Limits};
///
/// let parsed = parse_pixel("site=a.com&url=https%3A%2F%2Fa.com%2F&w=1280&p.plan=pro", &Limits::default()).unwrap();
/// let ev = &parsed.events[0].1;
/// assert_eq!(ev.url, "https://a.com/");
/// assert_eq!(ev.screen_width, Some(1280));
/// assert_eq!(ev.props[0].0, "plan");
/// ```
pub fn parse_pixel<'a>(query: &'a str, limits: &Limits) -> Result<Parsed<'a>> {
    check_body_len(query.len(), limits)?;
    pixel::parse(query, limits)
}

/// The body-size limit, checked before any parsing.
fn check_body_len(len: usize, limits: &Limits) -> Result<()> {
    if len > limits.max_body_bytes {
        return Err(crate::Error::BodyTooLarge {
            limit: limits.max_body_bytes,
            actual: len,
        });
    }
    Ok(())
}

/// The events limit: `n` events seen so far must not exceed it.
fn check_events(n: usize, limits: &Limits) -> Result<()> {
    if n > limits.max_events_per_request {
        return Err(crate::Error::TooManyEvents {
            limit: limits.max_events_per_request,
        });
    }
    Ok(())
}

/// The same answer with every string owned (for a body parsed from a temporary copy).
fn into_owned(p: Parsed<'_>) -> Parsed<'static> {
    Parsed {
        events: p
            .events
            .into_iter()
            .map(|(i, e)| (i, e.into_owned()))
            .collect(),
        rejected: p.rejected,
    }
}

/// Pushes the outcome of decoding event `index`.
fn collect<'a>(out: &mut Parsed<'a>, index: usize, r: Result<RawEvent<'a>>) {
    match r {
        Ok(ev) => out.events.push((index, ev)),
        Err(error) => out.rejected.push(Rejection { index, error }),
    }
}

#[cfg(test)]
mod tests;
