//! `POST /v1/batches`: Arrow IPC streams from the edge. Bearer token (compared in
//! constant time), `X-Batch-Id` for deduplication, not a CORS endpoint.

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
use crate::spool::Appended;

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
    let id = match headers.get("x-batch-id") {
        None => None,
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
    let batches = batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(ingest_core::conform)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
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
            })
        }
        Appended::AlreadyStored => {
            m.duplicate_batches.inc();
            Ok(Accepted {
                accepted: 0,
                rejected: Vec::new(),
                already_stored: true,
            })
        }
    }
}
