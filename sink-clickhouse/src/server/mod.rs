//! The HTTP API (axum): tracker routes, `/v1/batches`, health and metrics.

mod batches;
pub mod client_ip;
pub mod head;
mod health;
pub mod listen;
pub mod reply;
mod status;
mod tracker;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use ingest_core::{DailySalt, Limits, PipelineConfig, RateLimiter};
use ipnet::IpNet;
use tower_http::catch_panic::CatchPanicLayer;

use crate::metrics::Metrics;
use crate::quota::Quotas;
use crate::spool::Spool;
use reply::ApiError;

/// Health shared by the server, the loader and the shutdown path.
#[derive(Debug, Default)]
pub struct Health {
    /// SIGTERM received: `/readyz` false, new requests 503.
    pub shutting_down: AtomicBool,
    /// Unix ms since when loads into ClickHouse fail (0: they succeed).
    pub failing_since_ms: AtomicI64,
    /// Per-URL health as last seen by the loader.
    pub urls: Mutex<Vec<(String, bool)>>,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Limits of the tracker routes (ingest-core's).
    pub pipeline: PipelineConfig,
    /// Largest `/v1/batches` body.
    pub max_batch_bytes: usize,
    /// Most rows in one `/v1/batches` body.
    pub max_batch_rows: usize,
    /// Most ids in one `X-Batch-Ids` header (= most record batches of such a body).
    pub max_batch_ids: usize,
    /// What a `/v1/batches` body may decode to (`--max-ipc-expansion`,
    /// `--min-ipc-decoded-bytes`).
    pub ipc_limits: ingest_core::IpcLimits,
    /// The bearer token of `/v1/batches` (None: refuse all).
    pub batch_token: Option<String>,
    /// Trusted proxies.
    pub trusted_proxies: Vec<IpNet>,
    /// Unready when ClickHouse fails this long.
    pub unready_after: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Limits of every request's target and headers (`--max-url-bytes`,
    /// `--max-header-bytes`, `--max-headers`).
    pub head: head::HeadLimits,
}

/// Everything a handler needs.
pub struct AppState {
    /// Settings.
    pub cfg: HttpConfig,
    /// The spool.
    pub spool: Spool,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Health flags.
    pub health: Arc<Health>,
    /// Sites and quotas.
    pub quotas: Arc<Quotas>,
    limiter: Option<Mutex<RateLimiter>>,
    salt_secret: Vec<u8>,
    salt: Mutex<Option<Arc<DailySalt>>>,
    id_nonce: [u8; 16],
    id_counter: AtomicU64,
}

impl AppState {
    /// Builds the state. `rate` of 0 disables the limiter.
    pub fn new(
        cfg: HttpConfig,
        spool: Spool,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        quotas: Arc<Quotas>,
        limiter: ingest_core::RateLimitConfig,
        salt_secret: Vec<u8>,
    ) -> std::io::Result<Self> {
        let mut id_nonce = [0u8; 16];
        getrandom::fill(&mut id_nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        let enabled = limiter.rate_per_sec > 0.0 && limiter.rate_per_sec.is_finite();
        Ok(AppState {
            cfg,
            spool,
            metrics,
            health,
            quotas,
            limiter: enabled.then(|| Mutex::new(RateLimiter::new(limiter))),
            salt_secret,
            salt: Mutex::new(None),
            id_nonce,
            id_counter: AtomicU64::new(0),
        })
    }

    /// The daily salt of `now_ms` (derived once per UTC day).
    fn salt(&self, now_ms: i64) -> Arc<DailySalt> {
        let mut g = self.salt.lock().expect("salt lock");
        match &*g {
            Some(s) if s.is_for(now_ms) => s.clone(),
            _ => {
                let s = Arc::new(DailySalt::derive(&self.salt_secret, now_ms));
                *g = Some(s.clone());
                s
            }
        }
    }

    /// A fresh, unique event-id seed: a random per-process nonce with a counter mixed
    /// in (unique within the process by construction, random across processes).
    fn id_seed(&self) -> [u8; 16] {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        let mut s = self.id_nonce;
        for (i, b) in n.to_le_bytes().iter().enumerate() {
            s[i] ^= b;
        }
        s
    }

    fn refuse_if_closing(&self) -> Result<(), ApiError> {
        if self.health.shutting_down.load(Ordering::Relaxed) {
            return Err(ApiError::unavailable(
                "shutting_down",
                "the sink is shutting down",
                5,
            ));
        }
        if self.spool.is_full() {
            return Err(ApiError::unavailable(
                "spool_full",
                "the spool is full; retry later",
                10,
            ));
        }
        Ok(())
    }
}

/// Unix time in ms.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The tracker limits the router applies (for `--max-body-bytes` etc.).
pub fn limits(max_body_bytes: usize, max_events: usize) -> Limits {
    Limits {
        max_body_bytes,
        max_events_per_request: max_events,
        ..Limits::default()
    }
}

/// The router with every route and layer.
pub fn router(state: Arc<AppState>) -> Router {
    // Tracker routes answer browsers from any origin, without credentials: every reply
    // of theirs carries `Access-Control-Allow-Origin: *` (`tracker::finish`, errors
    // included), and a preflight is answered by `preflight`. tower-http's `CorsLayer`
    // did the same, but axum clones a route's layers for every request and cloning that
    // one allocated: 12% of the sink's CPU for single-event requests (BENCHMARKS.md,
    // session 18).
    let tracker = Router::new()
        .route("/api/event", post(tracker::plausible).options(preflight))
        .route("/e", post(tracker::own).options(preflight))
        .route("/e.gif", get(tracker::pixel).options(preflight));
    let timeout = state.cfg.request_timeout;
    let head = state.cfg.head;
    let metrics = state.metrics.clone();
    let app = Router::new()
        .merge(tracker)
        .route("/v1/batches", post(batches::post_batch))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/", get(status::page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    with_layers(app, timeout, head, metrics)
}

/// Any other path: a 404 with the JSON body every error has.
async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "path", "not_found", "no such route")
}

