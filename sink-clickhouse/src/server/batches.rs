//! `POST /v1/batches`: Arrow IPC streams from the edge. Bearer token (compared in
//! constant time), not a CORS endpoint. Deduplication by batch id, either:
//!
//! - `X-Batch-Ids: id1,id2,…`: one id per IPC record batch of the body, in order (the
//!   edge sends one record batch per Queue message, each under an id derived from that
//!   message alone, so a redelivery that groups messages differently still finds each
//!   one's id). Each record batch is checked on its own: only those whose id is not
//!   known are stored, together in one spool round (one fsync), and the reply says how
//!   many were already stored (`already_stored_batches`). At most `--max-batch-ids`
//!   ids; a count that differs from the body's record batches is a 400
//!   (`field: "x-batch-ids"`). `X-Batch-Id` is ignored when this header is present;
//! - `X-Batch-Id: id`: one id for the whole body (as before `X-Batch-Ids`).
//!
//! Every record batch is checked by [`ingest_core::conform`] before anything is
//! stored; one that fails refuses the whole body (400, code `schema`, naming the
//! column). That includes a `site_id` that is not canonical — empty, with surrounding
//! ASCII whitespace, or with ASCII capitals: it is refused, not rewritten, since its
//! row's `visitor_id` was hashed with it (see `conform`). The edge sends canonical ids
//! only; on a 400 it posts the messages of the body one by one and dead-letters only
//! the one refused alone.
//!
//! Posted site ids are not checked against the sites file (the edge checked them
//! against its own registry); they are only counted for the quotas
//! (`Quotas::record`), keyed by the id as stored. Being canonical, that is the key
//! the registry's lookup and the store's month-to-date counts use.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::reply::{Accepted, ApiError};
use super::tracker::spool_error;
use super::{count_status, now_ms, read_body, refuse_after_drain, AppState};
use crate::metrics::RouteLabel;
use crate::spool::batch_ids::MAX_BATCH_ID_LEN;
use crate::spool::{Appended, BatchPart};

const ROUTE: &str = "/v1/batches";

/// `POST /v1/batches` (the request taken whole: a `HeaderMap` extractor clones it).
pub async fn post_batch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let r = handle(&state, &parts.headers, body).await;
    let r = r.map_or_else(IntoResponse::into_response, IntoResponse::into_response);
    count_status(&state, ROUTE, &r);
    r
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = state.cfg.batch_token.as_deref() else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant time over the contents; the length is not a secret worth hiding.
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

async fn handle(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Accepted, ApiError> {
    if !authorized(state, headers) {
        state.metrics.reject("unauthorized", 1);
        let e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "unauthorized",
            "a valid bearer token is required",
        );
        return Err(refuse_after_drain(body, e, state.cfg.request_timeout).await);
    }
    if let Err(e) = state.refuse_if_closing() {
        return Err(refuse_after_drain(body, e, state.cfg.request_timeout).await);
    }
    let ids = batch_ids(headers, state.cfg.max_batch_ids)?;
    let id = match headers.get("x-batch-id") {
        None => None,
        Some(_) if ids.is_some() => None,
        Some(v) => {
            let b = v.as_bytes();
            if b.is_empty() || b.len() > MAX_BATCH_ID_LEN || !b.iter().all(|c| c.is_ascii_graphic())
            {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "x-batch-id",
                    "invalid",
                    format!("1 to {MAX_BATCH_ID_LEN} visible ASCII characters expected"),
                )
                .closing());
            }
            Some(b.to_vec())
        }
    };
    let bytes = read_body(
        headers,
        body,
        state.cfg.max_batch_bytes,
        "body",
        state.cfg.request_timeout,
    )
    .await?;
    let bad = |e: ingest_core::Error| {
        state.metrics.reject(e.code(), 1);
        ApiError::bad_input(&e)
    };
    let max_decoded = state.cfg.ipc_limits.max_decoded_bytes(bytes.len());
    let batches = ingest_core::read_ipc_limited(&bytes, state.cfg.max_batch_rows, max_decoded)
        .map_err(bad)?;
    drop(bytes);
    if let Some(ids) = &ids {
        if ids.len() != batches.len() {
            state.metrics.reject("batch_ids_mismatch", 1);
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "x-batch-ids",
                "count_mismatch",
                format!(
                    "{} ids for {} record batches: one id per record batch expected",
                    ids.len(),
                    batches.len()
                ),
            ));
        }
    }
    // With `X-Batch-Ids`, the index of each kept batch's id.
    let (batches, kept): (Vec<_>, Vec<usize>) = batches
        .iter()
        .enumerate()
        .filter(|(_, b)| b.num_rows() > 0)
        .map(|(i, b)| ingest_core::conform(b).map(|b| (b, i)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?
        .into_iter()
        .unzip();
    if let Some(ids) = ids {
        return store_parts(state, ids, batches, &kept).await;
    }
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let m = &state.metrics;
    m.received
        .get_or_create(&RouteLabel { route: ROUTE })
        .inc_by(rows as u64);
    if rows == 0 {
        return Ok(Accepted {
            accepted: 0,
            rejected: Vec::new(),
            already_stored: false,
            already_stored_batches: 0,
        });
    }
    // Counted for the quotas only (without a sites file nothing is recorded).
    let per_site = if state.quotas.enabled() {
        use arrow_array::cast::AsArray;
        let cols: Vec<_> = batches
            .iter()
            .filter_map(|b| b.column_by_name("site_id")?.as_string_opt::<i32>())
            .collect();
        super::tracker::rows_per_site(cols.iter().flat_map(|a| a.iter().flatten()))
    } else {
        Vec::new()
    };
    match state
        .spool
        .append_batch(id, batches)
        .await
        .map_err(spool_error)?
    {
        Appended::Stored => {
            m.accepted
                .get_or_create(&RouteLabel { route: ROUTE })
                .inc_by(rows as u64);
            for (s, n) in &per_site {
                state.quotas.record(s, *n, now_ms());
            }
            Ok(Accepted {
                accepted: rows,
                rejected: Vec::new(),
                already_stored: false,
                already_stored_batches: 0,
            })
        }
        Appended::AlreadyStored => {
            m.duplicate_batches.inc();
            Ok(Accepted {
                accepted: 0,
                rejected: Vec::new(),
                already_stored: true,
                already_stored_batches: 0,
            })
        }
    }
}

/// The ids of `X-Batch-Ids` (`None` without it): comma-separated, spaces around them
/// ignored, each 1 to [`MAX_BATCH_ID_LEN`] visible ASCII characters other than a comma,
/// at most `max` of them.
fn batch_ids(headers: &HeaderMap, max: usize) -> Result<Option<Vec<Vec<u8>>>, ApiError> {
    let Some(v) = headers.get("x-batch-ids") else {
        return Ok(None);
    };
    let invalid = |reason: String| {
        Err(ApiError::new(StatusCode::BAD_REQUEST, "x-batch-ids", "invalid", reason).closing())
    };
    let mut ids = Vec::new();
    for id in v.as_bytes().split(|&c| c == b',') {
        let id = id.trim_ascii();
        if ids.len() == max {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "x-batch-ids",
                "too_many",
                format!("at most {max} ids (--max-batch-ids)"),
            )
            .closing());
        }
        if id.is_empty() || id.len() > MAX_BATCH_ID_LEN || !id.iter().all(u8::is_ascii_graphic) {
            return invalid(format!(
                "comma-separated ids of 1 to {MAX_BATCH_ID_LEN} visible ASCII characters expected"
            ));
        }
        ids.push(id.to_vec());
    }
    Ok(Some(ids))
}

