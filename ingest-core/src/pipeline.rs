//! The pipeline: one request's body → validated, normalized, enriched [`Event`] rows.
//!
//! It ties the crate together in the order that rejects cheapest first: wire format
//! and limits ([`crate::Parser`]), user agent (a bot request stops here), site id
//! (trimmed and ASCII-lowercased, as [`crate::SiteRegistry`] stores ids), page URL
//! ([`normalize_url`]), the site registry, referrer, device class, then the privacy
//! hashes. The IP address and the raw user agent are inputs of the hashes only: no
//! field of an [`Event`] is ever set from them.

use std::borrow::Cow;

use crate::privacy::date_string;
use crate::referrer::{normalize_referrer_cached, SourceCache};
use crate::sites::canonical_site_id;

use crate::{
    day_of, device_class, event_id, normalize_url, DailySalt, Error, Event, Format, Limits,
    NormalizeConfig, Parsed, Parser, RawEvent, Rejection, Result, SiteRegistry, UaCache, UaInfo,
    VisitorHasher,
};

/// Configuration of a [`Pipeline`].
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Wire limits (body size, events per request, string lengths, props, depth).
    pub limits: Limits,
    /// URL and referrer normalization (`www.` policy).
    pub normalize: NormalizeConfig,
    /// Distinct user agents whose classification is cached (rounded down to a power of
    /// two, at most 65,536; 0: no cache). Every slot is allocated when the pipeline is
    /// built. Default 4096.
    pub ua_cache_capacity: usize,
    /// Slots of the cache of referrer hosts' sources (rounded up to a power of two, at
    /// most 65,536; 0: no cache). Each holds one host of at most 64 bytes. Default 256
    /// (under 48 KiB per pipeline).
    pub referrer_cache_slots: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            limits: Limits::default(),
            normalize: NormalizeConfig::default(),
            ua_cache_capacity: 4096,
            referrer_cache_slots: 256,
        }
    }
}

/// What the caller knows about a request besides its body. Time, ids and salts come
/// from here: the crate reads no clock and draws no random numbers.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'c> {
    /// Receive time, Unix ms UTC: the `received_at` of every row.
    pub received_at_ms: i64,
    /// Client IP address, as text. Only hashed into `visitor_id`.
    pub client_ip: &'c str,
    /// The `User-Agent` header. Classified and hashed, never stored.
    pub user_agent: &'c str,
    /// ISO 3166-1 alpha-2 country code, or empty when unknown. Lowercase is
    /// uppercased; anything that is not two ASCII letters is stored as empty.
    pub country: &'c str,
    /// Region (e.g. Cloudflare's `request.cf.region`), or empty.
    pub region: &'c str,
    /// City, or empty.
    pub city: &'c str,
    /// Per-request seed of the event ids (random, or derived from a request id so a
    /// retried request gets the same ids). See [`event_id`].
    pub id_seed: [u8; 16],
    /// The daily salt of the receive day (see [`DailySalt::derive`]): the salt of any
    /// other day is refused, the request unprocessed ([`Error::Context`]).
    pub salt: &'c DailySalt,
    /// Sites and their allowed hostnames; `None` accepts any site.
    pub sites: Option<&'c SiteRegistry>,
}

/// The result of one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome<'a> {
    /// Rows to store, in request order.
    pub accepted: Vec<Event<'a>>,
    /// Rejected events with their index in the request and the reason, in index order.
    pub rejected: Vec<Rejection>,
    /// Events dropped because the user agent is a bot (not rejections: the client did
    /// nothing wrong, and a bot should not be told how to get counted).
    pub bots: usize,
}

/// The event pipeline: keeps the parser buffers and the user-agent cache between
/// requests. One per thread (or per isolate); it is cheap to keep and not shared.
///
/// ```
/// use ingest_core::{DailySalt, Format, Pipeline, PipelineConfig, RequestContext};
///
/// let mut pipeline = Pipeline::new(PipelineConfig::default());
/// let salt = DailySalt::derive(b"secret", 1_700_000_000_000);
/// let ctx = RequestContext {
///     received_at_ms: 1_700_000_000_000,
///     client_ip: "203.0.113.7",
///     user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
///                  (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
///     country: "DE",
///     region: "",
///     city: "",
///     id_seed: [7; 16],
///     salt: &salt,
///     sites: None,
/// };
/// let mut body = br#"{"n":"pageview","u":"https://www.example.com/a?utm_source=x","d":"example.com","r":null}"#.to_vec();
/// let out = pipeline.process(Format::Plausible, &mut body, &ctx).unwrap();
/// let ev = &out.accepted[0];
/// assert_eq!((&*ev.hostname, &*ev.pathname, &*ev.utm_source), ("example.com", "/a", "x"));
/// assert_eq!(ev.browser, "Chrome");
/// ```
pub struct Pipeline {
    pub(crate) config: PipelineConfig,
    pub(crate) parser: Parser,
    pub(crate) ua_cache: UaCache,
    /// Sources of recent referrer hosts.
    pub(crate) source_cache: SourceCache,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline with empty buffers and an empty user-agent cache.
    pub fn new(config: PipelineConfig) -> Self {
        Pipeline {
            ua_cache: UaCache::new(config.ua_cache_capacity),
            source_cache: SourceCache::new(config.referrer_cache_slots),
            parser: Parser::new(),
            config,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Parses `body` in `format` and processes its events. A request-level problem
    /// (see [`crate::parse`]) is an `Err`; per-event problems are in
    /// [`Outcome::rejected`]. simd-json unescapes in place, so `body` is modified.
    ///
    /// [`Error::Context`] (checked first, once per request) when `ctx.salt` is not
    /// the salt of `ctx.received_at_ms`'s UTC day ([`RequestContext::salt`]).
    pub fn process<'a>(
        &mut self,
        format: Format,
        body: &'a mut [u8],
        ctx: &RequestContext<'_>,
    ) -> Result<Outcome<'a>> {
        check_context(ctx)?;
        let parsed = self.parser.parse(format, body, &self.config.limits)?;
        Ok(self.process_checked(parsed, ctx))
    }

