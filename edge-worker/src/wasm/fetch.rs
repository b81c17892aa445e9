//! `#[event(fetch)]`: the tracker routes.
//!
//! Per request, only: read the body (refused early by `Content-Length` when too large,
//! else streamed and refused as soon as it passes the limit), parse + validate + enrich
//! (ingest-core pipeline, with `request.cf` and the hashed client), rate-limit (GCRA per
//! isolate, then Cloudflare's binding if configured), decide the plan quota, enqueue
//! (one Queue `sendBatch`, or the direct-mode micro-batch), count the enqueued events
//! against the quota, reply.

use std::rc::Rc;

use futures_util::StreamExt;
use ingest_core::{
    client_key, parse_pixel, Decision, Event, Format, QuotaDecision, Rejection, RequestContext,
};
use wasm_bindgen::JsValue;
use worker::{
    console_error, console_warn, event, Context, Env, Method, QueueContentType, RawMessageBuilder,
    Request, Response, Result,
};

use super::{direct, now_ms, random_seed, with_isolate};
use crate::body::{declared_length, BoundedBody, CONTENT_LENGTH};
use crate::config::{EdgeConfig, QUEUE_BINDING, RATE_LIMITER_BINDING};
use crate::messages::{self, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES};
use crate::quota::per_site;
use crate::reply::{self, Body, Refused, Reply, CORS_HEADERS, GIF};
use crate::tracker;

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let method = req.method();
    let path = req.path();
    let reply = match (method.clone(), path.as_str()) {
        (Method::Get, "/script.js") => return script(),
        (Method::Options, _) => Ok(reply::preflight()),
        (Method::Post, "/api/event") => ingest(req, Format::Plausible, &env, &ctx).await,
        (Method::Post, "/e") => ingest(req, Format::Own, &env, &ctx).await,
        (Method::Get, "/e.gif") => ingest(req, Format::Pixel, &env, &ctx).await,
        (m, p) => Ok(reply::not_found(m.as_ref(), p)),
    };
    respond(reply.unwrap_or_else(|e| {
        // Only our own failures land here (bad input has its 4xx above).
        console_error!("internal error on {path}: {e}");
        reply::unavailable("the edge could not take this request; retry later")
    }))
}

fn script() -> Result<Response> {
    let mut resp = Response::from_bytes(tracker::SCRIPT_JS.as_bytes().to_vec())?;
    let h = resp.headers_mut();
    h.set("Content-Type", tracker::CONTENT_TYPE)?;
    h.set("Cache-Control", tracker::CACHE_CONTROL)?;
    let (k, v) = ingest_core::CORS_ALLOW_ORIGIN;
    h.set(k, v)?;
    Ok(resp)
}

fn respond(r: Reply) -> Result<Response> {
    let mut resp = match &r.body {
        Body::Json(v) => Response::from_json(v)?,
        Body::Gif => {
            let mut g = Response::from_bytes(GIF.to_vec())?;
            g.headers_mut().set("Content-Type", "image/gif")?;
            g
        }
        Body::Empty => Response::empty()?,
    }
    .with_status(r.status);
    let h = resp.headers_mut();
    for (k, v) in CORS_HEADERS {
        h.set(k, v)?;
    }
    h.set("Cache-Control", "no-store")?;
    if let Some(secs) = r.retry_after_secs {
        h.set("Retry-After", &secs.to_string())?;
    }
    Ok(resp)
}

/// What the synchronous part of a request decided.
enum Step<'a> {
    Done(Reply),
    Accepted {
        events: Vec<Event<'a>>,
        rejected: Vec<Rejection>,
        bots: usize,
        key: u64,
        config: Rc<EdgeConfig>,
    },
}

