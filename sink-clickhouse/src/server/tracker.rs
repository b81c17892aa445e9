//! The tracker routes: `POST /api/event` (Plausible), `POST /e` (own format),
//! `GET /e.gif` (pixel). All go through ingest-core's pipeline, the rate limiter, the
//! site quotas, and the spool; the 202 is sent after the spool's fsync.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow_array::{Array, BooleanArray, RecordBatch, StringArray};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ingest_core::{
    client_key, BatchConfig, Batcher, Decision, Format, Pipeline, QuotaDecision, RequestContext,
};

use super::client_ip::{client_info, IpText};
use super::reply::{Accepted, ApiError, RejectedItem};
use super::{count_status, now_ms, read_body, refuse_after_drain, AppState};
use crate::metrics::RouteLabel;
use crate::spool::AppendError;

thread_local! {
    /// One pipeline per worker thread (it keeps parser buffers and a user-agent cache)
    /// and the batcher its requests' rows are appended into, tagged with the state they
    /// were built for.
    static PIPELINE: RefCell<Option<(usize, Pipeline, Batcher)>> = const { RefCell::new(None) };
}

/// The per-request batcher never hands a batch out by itself: the request's rows are
/// taken with `flush` once its rate-limit and quota decisions are made.
const REQUEST_BATCH: BatchConfig = BatchConfig {
    max_rows: usize::MAX,
    max_bytes: usize::MAX,
    max_age_ms: i64::MAX,
};

fn with_pipeline<R>(state: &Arc<AppState>, f: impl FnOnce(&mut Pipeline, &mut Batcher) -> R) -> R {
    let tag = Arc::as_ptr(state) as usize;
    PIPELINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(t, _, _)| *t) != Some(tag) {
            *slot = Some((
                tag,
                Pipeline::new(state.cfg.pipeline.clone()),
                Batcher::new(REQUEST_BATCH),
            ));
        }
        let (_, pipeline, batcher) = slot.as_mut().expect("just set");
        // Rows left by a request that panicked half-way are not this request's.
        let _ = batcher.flush();
        f(pipeline, batcher)
    })
}

// The handlers take the request whole (`Request`, the last extractor, moved in) rather
// than a `HeaderMap` extractor, which clones every header of every request.

/// `POST /api/event`.
pub async fn plausible(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    post_body(&state, "/api/event", Format::Plausible, peer, req).await
}

/// `POST /e`.
pub async fn own(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    post_body(&state, "/e", Format::Own, peer, req).await
}

/// The two JSON routes: read the body under its cap, ingest it, answer.
async fn post_body(
    state: &Arc<AppState>,
    route: &'static str,
    format: Format,
    peer: SocketAddr,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let r = match read_tracker_body(state, headers, body).await {
        Ok(b) => ingest(state, route, format, peer, headers, &b).await,
        Err(e) => Err(e),
    };
    finish(state, route, r.map(IntoResponse::into_response))
}

/// The 1×1 transparent GIF the pixel answers.
pub const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

/// `GET /e.gif?site=…&url=…`: answers the GIF (200) when stored, JSON errors otherwise.
pub async fn pixel(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let headers = &parts.headers;
    let q = parts.uri.query().unwrap_or("");
    let max = state.cfg.pipeline.limits.max_body_bytes;
    let r = if q.len() > max {
        Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "query",
            "body_too_large",
            format!(
                "query string of {} bytes is over the limit of {max}",
                q.len()
            ),
        ))
    } else {
        match state.refuse_if_closing() {
            Ok(()) => ingest(&state, "/e.gif", Format::Pixel, peer, headers, q.as_bytes()).await,
            Err(e) => Err(e),
        }
    };
    let r = r.map(|_| {
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "image/gif"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            GIF,
        )
            .into_response()
    });
    finish(&state, "/e.gif", r)
}