    /// Processes events parsed already (e.g. a pixel query string borrowed from the
    /// request URL, parsed with [`crate::parse_pixel`]). The only `Err` is
    /// [`Error::Context`], as for [`Pipeline::process`].
    pub fn process_raw<'a>(
        &mut self,
        parsed: Parsed<'a>,
        ctx: &RequestContext<'_>,
    ) -> Result<Outcome<'a>> {
        check_context(ctx)?;
        Ok(self.process_checked(parsed, ctx))
    }

    /// [`Pipeline::process_raw`] of a context [`check_context`] accepted.
    fn process_checked<'a>(&mut self, parsed: Parsed<'a>, ctx: &RequestContext<'_>) -> Outcome<'a> {
        let Parsed {
            events,
            mut rejected,
        } = parsed;
        let ua = self.ua_cache.classify(ctx.user_agent);
        if ua.bot {
            // Bots cost nothing more: no URL parsing, no hashing.
            return Outcome {
                accepted: Vec::new(),
                rejected,
                bots: events.len(),
            };
        }
        let shared = Shared {
            ua,
            country: country(ctx.country),
            region: owned_or_empty(ctx.region),
            city: owned_or_empty(ctx.city),
            client: VisitorHasher::new(ctx.salt, ctx.client_ip, ctx.user_agent),
        };
        let mut accepted = Vec::with_capacity(events.len());
        let mut last_visitor: Option<(Cow<'a, str>, u64)> = None;
        let rejected_from_wire = rejected.len();
        for (index, raw) in events {
            match enrich(
                index,
                raw,
                ctx,
                &self.config,
                &shared,
                &mut last_visitor,
                &mut self.source_cache,
            ) {
                Ok(ev) => accepted.push(ev),
                Err(error) => rejected.push(Rejection { index, error }),
            }
        }
        if rejected_from_wire > 0 && rejected.len() > rejected_from_wire {
            rejected.sort_by_key(|r| r.index);
        }
        Outcome {
            accepted,
            rejected,
            bots: 0,
        }
    }
}

/// Checks, once per request, what the caller could get wrong in `ctx`: its salt must
/// be the salt of the UTC day of `received_at_ms`. Another day's salt — a service that
/// derived it once and kept it past midnight — would silently give today's visitors
/// yesterday's ids: linkable across days, which the daily salt exists to prevent, and
/// split from the ids the same people get from an instance with the right salt. The
/// rows' time and the salt both come from the caller, so the crate can tell, at the
/// cost of one division and one comparison per request.
///
/// An error rather than a `debug_assert!`: the mistake shows only in a process that
/// runs across midnight, which is a release build in production, where a debug
/// assertion is compiled out; and a panic would take down a server for what one
/// request's context got wrong. The error is [`Error::Context`]
/// ([`Error::is_caller_bug`]): a service answers it as its own fault (5xx), not the
/// client's. The sink and the edge derive the salt from each request's receive time
/// ([`DailySalt::is_for`]), so they never get it.
#[inline]
pub(crate) fn check_context(ctx: &RequestContext<'_>) -> Result<()> {
    if ctx.salt.is_for(ctx.received_at_ms) {
        return Ok(());
    }
    Err(salt_of_another_day(ctx))
}

/// The error of [`check_context`], out of line: kept out of the callers' code, whose
/// inlining it changed (`profile --path full` ran ≈ 3% slower with it inline).
#[cold]
#[inline(never)]
fn salt_of_another_day(ctx: &RequestContext<'_>) -> Error {
    Error::Context {
        field: "salt".into(),
        reason: format!(
            "the salt is for {} but the request was received on {}: derive the salt of \
             the receive day (DailySalt::derive, when DailySalt::is_for says no)",
            ctx.salt.date(),
            date_string(day_of(ctx.received_at_ms)),
        ),
    }
}

/// Per-request values copied into every row.
struct Shared<'u> {
    /// The request's user agent, classified.
    ua: &'u UaInfo,
    country: &'static str,
    region: Cow<'static, str>,
    city: Cow<'static, str>,
    /// The request's client, hashed once for the visitor ids of every site.
    client: VisitorHasher,
}

