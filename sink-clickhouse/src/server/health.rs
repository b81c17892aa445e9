//! `GET /healthz` (alive), `GET /readyz` (should get traffic), `GET /metrics`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{now_ms, AppState};

/// Alive: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready unless shutting down, the spool is full or broken, or ClickHouse has been
/// failing for longer than `--unready-after`.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let h = &state.health;
    let shutting_down = h.shutting_down.load(Ordering::Relaxed);
    let full = state.spool.is_full();
    let broken = state.spool.is_broken();
    let since = h.failing_since_ms.load(Ordering::Relaxed);
    let failing_ms = if since > 0 {
        (now_ms() - since).max(0)
    } else {
        0
    };
    let ch_down = since > 0 && failing_ms as u128 >= state.cfg.unready_after.as_millis();
    let ready = !(shutting_down || full || broken || ch_down);
    let urls: Vec<_> = h
        .urls
        .lock()
        .map(|u| {
            u.iter()
                .map(|(u, ok)| json!({"url": u, "ok": ok}))
                .collect()
        })
        .unwrap_or_default();
    let body = json!({
        "ready": ready,
        "shutting_down": shutting_down,
        "spool_full": full,
        "spool_broken": broken,
        "spool_bytes": state.spool.bytes(),
        "load_failing_for_ms": failing_ms,
        "clickhouse": urls,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.metrics;
    m.spool_bytes.set(state.spool.bytes() as i64);
    m.spool_recycled_bytes
        .set(state.spool.recycled_bytes() as i64);
    let (written, rounds) = state.spool.written();
    // The counters follow the spool's totals; `fetch_max`, so that scrapes at the same
    // time (Prometheus, the status page) cannot each add the same change.
    m.spool_written_bytes
        .inner()
        .fetch_max(written, std::sync::atomic::Ordering::Relaxed);
    m.spool_fsyncs
        .inner()
        .fetch_max(rounds, std::sync::atomic::Ordering::Relaxed);
    if let Ok(sealed) = state.spool.sealed() {
        m.spool_segments.set(sealed.len() as i64);
        let oldest = sealed
            .first()
            .and_then(|s| std::fs::metadata(&s.path).ok())
            .and_then(|md| md.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .map_or(0, |d| d.as_secs() as i64);
        m.spool_oldest_age_seconds.set(oldest);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}