/// Stores the record batches of an `X-Batch-Ids` request whose ids are not known, in
/// one spool round; `kept[i]` is the index in `ids` of `batches[i]` (batches without
/// rows are not stored, and their ids not remembered).
async fn store_parts(
    state: &AppState,
    ids: Vec<Vec<u8>>,
    batches: Vec<arrow_array::RecordBatch>,
    kept: &[usize],
) -> Result<Accepted, ApiError> {
    let mut ids: Vec<Option<Vec<u8>>> = ids.into_iter().map(Some).collect();
    let parts: Vec<BatchPart> = batches
        .into_iter()
        .zip(kept)
        .map(|(b, &i)| BatchPart {
            id: ids[i].take(),
            batches: vec![b],
        })
        .collect();
    let rows: Vec<usize> = parts.iter().map(|p| p.batches[0].num_rows()).collect();
    let m = &state.metrics;
    m.received
        .get_or_create(&RouteLabel { route: ROUTE })
        .inc_by(rows.iter().sum::<usize>() as u64);
    if parts.is_empty() {
        return Ok(Accepted {
            accepted: 0,
            rejected: Vec::new(),
            already_stored: false,
            already_stored_batches: 0,
        });
    }
    // Counted for the quotas only, of the parts stored (without a sites file nothing
    // is recorded).
    let site_cols: Vec<_> = if state.quotas.enabled() {
        use arrow_array::cast::AsArray;
        parts
            .iter()
            .map(|p| {
                p.batches[0]
                    .column_by_name("site_id")
                    .and_then(|c| c.as_string_opt::<i32>().cloned())
            })
            .collect()
    } else {
        Vec::new()
    };
    let outcome = state
        .spool
        .append_batches(parts)
        .await
        .map_err(spool_error)?;
    let mut accepted = 0;
    let mut already = 0;
    let mut stored_sites = Vec::new();
    for (i, o) in outcome.iter().enumerate() {
        match o {
            Appended::Stored => {
                accepted += rows[i];
                if let Some(Some(c)) = site_cols.get(i) {
                    stored_sites.push(c);
                }
            }
            Appended::AlreadyStored => already += 1,
        }
    }
    m.accepted
        .get_or_create(&RouteLabel { route: ROUTE })
        .inc_by(accepted as u64);
    m.duplicate_batches.inc_by(already as u64);
    if !stored_sites.is_empty() {
        let per_site =
            super::tracker::rows_per_site(stored_sites.iter().flat_map(|a| a.iter().flatten()));
        for (s, n) in &per_site {
            state.quotas.record(s, *n, now_ms());
        }
    }
    Ok(Accepted {
        accepted,
        rejected: Vec::new(),
        // 200 when nothing was new: the whole body was stored before.
        already_stored: accepted == 0 && already > 0,
        already_stored_batches: already,
    })
}
