//! The direct path of the pipeline: a request's `RawEvent`s go straight into a
//! [`Batcher`]'s Arrow builders, without materializing an [`crate::Event`] per row.
//!
//! It computes exactly what [`Pipeline::process`] computes (a test holds the batches
//! equal), but the strings of a row are borrowed — from the body, the normalized URL,
//! the cached user-agent classification, or the request context — and appended to the
//! builders by reference; the per-request work (event-id hash, country, user agent) is
//! done once per request and the visitor hash once per (site, request).

use arrow_array::RecordBatch;

use crate::batch::Row;
use crate::pipeline::{check_context, country};
use crate::privacy::EventIds;
use crate::referrer::normalize_referrer_cached;
use crate::sites::{canonical_site_id, is_canonical_site_id};
use crate::{
    device_class, normalize_url, Batcher, Error, Format, Parsed, Pipeline, RawEvent, Referrer,
    Rejection, RequestContext, Result, VisitorHasher,
};

/// What [`Pipeline::process_into`] did with one request (the rows are in the batcher).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Appended {
    /// Rows appended to the batcher, in request order.
    pub accepted: usize,
    /// Rejected events with their index in the request and the reason, in index order.
    pub rejected: Vec<Rejection>,
    /// Events dropped because the user agent is a bot.
    pub bots: usize,
}

/// Slots of the per-request cache of visitor hashes by site: direct-mapped by
/// [`site_slot`], a site in its slot found with one comparison. Two sites sharing a
/// slot take turns in it (each miss hashes again: still correct, only slower). A
/// linear list of 16 was scanned in full for every event of a request mixing more
/// sites than that, as the edge's batches do.
const VISITOR_SLOTS: usize = 64;

/// The cache slot of `site`: its length and three of its bytes, mixed.
#[inline]
fn site_slot(site: &str) -> usize {
    let b = site.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return 0;
    };
    let mid = b[b.len() / 2];
    let key =
        (b.len() as u32) ^ u32::from(first) << 8 ^ u32::from(mid) << 16 ^ u32::from(last) << 24;
    // Fibonacci hashing: the top bits of the product.
    (key.wrapping_mul(0x9E37_79B9) >> (32 - VISITOR_SLOTS.trailing_zeros())) as usize
}

impl Pipeline {
    /// Like [`Pipeline::process`], but every accepted row is pushed into `batcher` at
    /// `now_ms` instead of being returned as an [`crate::Event`]; each batch the
    /// batcher hands out on the way is passed to `on_batch`. The rows are exactly
    /// those [`Pipeline::process`] followed by [`Batcher::push`] would produce, at a
    /// fraction of the cost, and the same `Err`s ([`Error::Context`] checked first).
    pub fn process_into(
        &mut self,
        format: Format,
        body: &mut [u8],
        ctx: &RequestContext<'_>,
        batcher: &mut Batcher,
        now_ms: i64,
        on_batch: &mut dyn FnMut(RecordBatch),
    ) -> Result<Appended> {
        check_context(ctx)?;
        let parsed = self.parser.parse(format, body, &self.config.limits)?;
        Ok(self.append_checked(parsed, ctx, batcher, now_ms, on_batch))
    }

    /// [`Pipeline::process_into`] of a body that cannot be modified (see
    /// [`crate::Parser::parse_slice`]): nothing is copied for the events the parser's
    /// fast path takes; the others are decoded from a copy.
    pub fn process_slice_into(
        &mut self,
        format: Format,
        body: &[u8],
        ctx: &RequestContext<'_>,
        batcher: &mut Batcher,
        now_ms: i64,
        on_batch: &mut dyn FnMut(RecordBatch),
    ) -> Result<Appended> {
        check_context(ctx)?;
        let parsed = self.parser.parse_slice(format, body, &self.config.limits)?;
        Ok(self.append_checked(parsed, ctx, batcher, now_ms, on_batch))
    }

    /// [`Pipeline::process_into`] of events parsed already (see
    /// [`Pipeline::process_raw`]; the only `Err` is [`Error::Context`]).
    pub fn process_raw_into(
        &mut self,
        parsed: Parsed<'_>,
        ctx: &RequestContext<'_>,
        batcher: &mut Batcher,
        now_ms: i64,
        on_batch: &mut dyn FnMut(RecordBatch),
    ) -> Result<Appended> {
        check_context(ctx)?;
        Ok(self.append_checked(parsed, ctx, batcher, now_ms, on_batch))
    }

