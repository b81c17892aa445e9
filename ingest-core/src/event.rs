//! The two shapes of an event: as a client sent it ([`RawEvent`]) and as it is stored
//! ([`Event`], one row of schema v1).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Browser timings (web vitals) reported by the tracker, all optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Time to first byte, ms.
    pub ttfb_ms: Option<u32>,
    /// First contentful paint, ms.
    pub fcp_ms: Option<u32>,
    /// Largest contentful paint, ms.
    pub lcp_ms: Option<u32>,
    /// Interaction to next paint, ms.
    pub inp_ms: Option<u32>,
    /// Load event end, ms.
    pub load_ms: Option<u32>,
    /// Cumulative layout shift (unitless, finite, >= 0).
    pub cls: Option<f32>,
}

/// An event as the client sent it, after the wire format is parsed and the limits are
/// checked, before normalization and enrichment. Strings borrow from the request body
/// where they had no escapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawEvent<'a> {
    /// Site id (own format `site`, Plausible `d`/`domain`), as sent (the pipeline
    /// trims and ASCII-lowercases it). `None` when absent; the pipeline then rejects
    /// the event with `Missing { field: "site" }`, as it does an id that is empty
    /// after trimming.
    pub site: Option<Cow<'a, str>>,
    /// Full page URL (`url` / `u`).
    pub url: Cow<'a, str>,
    /// Event name (`name` / `n`), default `pageview`.
    pub name: Cow<'a, str>,
    /// Referrer URL (`referrer` / `r`), absent or empty means direct.
    pub referrer: Option<Cow<'a, str>>,
    /// Screen width in CSS pixels (`screen_width` / `w`), clamped to u16 by the parser.
    pub screen_width: Option<u16>,
    /// Client timestamp, Unix ms (`ts`). Kept for the caller; the row uses receive time.
    pub ts: Option<i64>,
    /// Custom properties, in the order sent (`props` / `p` / `m`).
    pub props: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Web vitals.
    pub timings: Timings,
    /// Scroll depth percent 0..=100 (Plausible engagement `sd`).
    pub scroll_depth: Option<u8>,
    /// Engaged time, ms (Plausible engagement `e`).
    pub engagement_ms: Option<u32>,
}

impl RawEvent<'_> {
    /// A copy that owns all its strings (for keeping past the request body's lifetime).
    pub fn into_owned(self) -> RawEvent<'static> {
        fn o(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        RawEvent {
            site: self.site.map(o),
            url: o(self.url),
            name: o(self.name),
            referrer: self.referrer.map(o),
            screen_width: self.screen_width,
            ts: self.ts,
            props: self.props.into_iter().map(|(k, v)| (o(k), o(v))).collect(),
            timings: self.timings,
            scroll_depth: self.scroll_depth,
            engagement_ms: self.engagement_ms,
        }
    }
}

/// One row of schema v1 (see [`crate::schema`]): validated, normalized, enriched, with
/// no IP address and no raw user agent. Serializable so the edge can put accepted
/// events on a queue and the consumer can batch them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event<'a> {
    /// Unique id of the event (derived from the caller's per-request seed).
    pub event_id: [u8; 16],
    /// Receive time, Unix ms UTC, as passed in by the caller.
    pub received_at_ms: i64,
    /// Column `site_id` of schema v1: the site id canonicalized (ASCII whitespace
    /// trimmed, ASCII letters lowercased; see the crate docs).
    #[serde(borrow)]
    pub site_id: Cow<'a, str>,
    /// Column `name` of schema v1.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Column `hostname` of schema v1.
    #[serde(borrow)]
    pub hostname: Cow<'a, str>,
    /// Column `pathname` of schema v1.
    #[serde(borrow)]
    pub pathname: Cow<'a, str>,
    /// Column `referrer_host` of schema v1.
    #[serde(borrow)]
    pub referrer_host: Cow<'a, str>,
    /// Column `referrer_source` of schema v1.
    #[serde(borrow)]
    pub referrer_source: Cow<'a, str>,
    /// Column `utm_source` of schema v1.
    #[serde(borrow)]
    pub utm_source: Cow<'a, str>,
    /// Column `utm_medium` of schema v1.
    #[serde(borrow)]
    pub utm_medium: Cow<'a, str>,
    /// Column `utm_campaign` of schema v1.
    #[serde(borrow)]
    pub utm_campaign: Cow<'a, str>,
    /// Column `utm_content` of schema v1.
    #[serde(borrow)]
    pub utm_content: Cow<'a, str>,
    /// Column `utm_term` of schema v1.
    #[serde(borrow)]
    pub utm_term: Cow<'a, str>,
    /// Column `country` of schema v1.
    #[serde(borrow)]
    pub country: Cow<'a, str>,
    /// Column `region` of schema v1.
    #[serde(borrow)]
    pub region: Cow<'a, str>,
    /// Column `city` of schema v1.
    #[serde(borrow)]
    pub city: Cow<'a, str>,
    /// Column `browser` of schema v1.
    #[serde(borrow)]
    pub browser: Cow<'a, str>,
    /// Column `browser_version` of schema v1.
    #[serde(borrow)]
    pub browser_version: Cow<'a, str>,
    /// Column `os` of schema v1.
    #[serde(borrow)]
    pub os: Cow<'a, str>,
    /// Column `os_version` of schema v1.
    #[serde(borrow)]
    pub os_version: Cow<'a, str>,
    /// Column `device` of schema v1.
    #[serde(borrow)]
    pub device: Cow<'a, str>,
    /// Column `screen_width` of schema v1.
    pub screen_width: u16,
    /// Column `visitor_id` of schema v1.
    pub visitor_id: u64,
    /// Columns `ttfb_ms`, `fcp_ms`, `lcp_ms`, `inp_ms`, `load_ms`, `cls` of schema v1.
    pub timings: Timings,
    /// Column `scroll_depth` of schema v1.
    pub scroll_depth: Option<u8>,
    /// Column `engagement_ms` of schema v1.
    pub engagement_ms: Option<u32>,
    /// Columns `prop_keys` and `prop_values` of schema v1, as pairs.
    #[serde(borrow)]
    pub props: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl Event<'_> {
    /// A copy that owns all its strings (for keeping past the request body's lifetime).
    pub fn into_owned(self) -> Event<'static> {
        fn o(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        Event {
            event_id: self.event_id,
            received_at_ms: self.received_at_ms,
            site_id: o(self.site_id),
            name: o(self.name),
            hostname: o(self.hostname),
            pathname: o(self.pathname),
            referrer_host: o(self.referrer_host),
            referrer_source: o(self.referrer_source),
            utm_source: o(self.utm_source),
            utm_medium: o(self.utm_medium),
            utm_campaign: o(self.utm_campaign),
            utm_content: o(self.utm_content),
            utm_term: o(self.utm_term),
            country: o(self.country),
            region: o(self.region),
            city: o(self.city),
            browser: o(self.browser),
            browser_version: o(self.browser_version),
            os: o(self.os),
            os_version: o(self.os_version),
            device: o(self.device),
            screen_width: self.screen_width,
            visitor_id: self.visitor_id,
            timings: self.timings,
            scroll_depth: self.scroll_depth,
            engagement_ms: self.engagement_ms,
            props: self.props.into_iter().map(|(k, v)| (o(k), o(v))).collect(),
        }
    }
}