/// Every tracker reply: counted, and readable by a page of any origin (no credentials),
/// errors included.
fn finish(state: &AppState, route: &'static str, r: Result<Response, ApiError>) -> Response {
    let mut r = r.unwrap_or_else(IntoResponse::into_response);
    count_status(state, route, &r);
    let (name, value) = ingest_core::CORS_ALLOW_ORIGIN;
    r.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    r
}

async fn read_tracker_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<bytes::Bytes, ApiError> {
    if let Err(e) = state.refuse_if_closing() {
        return Err(refuse_after_drain(body, e, state.cfg.request_timeout).await);
    }
    read_body(
        headers,
        body,
        state.cfg.pipeline.limits.max_body_bytes,
        "body",
        state.cfg.request_timeout,
    )
    .await
}

/// What the synchronous part of a request produced.
struct Prepared {
    pending: Pending,
    accepted: usize,
    rejected: Vec<RejectedItem>,
    per_site: Vec<(String, u64)>,
}

/// Where a request's accepted rows are while its decisions are made.
enum Rows {
    /// Still in the thread's batcher (the common case).
    InBatcher,
    /// Taken out as a batch (a quota filter, or a spill of the batcher).
    Batch(RecordBatch),
}

/// What the request waits for once its synchronous part is done.
enum Pending {
    /// No rows to store.
    Nothing,
    /// Rows moved into the spool's next round.
    Staged(crate::spool::StagedRows),
    /// Rows sent as a batch (a full queue, a quota filter).
    Batch(RecordBatch),
}

/// The batch's `site_id` column (schema v1: non-null Utf8).
fn site_column(batch: &RecordBatch) -> &StringArray {
    batch
        .column_by_name("site_id")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .expect("schema v1 has a Utf8 site_id")
}

/// Rows of each site, in first-seen order (almost always one site). A run of one site
/// costs a compare per row; a body mixing many sites (a server-side integration) a
/// hash lookup per row, not a scan of every site seen so far.
pub(super) fn rows_per_site<'s>(site_ids: impl Iterator<Item = &'s str>) -> Vec<(String, u64)> {
    let mut sites: Vec<(&str, u64)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut last = 0;
    for site in site_ids {
        if sites.get(last).is_none_or(|(s, _)| *s != site) {
            last = *index.entry(site).or_insert_with(|| {
                sites.push((site, 0));
                sites.len() - 1
            });
        }
        sites[last].1 += 1;
    }
    sites.into_iter().map(|(s, n)| (s.to_owned(), n)).collect()
}

/// The index in the request of each row of its batch, in row order: the rows are the
/// request's events in order, less the rejected ones (`rejected` in index order, as
/// `Appended` gives it). A request of bots has no rows, so it never gets here.
fn request_indexes(rejected: &[ingest_core::Rejection]) -> impl Iterator<Item = usize> + '_ {
    let mut skip = rejected.iter().map(|r| r.index).peekable();
    (0..).filter(move |i| {
        if skip.peek() == Some(i) {
            skip.next();
            false
        } else {
            true
        }
    })
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Spool failures are never the client's fault: 503 + Retry-After.
pub fn spool_error(e: AppendError) -> ApiError {
    match e {
        AppendError::Full => {
            ApiError::unavailable("spool_full", "the spool is full; retry later", 10)
        }
        AppendError::Closed => {
            ApiError::unavailable("shutting_down", "the sink is shutting down", 5)
        }
        AppendError::Io(m) => {
            tracing::error!(error = %m, "spool append failed");
            ApiError::unavailable("spool_error", "could not store the events; retry later", 5)
        }
    }
}