async fn ingest(mut req: Request, format: Format, env: &Env, ctx: &Context) -> Result<Reply> {
    let now = now_ms();
    let headers = req.headers();
    let ip = headers.get("CF-Connecting-IP")?.unwrap_or_default();
    let ua = headers.get("User-Agent")?.unwrap_or_default();
    let content_length = headers.get(CONTENT_LENGTH)?;
    let (country, region, city) = req
        .cf()
        .map(|cf| {
            (
                cf.country().unwrap_or_default(),
                cf.region().unwrap_or_default(),
                cf.city().unwrap_or_default(),
            )
        })
        .unwrap_or_default();

    let max_body = match with_isolate(env, |iso| iso.pipeline.config().limits.max_body_bytes) {
        Ok(m) => m,
        Err(e) => {
            console_error!("configuration: {e}");
            return Ok(reply::unavailable("the edge is misconfigured"));
        }
    };
    let query;
    let mut body = Vec::new();
    if format == Format::Pixel {
        query = req.url()?.query().unwrap_or_default().to_owned();
    } else {
        query = String::new();
        // An announced oversize body is refused before it is read, one without a length
        // as soon as it passes the limit.
        let declared = match declared_length(content_length.as_deref(), max_body) {
            Ok(d) => d,
            Err(e) => return Ok(reply::problem(&e)),
        };
        match read_body(&mut req, max_body, declared).await? {
            Ok(b) => body = b,
            Err(e) => return Ok(reply::problem(&e)),
        }
    }

    let step = with_isolate(env, |iso| {
        let config = iso.config.clone();
        iso.refresh_salt(now);
        let salt = iso.salt.as_ref().expect("refreshed above");
        let rctx = RequestContext {
            received_at_ms: now,
            client_ip: &ip,
            user_agent: &ua,
            country: &country,
            region: &region,
            city: &city,
            id_seed: random_seed(),
            salt,
            sites: config.sites.as_ref(),
        };
        let outcome = if format == Format::Pixel {
            parse_pixel(&query, &iso.pipeline.config().limits)
                .and_then(|parsed| iso.pipeline.process_raw(parsed, &rctx))
        } else {
            iso.pipeline.process(format, &mut body, &rctx)
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                if e.is_caller_bug() {
                    // The worker's own bug (a salt of another day), not the request's.
                    worker::console_error!(
                        "the pipeline refused the worker's request context: {e}"
                    );
                }
                return Step::Done(reply::problem(&e));
            }
        };
        // Cells are events (as in the sink): a batch of 50 costs 50. A request whose
        // events were all rejected still costs one, so junk is rate-limited too.
        let key = client_key(salt, &ip);
        let cells = u32::try_from(outcome.accepted.len().max(1)).unwrap_or(u32::MAX);
        if let Decision::Deny { retry_after_ms } = iso.limiter.check_n(key, cells, now) {
            return Step::Done(reply::rate_limited(retry_after_ms));
        }
        Step::Accepted {
            events: outcome.accepted,
            rejected: outcome.rejected,
            bots: outcome.bots,
            key,
            config,
        }
    });
    let step = match step {
        Ok(s) => s,
        Err(e) => {
            console_error!("configuration: {e}");
            return Ok(reply::unavailable("the edge is misconfigured"));
        }
    };
    let (mut events, rejected, bots, key, config) = match step {
        Step::Done(r) => return Ok(r),
        Step::Accepted {
            events,
            rejected,
            bots,
            key,
            config,
        } => (events, rejected, bots, key, config),
    };

    // Cloudflare's Rate Limiting binding, where configured: shared across isolates of a
    // location, so it catches what one isolate's GCRA cannot see. It says only yes or
    // no; its count starts again within its period (`RATE_LIMITER_PERIOD_SECS`), so that
    // is the Retry-After.
    if let Ok(limiter) = env.rate_limiter(RATE_LIMITER_BINDING) {
        let outcome = limiter.limit(format!("{key:016x}")).await?;
        if !outcome.success {
            let period_ms = u64::from(config.rate_limiter_period_secs) * 1000;
            return Ok(reply::rate_limited(period_ms));
        }
    }

    // Indexes in the request of the accepted events, for the events refused below.
    let mut indexes = reply::accepted_indexes(events.len(), &rejected);
    let mut refused: Vec<Refused> = Vec::new();
    let quota = decide_quota(&events, &config, env, now)?;
    if !quota.is_empty() {
        let mut i = 0;
        indexes.retain(|&index| {
            let ev = &events[i];
            i += 1;
            match quota.iter().find(|(site, _)| *site == ev.site_id) {
                Some((_, q)) => {
                    refused.push(Refused::quota(index, &q.message));
                    false
                }
                None => true,
            }
        });
        events.retain(|ev| !quota.iter().any(|(site, _)| *site == ev.site_id));
        if events.is_empty() {
            // Nothing of the request is taken: the refusal, with its Retry-After.
            let q = &quota[0].1;
            return Ok(reply::quota_refused(
                &q.message,
                q.retry_after_ms,
                q.resets_at_ms,
            ));
        }
    }

    let mut accepted = 0;
    if !events.is_empty() {
        match env.queue(QUEUE_BINDING) {
            Ok(queue) => {
                let packed = messages::pack(&events)?;
                if !packed.fits_one_batch() {
                    return Ok(reply::encoded_too_large(packed.bytes, MAX_BATCH_BYTES));
                }
                if !packed.too_large.is_empty() {
                    for &(pos, bytes) in &packed.too_large {
                        refused.push(Refused::too_large(indexes[pos], bytes, MAX_MESSAGE_BYTES));
                    }
                    let mut pos = 0;
                    events.retain(|_| {
                        pos += 1;
                        !packed.too_large.iter().any(|&(p, _)| p == pos - 1)
                    });
                }
                if !packed.messages.is_empty() {
                    // One sendBatch: the request's messages are enqueued all or none, so a
                    // client that retries after a 503 does not duplicate a part of it.
                    let batch = packed.messages.into_iter().map(|m| {
                        RawMessageBuilder::new(JsValue::from_str(&m))
                            .build_with_content_type(QueueContentType::Text)
                    });
                    if let Err(e) = queue.send_raw_batch(batch).await {
                        console_error!("queue send failed: {e}");
                        return Ok(reply::unavailable("the event queue is unavailable"));
                    }
                }
                // Enqueued: only now are they counted (and may start the grace period).
                commit_quota(&events, &config, env, now);
                accepted = events.len();
            }
            Err(_) => {
                // Direct mode takes them at once (at most once: see the README).
                commit_quota(&events, &config, env, now);
                let owned: Vec<Event<'static>> = events.drain(..).map(Event::into_owned).collect();
                accepted = owned.len();
                direct::push(owned, &config, ctx);
            }
        }
    }
    Ok(reply::outcome(
        accepted,
        &rejected,
        &refused,
        bots,
        format == Format::Pixel,
    ))
}

