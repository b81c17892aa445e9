//! `#[event(fetch)]`: the tracker routes.
//!
//! Per request, only: read the body (refused early by `Content-Length` when too large),
//! parse + validate + enrich (ingest-core pipeline, with `request.cf` and the hashed
//! client), rate-limit (GCRA per isolate, then Cloudflare's binding if configured),
//! apply the plan quota, enqueue (Queue, or the direct-mode micro-batch), reply.

use std::rc::Rc;

use ingest_core::{
    client_key, parse_pixel, Decision, Event, Format, QuotaDecision, Rejection, RequestContext,
};
use wasm_bindgen::JsValue;
use worker::{
    console_error, console_warn, event, Context, Env, Method, QueueContentType, RawMessageBuilder,
    Request, Response, Result,
};

use super::{direct, now_ms, random_seed, with_isolate};
use crate::config::{EdgeConfig, QUEUE_BINDING, RATE_LIMITER_BINDING};
use crate::reply::{self, Body, Reply, CORS_HEADERS, GIF};
use crate::tracker;

/// A Queue message holds at most this many bytes of serialized events (Cloudflare's
/// limit is 128 KB per message; the margin covers the envelope).
const MAX_MESSAGE_BYTES: usize = 100 * 1024;

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
    let declared_len: Option<usize> = headers
        .get("Content-Length")?
        .and_then(|v| v.trim().parse().ok());
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
    // Refuse an announced oversize body before reading it into memory.
    if let Some(len) = declared_len.filter(|&l| l > max_body) {
        return Ok(reply::problem(&ingest_core::Error::BodyTooLarge {
            limit: max_body,
            actual: len,
        }));
    }
    let query;
    let mut body = Vec::new();
    if format == Format::Pixel {
        query = req.url()?.query().unwrap_or_default().to_owned();
    } else {
        query = String::new();
        body = req.bytes().await?;
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
                .map(|parsed| iso.pipeline.process_raw(parsed, &rctx))
        } else {
            iso.pipeline.process(format, &mut body, &rctx)
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => return Step::Done(reply::problem(&e)),
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
    // location, so it catches what one isolate's GCRA cannot see.
    if let Ok(limiter) = env.rate_limiter(RATE_LIMITER_BINDING) {
        let outcome = limiter.limit(format!("{key:016x}")).await?;
        if !outcome.success {
            return Ok(reply::rate_limited(10_000));
        }
    }

    if let Some(refusal) = apply_quota(&mut events, &config, env, now)? {
        if events.is_empty() {
            return Ok(refusal);
        }
    }

    let accepted = events.len();
    if accepted > 0 {
        match env.queue(QUEUE_BINDING) {
            Ok(queue) => {
                for chunk in message_chunks(&events)? {
                    let msg = RawMessageBuilder::new(JsValue::from_str(&chunk))
                        .build_with_content_type(QueueContentType::Text);
                    if let Err(e) = queue.send_raw(msg).await {
                        console_error!("queue send failed: {e}");
                        return Ok(reply::unavailable("the event queue is unavailable"));
                    }
                }
            }
            Err(_) => direct::push(
                events.into_iter().map(Event::into_owned).collect(),
                &config,
                ctx,
            ),
        }
    }
    Ok(reply::outcome(
        accepted,
        &rejected,
        bots,
        format == Format::Pixel,
    ))
}

/// Applies each site's plan quota to `events`, removing the events of refused sites.
/// Returns the refusal reply when a site was refused.
fn apply_quota(
    events: &mut Vec<Event<'_>>,
    config: &EdgeConfig,
    env: &Env,
    now: i64,
) -> Result<Option<Reply>> {
    let Some(sites) = config.sites.as_ref() else {
        return Ok(None); // no registry: no plans, no quota
    };
    // Events per site (a request holds one or a few sites: a small vector beats a map).
    let mut per_site: Vec<(String, u64)> = Vec::new();
    for ev in events.iter() {
        match per_site.iter_mut().find(|(s, _)| *s == ev.site_id) {
            Some((_, n)) => *n += 1,
            None => per_site.push((ev.site_id.to_string(), 1)),
        }
    }
    let mut refusal = None;
    let mut refused: Vec<String> = Vec::new();
    with_isolate(env, |iso| {
        for (site, n) in &per_site {
            let Some(plan) = sites.get(site).and_then(|c| c.plan_def()) else {
                continue;
            };
            match iso
                .quota
                .check(site, plan, config.usage.get(site.as_str()), *n, now)
            {
                QuotaDecision::Accept => {}
                QuotaDecision::AcceptInGrace {
                    first_crossing,
                    grace_ends_ms,
                } => {
                    if first_crossing {
                        console_warn!(
                            "site {site} crossed its {} quota; accepted until {grace_ends_ms} (grace)",
                            plan.name
                        );
                    }
                }
                QuotaDecision::Refuse {
                    message,
                    retry_after_ms,
                    resets_at_ms,
                } => {
                    refused.push(site.clone());
                    refusal.get_or_insert_with(|| {
                        reply::quota_refused(&message, retry_after_ms, resets_at_ms)
                    });
                }
            }
        }
    })
    .map_err(|e| worker::Error::RustError(e.to_string()))?;
    if !refused.is_empty() {
        events.retain(|ev| !refused.iter().any(|s| *s == ev.site_id));
    }
    Ok(refusal)
}

/// The events as JSON arrays of at most [`MAX_MESSAGE_BYTES`] each (one message per
/// request in practice; a large request is split so no message is over the limit).
fn message_chunks(events: &[Event<'_>]) -> Result<Vec<String>> {
    let mut chunks = Vec::new();
    let mut cur = String::from("[");
    for ev in events {
        let one = serde_json::to_string(ev)?;
        if cur.len() > 1 && cur.len() + one.len() + 2 > MAX_MESSAGE_BYTES {
            cur.push(']');
            chunks.push(std::mem::replace(&mut cur, String::from("[")));
        }
        if cur.len() > 1 {
            cur.push(',');
        }
        cur.push_str(&one);
    }
    cur.push(']');
    chunks.push(cur);
    Ok(chunks)
}