async fn ingest(
    state: &Arc<AppState>,
    route: &'static str,
    format: Format,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted, ApiError> {
    let now = now_ms();
    let client = client_info(peer.ip(), headers, &state.cfg.trusted_proxies);
    let ip = IpText::new(client.ip);
    let ip = ip.as_str();
    let geo = |h: &str| {
        if client.via_trusted_proxy {
            header_str(headers, h)
        } else {
            ""
        }
    };
    let salt = state.salt(now);
    let sites = state.quotas.registry();
    let ctx = RequestContext {
        received_at_ms: now,
        client_ip: ip,
        user_agent: header_str(headers, "user-agent"),
        country: geo("cf-ipcountry"),
        region: geo("cf-region"),
        city: geo("cf-ipcity"),
        id_seed: state.id_seed(),
        salt: &salt,
        sites: sites.as_deref(),
    };
    let m = &state.metrics;
    let prepared = with_pipeline(state, |p, batcher| -> Result<Prepared, ApiError> {
        // The direct path: accepted rows go straight into the thread's batcher (no
        // `Event` per row), and from there into the spool's round.
        let mut spilled: Vec<RecordBatch> = Vec::new();
        let out = p
            // Read in place: the parser copies only events its fast path cannot take.
            .process_slice_into(format, body, &ctx, batcher, now, &mut |b| spilled.push(b))
            .map_err(|e| {
                if e.is_caller_bug() {
                    // The sink's own bug (a salt of another day), not the request's:
                    // logged, and not counted as a rejected event.
                    tracing::error!(error = %e, "the pipeline refused the sink's request context");
                } else {
                    m.received.get_or_create(&RouteLabel { route }).inc();
                    m.reject(e.code(), 1);
                }
                ApiError::bad_input(&e)
            })?;
        let total = out.accepted + out.rejected.len() + out.bots;
        m.received
            .get_or_create(&RouteLabel { route })
            .inc_by(total as u64);
        m.bots.inc_by(out.bots as u64);
        for r in &out.rejected {
            m.reject(r.error.code(), 1);
        }
        // REQUEST_BATCH never spills; were it to, all rows go as one batch.
        let mut rows = if spilled.is_empty() {
            Rows::InBatcher
        } else {
            spilled.extend(batcher.flush());
            Rows::Batch(
                arrow_select::concat::concat_batches(&spilled[0].schema(), &spilled)
                    .expect("batches of one batcher share its schema"),
            )
        };
        let n = match &rows {
            Rows::InBatcher => batcher.len(),
            Rows::Batch(b) => b.num_rows(),
        };
        let mut rejected: Vec<RejectedItem> = out.rejected.iter().map(RejectedItem::from).collect();
        if let (Some(l), true) = (&state.limiter, n > 0) {
            let key = client_key(&salt, ip);
            let n32 = u32::try_from(n).unwrap_or(u32::MAX);
            if let Decision::Deny { retry_after_ms } =
                l.lock().expect("limiter").check_n(key, n32, now)
            {
                m.rate_limited.inc();
                m.reject("rate_limited", n as u64);
                return Err(ApiError::too_many(
                    "client",
                    "rate_limited",
                    "too many events from this client; slow down",
                    retry_after_ms,
                ));
            }
        }
        // Quotas, per site of the request (almost always one); without a sites file
        // there is nothing to check or count.
        let mut per_site = match &rows {
            _ if !state.quotas.enabled() => Vec::new(),
            Rows::InBatcher => rows_per_site(batcher.site_ids()),
            Rows::Batch(b) => rows_per_site(site_column(b).iter().flatten()),
        };
        let mut kept = n;
        let mut quota_refusal = None;
        if let (Some(_), true) = (&sites, n > 0) {
            let mut refused_sites = Vec::new();
            for (site, n) in &per_site {
                match state.quotas.check(site, *n, now) {
                    // A crossing is recorded (and logged) by `commit`, once stored.
                    QuotaDecision::Accept | QuotaDecision::AcceptInGrace { .. } => {}
                    QuotaDecision::Refuse {
                        message,
                        retry_after_ms,
                        ..
                    } => {
                        refused_sites.push(site.clone());
                        quota_refusal = Some(ApiError::too_many(
                            "site",
                            "quota_exceeded",
                            message,
                            retry_after_ms,
                        ));
                    }
                }
            }
            if !refused_sites.is_empty() {
                // Rare: the request's rows leave the batcher as a batch, filtered.
                let b = match rows {
                    Rows::InBatcher => batcher.flush().expect("n > 0 rows"),
                    Rows::Batch(b) => b,
                };
                let site_col = site_column(&b);
                let keep: BooleanArray = (0..b.num_rows())
                    .zip(request_indexes(&out.rejected))
                    .map(|(i, index)| {
                        let refused = refused_sites.iter().any(|s| s == site_col.value(i));
                        if refused {
                            rejected.push(RejectedItem {
                                index,
                                field: "site".into(),
                                code: "quota_exceeded",
                                reason: "the site is over its monthly quota".into(),
                            });
                        }
                        Some(!refused)
                    })
                    .collect();
                rejected.sort_by_key(|r| r.index);
                let b = arrow_select::filter::filter_record_batch(&b, &keep)
                    .expect("a mask as long as the batch");
                kept = b.num_rows();
                rows = Rows::Batch(b);
                per_site.retain(|(s, _)| !refused_sites.contains(s));
                m.quota_refused.inc();
            }
        }
        if kept == 0 {
            if let Some(e) = quota_refusal {
                return Err(e);
            }
            if let (Some(first), 0) = (out.rejected.first(), out.bots) {
                let mut e = ApiError::bad_input(&first.error);
                e.rejected = rejected;
                return Err(e);
            }
        }
        let pending = match rows {
            _ if kept == 0 => Pending::Nothing,
            // The common case: the rows move into the spool's round, no batch of their own.
            Rows::InBatcher => match state.spool.stage(batcher).map_err(spool_error)? {
                Some(staged) => Pending::Staged(staged),
                None => Pending::Batch(batcher.flush().expect("kept > 0 rows")),
            },
            Rows::Batch(b) => Pending::Batch(b),
        };
        Ok(Prepared {
            accepted: kept,
            pending,
            rejected,
            per_site,
        })
    })?;
    let stored = match prepared.pending {
        Pending::Nothing => None,
        Pending::Staged(staged) => Some(staged.stored().await),
        Pending::Batch(batch) => Some(state.spool.append_events(batch).await),
    };
    if let Some(stored) = stored {
        stored.map_err(spool_error)?;
        m.accepted
            .get_or_create(&RouteLabel { route })
            .inc_by(prepared.accepted as u64);
        // Only now, with the events stored, do they count and start a grace period.
        for (site, n) in &prepared.per_site {
            if let Some(grace_ends_ms) = state.quotas.commit(site, *n, now) {
                tracing::warn!(
                    site,
                    grace_ends_ms,
                    "site crossed its monthly quota; in grace"
                );
            }
        }
    }
    Ok(Accepted {
        accepted: prepared.accepted,
        rejected: prepared.rejected,
        already_stored: false,
        already_stored_batches: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest_core::{events_to_batch, Event};

    #[test]
    fn rows_per_site_counts_runs_and_mixed_sites_in_first_seen_order() {
        let ev = |s: &'static str| Event {
            site_id: s.into(),
            ..Event::default()
        };
        let sites = ["a", "a", "b", "a", "c", "b", "b", "a"];
        let batch = events_to_batch(&sites.map(ev));
        assert_eq!(
            rows_per_site(site_column(&batch).iter().flatten()),
            vec![("a".into(), 4), ("b".into(), 3), ("c".into(), 1)]
        );
        assert!(rows_per_site(std::iter::empty()).is_empty());
    }

    #[test]
    fn request_indexes_skip_the_rejected_events() {
        let rej = |index| ingest_core::Rejection {
            index,
            error: ingest_core::Error::Missing {
                field: "site".into(),
            },
        };
        let take = |r: &[ingest_core::Rejection], n| request_indexes(r).take(n).collect::<Vec<_>>();
        assert_eq!(take(&[], 3), [0, 1, 2]);
        assert_eq!(take(&[rej(0), rej(2), rej(3), rej(6)], 4), [1, 4, 5, 7]);
    }
}