    /// [`Pipeline::process_raw_into`] of a context [`check_context`] accepted.
    fn append_checked(
        &mut self,
        parsed: Parsed<'_>,
        ctx: &RequestContext<'_>,
        batcher: &mut Batcher,
        now_ms: i64,
        on_batch: &mut dyn FnMut(RecordBatch),
    ) -> Appended {
        let Parsed {
            mut events,
            mut rejected,
        } = parsed;
        let ua = self.ua_cache.classify(ctx.user_agent);
        if ua.bot {
            return Appended {
                accepted: 0,
                rejected,
                bots: events.len(),
            };
        }
        let ids = EventIds::new(&ctx.id_seed);
        let client = VisitorHasher::new(ctx.salt, ctx.client_ip, ctx.user_agent);
        let country = country(ctx.country);
        let mut visitors: [Option<(&str, u64)>; VISITOR_SLOTS] = [None; VISITOR_SLOTS];
        let rejected_from_wire = rejected.len();
        let mut accepted = 0;
        for (index, raw) in &mut events {
            // The site id as `process` stores it (canonical), fixed in the event so
            // the visitor slots can borrow it for the rest of the request.
            if !raw.site.as_deref().is_some_and(is_canonical_site_id) {
                raw.site = raw.site.take().and_then(canonical_site_id);
            }
            let (index, raw) = (&*index, &*raw);
            let RawEvent {
                site,
                url,
                name,
                referrer,
                screen_width,
                ts: _, // the row's time is the receive time, as in `process`
                props,
                timings,
                scroll_depth,
                engagement_ms,
            } = raw;
            let Some(site) = site.as_deref() else {
                rejected.push(Rejection {
                    index: *index,
                    error: Error::Missing {
                        field: "site".into(),
                    },
                });
                continue;
            };
            // Borrowed where it was returned: moving the 168-byte `PageUrl` out of the
            // `Result` was a `memcpy` call per event (3% of this path in the profile).
            let normalized = normalize_url(url, &self.config.normalize);
            if let Err(error) = normalized {
                rejected.push(Rejection {
                    index: *index,
                    error,
                });
                continue;
            }
            let Ok(page) = &normalized else { continue };
            if let Some(sites) = ctx.sites {
                if let Err(error) = sites.check(site, &page.hostname) {
                    rejected.push(Rejection {
                        index: *index,
                        error,
                    });
                    continue;
                }
            }
            let r = match referrer.as_deref() {
                None => Referrer::default(),
                Some(r) => normalize_referrer_cached(
                    r,
                    &page.hostname,
                    &self.config.normalize,
                    &mut self.source_cache,
                ),
            };
            let slot = &mut visitors[site_slot(site)];
            let visitor = match *slot {
                Some((s, id)) if same_site(s, site) => id,
                _ => {
                    let id = client.visitor_id(site);
                    *slot = Some((site, id));
                    id
                }
            };
            let row = Row {
                // Indexes are below the body size, far below u32::MAX.
                event_id: ids.get(u32::try_from(*index).unwrap_or(u32::MAX)),
                received_at_ms: ctx.received_at_ms,
                strings: [
                    site,
                    name,
                    &page.hostname,
                    &page.pathname,
                    &r.host,
                    &r.source,
                    &page.utm_source,
                    &page.utm_medium,
                    &page.utm_campaign,
                    &page.utm_content,
                    &page.utm_term,
                    country,
                    ctx.region,
                    ctx.city,
                    &ua.browser,
                    &ua.browser_version,
                    &ua.os,
                    &ua.os_version,
                    device_class(ua.device, *screen_width),
                ],
                screen_width: screen_width.unwrap_or(0),
                visitor_id: visitor,
                timings: *timings,
                scroll_depth: *scroll_depth,
                engagement_ms: *engagement_ms,
                props,
                repeat: accepted > 0,
            };
            accepted += 1;
            if let Some(b) = batcher.push_row(&row, now_ms) {
                on_batch(b);
            }
        }
        if rejected_from_wire > 0 && rejected.len() > rejected_from_wire {
            rejected.sort_by_key(|r| r.index);
        }
        Appended {
            accepted,
            rejected,
            bots: 0,
        }
    }
}

/// `a == b`, with the length and the last byte compared before the bytes (a library
/// `memcmp` call per comparison showed in the profile).
#[inline]
fn same_site(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.as_bytes().last() == b.as_bytes().last()
        && crate::short_eq::short_eq(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
#[path = "direct_tests.rs"]
mod tests;