/// Every pair of uppercase ASCII letters, `AAABAC…ZZ`: a country code is a slice of
/// it, so rows get a `&'static str` and no allocation per event.
static LETTER_PAIRS: [u8; 26 * 26 * 2] = {
    let mut a = [0u8; 26 * 26 * 2];
    let mut i = 0;
    while i < 26 * 26 {
        a[2 * i] = b'A' + (i / 26) as u8;
        a[2 * i + 1] = b'A' + (i % 26) as u8;
        i += 1;
    }
    a
};

/// Two ASCII letters, uppercased; anything else is unknown (empty). A bad header
/// should not cost the visitor's page view, and a wrong country is worse than none.
pub(crate) fn country(c: &str) -> &'static str {
    match c.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            let i = usize::from(a.to_ascii_uppercase() - b'A') * 26
                + usize::from(b.to_ascii_uppercase() - b'A');
            std::str::from_utf8(&LETTER_PAIRS[2 * i..2 * i + 2]).unwrap_or("")
        }
        _ => "",
    }
}

fn owned_or_empty(s: &str) -> Cow<'static, str> {
    if s.is_empty() {
        Cow::Borrowed("")
    } else {
        Cow::Owned(s.to_owned())
    }
}

/// Detaches a `Cow` from the lifetime of the value it was borrowed from.
fn detach<'a>(c: Cow<'_, str>) -> Cow<'a, str> {
    Cow::Owned(c.into_owned())
}

/// One raw event → one row, or the reason it is rejected.
fn enrich<'a>(
    index: usize,
    raw: RawEvent<'a>,
    ctx: &RequestContext<'_>,
    config: &PipelineConfig,
    shared: &Shared<'_>,
    last_visitor: &mut Option<(Cow<'a, str>, u64)>,
    sources: &mut SourceCache,
) -> Result<Event<'a>> {
    let RawEvent {
        site,
        url,
        name,
        referrer,
        screen_width,
        ts: _, // the row's time is the receive time: a client clock cannot be trusted
        props,
        timings,
        scroll_depth,
        engagement_ms,
    } = raw;
    // Trimmed and ASCII-lowercased before anything uses it: `Example.COM` and
    // `example.com` are one site, with one visitor id per person.
    let site = site
        .and_then(canonical_site_id)
        .ok_or_else(|| Error::Missing {
            field: "site".into(),
        })?;
    // The normalized parts borrow from the URL when it is borrowed from the body; a
    // URL the wire format had to decode (pixel escapes) is owned, so are its parts.
    let page = match url {
        Cow::Borrowed(u) => normalize_url(u, &config.normalize)?,
        Cow::Owned(u) => {
            let p = normalize_url(&u, &config.normalize)?;
            crate::PageUrl {
                hostname: detach(p.hostname),
                pathname: detach(p.pathname),
                utm_source: detach(p.utm_source),
                utm_medium: detach(p.utm_medium),
                utm_campaign: detach(p.utm_campaign),
                utm_content: detach(p.utm_content),
                utm_term: detach(p.utm_term),
            }
        }
    };
    if let Some(sites) = ctx.sites {
        sites.check(&site, &page.hostname)?;
    }
    let r = match &referrer {
        None => Default::default(),
        Some(Cow::Borrowed(r)) => {
            normalize_referrer_cached(r, &page.hostname, &config.normalize, sources)
        }
        Some(Cow::Owned(r)) => {
            let n = normalize_referrer_cached(r, &page.hostname, &config.normalize, sources);
            crate::Referrer {
                host: detach(n.host),
                source: detach(n.source),
            }
        }
    };
    let visitor = match last_visitor {
        Some((s, id)) if *s == site => *id,
        _ => {
            let id = shared.client.visitor_id(&site);
            *last_visitor = Some((site.clone(), id));
            id
        }
    };
    // Indexes are below the body size, far below u32::MAX for any sane limit.
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    Ok(Event {
        event_id: event_id(&ctx.id_seed, index),
        received_at_ms: ctx.received_at_ms,
        site_id: site,
        name,
        hostname: page.hostname,
        pathname: page.pathname,
        referrer_host: r.host,
        referrer_source: r.source,
        utm_source: page.utm_source,
        utm_medium: page.utm_medium,
        utm_campaign: page.utm_campaign,
        utm_content: page.utm_content,
        utm_term: page.utm_term,
        country: Cow::Borrowed(shared.country),
        region: shared.region.clone(),
        city: shared.city.clone(),
        browser: shared.ua.browser.clone(),
        browser_version: shared.ua.browser_version.clone(),
        os: shared.ua.os.clone(),
        os_version: shared.ua.os_version.clone(),
        device: Cow::Borrowed(device_class(shared.ua.device, screen_width)),
        screen_width: screen_width.unwrap_or(0),
        visitor_id: visitor,
        timings,
        scroll_depth,
        engagement_ms,
        props,
    })
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