/// A known path with another method: a 405 with the JSON body every error has.
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method",
        "method_not_allowed",
        "this route does not take this method (see the `allow` header)",
    )
}

/// The CORS preflight of a tracker route: ingest-core's headers, which the edge worker
/// answers too (any origin, the tracker's methods and its one request header, cached
/// for a day).
async fn preflight() -> impl IntoResponse {
    (StatusCode::NO_CONTENT, ingest_core::CORS_PREFLIGHT_HEADERS)
}

/// Layers every route shares: a request target or headers over `head` are refused (JSON
/// 414 / 431) before any route runs; a caught panic is a 500 JSON reply, not a dead
/// process; a request slower than the timeout (a slow client included) is cut.
pub fn with_layers(
    app: Router,
    timeout: Duration,
    head: head::HeadLimits,
    metrics: Arc<Metrics>,
) -> Router {
    let head = head::HeadLimitLayer {
        limits: head,
        metrics: metrics.clone(),
    };
    // One `Router::layer` of the four composed, not four: axum boxes and clones each
    // `layer` call's stack around every route for every request.
    app.layer(
        tower::ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(
                move |_err: Box<dyn std::any::Any + Send>| {
                    metrics.panics.inc();
                    tracing::error!("panic in a request handler (caught)");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server",
                        "internal",
                        "internal error",
                    )
                    .into_response()
                },
            ))
            // A backstop only: a body is timed out where it is read (408, `read_body`),
            // and a request whose events are staged waits for their fsync, since an
            // error then would make the client send stored events again. Past
            // BACKSTOP × the timeout (the spool stalled) it is answered 503 with
            // `Retry-After`, as JSON like every error.
            .layer(axum::middleware::map_response(json_timeout))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                timeout.saturating_mul(BACKSTOP),
            ))
            // Innermost, where the response body is still axum's (`CatchPanic` boxes it).
            .layer(head),
    )
}

/// The whole request's limit, in request timeouts ([`router`]).
pub const BACKSTOP: u32 = 4;

async fn json_timeout(r: Response) -> Response {
    // The timeout layer's own answer is the only empty 503.
    if r.status() != StatusCode::SERVICE_UNAVAILABLE
        || r.headers().contains_key(header::CONTENT_TYPE)
    {
        return r;
    }
    let mut r = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "request",
        "timeout",
        "the request was not handled in time (the spool is stalled); retry later",
    )
    .closing()
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// Most body bytes read and thrown away to answer an early refusal (401, 503) cleanly:
/// a client still sending a larger body gets its connection closed instead.
pub const DRAIN_MAX: usize = 1 << 20;

/// Reads and discards up to [`DRAIN_MAX`] body bytes, so an early refusal reaches a
/// client that is still sending; past that the refusal says `Connection: close`.
async fn refuse_after_drain(body: Body, e: ApiError, timeout: Duration) -> ApiError {
    // Each piece is dropped as it comes: an unauthenticated client costs no buffer.
    let drain = async {
        let mut body = body;
        let mut read = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            read += frame.data_ref().map_or(0, |d| d.len());
            if read > DRAIN_MAX {
                return false;
            }
        }
        true
    };
    match tokio::time::timeout(timeout, drain).await {
        Ok(true) => e,
        _ => e.closing(),
    }
}

/// Reads a body, never buffering more than `max` bytes: 413 past it; 408 if it has not
/// all arrived within `timeout` (`--request-timeout`: a slow client). This is where a
/// request times out; once its events are staged, it waits for their fsync.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    field: &str,
    timeout: Duration,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = |actual: String| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            field,
            "body_too_large",
            format!("body of {actual} bytes is over the limit of {max}"),
        )
        .closing()
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(too_large(len.to_string()));
        }
    }
    let Ok(read) = tokio::time::timeout(timeout, Limited::new(body, max).collect()).await else {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            field,
            "timeout",
            "the body was not received within the request timeout",
        )
        .closing());
    };
    match read {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(too_large(format!("more than {max}")))
        }
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            field,
            "body_read",
            format!("reading the body failed: {e}"),
        )),
    }
}

fn count_status(state: &AppState, route: &'static str, r: &Response) {
    state
        .metrics
        .requests
        .get_or_create(&crate::metrics::StatusLabel {
            route,
            status: r.status().as_u16(),
        })
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_service_lives_on() {
        let metrics = Arc::new(Metrics::new());
        let app = Router::new()
            .route("/boom", get(|| async { panic!("boom") as &str }))
            .route("/ok", get(|| async { "ok" }));
        let app = with_layers(
            app,
            Duration::from_secs(5),
            head::HeadLimits::default(),
            metrics.clone(),
        );
        let r = app
            .clone()
            .oneshot(
                axum::http::Request::get("/boom")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let r = app
            .oneshot(axum::http::Request::get("/ok").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(metrics.panics.get(), 1);
    }
}