/// Reads the body (of `declared` bytes, when announced) chunk by chunk, at most
/// `max_body` bytes of it: `Ok(Err(BodyTooLarge))` as soon as it passes the limit.
async fn read_body(
    req: &mut Request,
    max_body: usize,
    declared: Option<usize>,
) -> Result<std::result::Result<Vec<u8>, ingest_core::Error>> {
    let mut body = BoundedBody::new(max_body, declared);
    if req.inner().body().is_none() {
        return Ok(Ok(body.into_bytes())); // no body at all (an empty POST)
    }
    let mut stream = req.stream()?;
    while let Some(chunk) = stream.next().await {
        if let Err(e) = body.push(&chunk?) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(body.into_bytes()))
}

/// A site's refusal by its plan quota.
struct QuotaRefusal {
    message: String,
    retry_after_ms: u64,
    resets_at_ms: i64,
}

/// Decides each site's plan quota for `events` at `now`, counting nothing (see
/// [`commit_quota`]): the refused sites, with their refusal.
fn decide_quota(
    events: &[Event<'_>],
    config: &EdgeConfig,
    env: &Env,
    now: i64,
) -> Result<Vec<(String, QuotaRefusal)>> {
    let Some(sites) = config.sites.as_ref() else {
        return Ok(Vec::new()); // no registry: no plans, no quota
    };
    let per_site = per_site(events.iter().map(|ev| ev.site_id.as_ref()));
    with_isolate(env, |iso| {
        let mut refused = Vec::new();
        for (site, n) in per_site {
            let Some(plan) = sites.get(site).and_then(|c| c.plan_def()) else {
                continue;
            };
            if let QuotaDecision::Refuse {
                message,
                retry_after_ms,
                resets_at_ms,
            } = iso.quota.check(site, plan, config.usage.get(site), n, now)
            {
                refused.push((
                    site.to_owned(),
                    QuotaRefusal {
                        message,
                        retry_after_ms,
                        resets_at_ms,
                    },
                ));
            }
        }
        refused
    })
    .map_err(|e| worker::Error::RustError(e.to_string()))
}

/// Counts the enqueued `events` against their sites' quotas, as decided at `checked_at`,
/// and logs a site's first crossing of its plan's limit (once per isolate).
fn commit_quota(events: &[Event<'_>], config: &EdgeConfig, env: &Env, checked_at: i64) {
    let Some(sites) = config.sites.as_ref() else {
        return;
    };
    let per_site = per_site(events.iter().map(|ev| ev.site_id.as_ref()));
    let _ = with_isolate(env, |iso| {
        for (site, n) in per_site {
            let Some(plan) = sites.get(site).and_then(|c| c.plan_def()) else {
                continue;
            };
            if let Some(grace_ends_ms) =
                iso.quota
                    .commit(site, plan, config.usage.get(site), n, checked_at)
            {
                console_warn!(
                    "site {site} crossed its {} quota; accepted until {grace_ends_ms} (grace)",
                    plan.name
                );
            }
        }
    });
}
