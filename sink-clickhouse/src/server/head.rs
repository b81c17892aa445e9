//! The request head's limits: every request's target and headers are measured against
//! `--max-url-bytes`, `--max-header-bytes` and `--max-headers` before any route runs,
//! and one over any is refused with the JSON every error has — `414 url_too_long`
//! naming `url`, `431 headers_too_large` or `431 too_many_headers` naming `headers` —
//! instead of hyper's bare status.
//!
//! hyper still answers a head that does not fit the connection's read buffer
//! ([`MAX_CONNECTION_BUFFER`]), or that has more than [`MAX_HEADER_LINES`] headers,
//! itself, with a bare 431: such a request never reaches the sink. The ceilings below
//! keep both byte limits together, with room for the method, the request line's
//! framing and header whitespace, inside that buffer, and the header count under
//! hyper's, so a request just over any limit is always read whole and answered here.

use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tower::{Layer, Service};

use super::listen::{MAX_CONNECTION_BUFFER, MAX_HEADER_LINES};
use super::reply::ApiError;
use crate::metrics::{Metrics, StatusLabel};

/// Default `--max-url-bytes`: a pixel request carries at most a 2048-byte URL and
/// referrer, percent-encoded, and a few props; Cloudflare's limit on a URL is the same.
pub const DEFAULT_MAX_URL_BYTES: usize = 16 << 10;
/// Default `--max-header-bytes`: a browser sends 0.5–2 KiB, proxies add a few hundred
/// bytes; Cloudflare's limit on a request's headers is the same.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 << 10;
/// The smallest `--max-url-bytes` and `--max-header-bytes`: below it a limit would
/// refuse ordinary requests.
pub const MIN_HEAD_LIMIT_BYTES: usize = 1 << 10;
/// The largest `--max-url-bytes`.
pub const MAX_URL_BYTES_CEILING: usize = 24 << 10;
/// The largest `--max-header-bytes`.
pub const MAX_HEADER_BYTES_CEILING: usize = 32 << 10;
/// Room in the read buffer beyond both limits: the method, ` HTTP/1.1`, line ends and
/// whitespace around header values that the count below does not include.
const FRAMING_ROOM: usize = 8 << 10;
const _: () = assert!(
    MAX_URL_BYTES_CEILING + MAX_HEADER_BYTES_CEILING + FRAMING_ROOM <= MAX_CONNECTION_BUFFER
);
/// Default `--max-headers`: a browser's beacon carries 15–20 headers (fetch metadata
/// and client hints included), and a CDN and proxies in front of the sink add 10–20
/// more; 64 leaves room for both, and a client sending more is not a browser.
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// The smallest `--max-headers`: below it a browser's beacon through a CDN would be
/// refused.
pub const MIN_MAX_HEADERS: usize = 32;
/// The largest `--max-headers`: one under hyper's own count ([`MAX_HEADER_LINES`]),
/// so one header over the limit still reaches the sink and gets its JSON.
pub const MAX_HEADERS_CEILING: usize = MAX_HEADER_LINES - 1;

/// The three limits of a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Longest request target (path and query string; scheme and host too in absolute form), in bytes.
    pub max_url_bytes: usize,
    /// Most header bytes, counted by [`header_bytes`].
    pub max_header_bytes: usize,
    /// Most header lines (a repeated name counts each time).
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_url_bytes: DEFAULT_MAX_URL_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

impl HeadLimits {
    /// `Ok` for a head within all three limits, else the refusal (with `Connection:
    /// close`: a body the request may carry is not read).
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        let target = target_bytes(uri);
        if target > self.max_url_bytes {
            return Err(ApiError::new(
                StatusCode::URI_TOO_LONG,
                "url",
                "url_too_long",
                format!(
                    "request target of {target} bytes is over the limit of {}",
                    self.max_url_bytes
                ),
            )
            .closing());
        }
        let h = header_bytes(headers);
        if h > self.max_header_bytes {
            return Err(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers",
                "headers_too_large",
                format!(
                    "request headers of {h} bytes are over the limit of {}",
                    self.max_header_bytes
                ),
            )
            .closing());
        }
        // `len` counts every value, as hyper counts lines: `X-A` twice is two.
        let n = headers.len();
        if n > self.max_headers {
            return Err(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers",
                "too_many_headers",
                format!(
                    "request of {n} headers is over the limit of {}",
                    self.max_headers
                ),
            )
            .closing());
        }
        Ok(())
    }
}

/// The request target's bytes as sent: the path and query string, plus the scheme and
/// authority of an absolute-form target (`GET http://host/path`).
pub fn target_bytes(uri: &Uri) -> usize {
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + "://".len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    scheme + authority + uri.path_and_query().map_or(0, |p| p.as_str().len())
}

/// The headers' bytes: name + value + 4 (`: ` and CRLF) each, what a client sending
/// `Name: value` lines puts on the wire.
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
}

/// The layer of [`HeadLimit`] (in `server::with_layers`).
#[derive(Clone)]
pub struct HeadLimitLayer {
    /// The limits.
    pub limits: HeadLimits,
    /// Where refusals on counted routes are counted.
    pub metrics: Arc<Metrics>,
}

impl<S> Layer<S> for HeadLimitLayer {
    type Service = HeadLimit<S>;

    fn layer(&self, inner: S) -> HeadLimit<S> {
        HeadLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// Answers a request whose head is over a limit without calling the route. Written as
/// a service rather than with `axum::middleware`, whose layers box a future and clone
/// the inner service for every request: this one costs a length sum and a branch.
#[derive(Clone)]
pub struct HeadLimit<S> {
    inner: S,
    layer: HeadLimitLayer,
}

impl<S> Service<Request> for HeadLimit<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match self.layer.limits.check(req.uri(), req.headers()) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(e) => Either::Left(ready(Ok(self.refuse(req.uri().path(), e)))),
        }
    }
}

impl<S> HeadLimit<S> {
    /// The refusal as its route would answer it: counted in `sink_requests_total` like
    /// the route's other replies, and readable from any origin on a tracker route.
    fn refuse(&self, path: &str, e: ApiError) -> Response {
        let mut r = e.into_response();
        let (route, tracker) = match path {
            "/e" => ("/e", true),
            "/api/event" => ("/api/event", true),
            "/e.gif" => ("/e.gif", true),
            "/v1/batches" => ("/v1/batches", false),
            _ => return r,
        };
        self.layer
            .metrics
            .requests
            .get_or_create(&StatusLabel {
                route,
                status: r.status().as_u16(),
            })
            .inc();
        if tracker {
            let (name, value) = ingest_core::CORS_ALLOW_ORIGIN;
            r.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const LIMITS: HeadLimits = HeadLimits {
        max_url_bytes: 2000,
        max_header_bytes: 3000,
        max_headers: 40,
    };

    fn app(metrics: Arc<Metrics>) -> Router {
        Router::new()
            .route("/e.gif", get(|| async { "ok" }))
            .layer(HeadLimitLayer {
                limits: LIMITS,
                metrics,
            })
    }

    async fn send(app: &Router, target: &str, pad: usize) -> (u16, serde_json::Value, bool) {
        send_with(app, target, pad, 0).await
    }

    /// [`send`] with `extra` more headers (`x-h: 1`, repeated).
    async fn send_with(
        app: &Router,
        target: &str,
        pad: usize,
        extra: usize,
    ) -> (u16, serde_json::Value, bool) {
        let mut req = axum::http::Request::get(target);
        if pad > 0 {
            req = req.header("x-pad", "p".repeat(pad));
        }
        for _ in 0..extra {
            req = req.header("x-h", "1");
        }
        let r = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let cors = r.headers().contains_key("access-control-allow-origin");
        let status = r.status().as_u16();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, v, cors)
    }

    /// A target of `n` bytes on the pixel's path.
    fn target_of(n: usize) -> String {
        let head = "/e.gif?site=a.com&_=";
        format!("{head}{}", "x".repeat(n - head.len()))
    }

    #[tokio::test]
    async fn a_target_at_the_limit_passes_and_one_byte_more_is_a_json_414() {
        let metrics = Arc::new(Metrics::new());
        let app = app(metrics.clone());
        assert_eq!(send(&app, &target_of(2000), 0).await.0, 200);
        let (status, v, cors) = send(&app, &target_of(2001), 0).await;
        assert_eq!(status, 414, "{v}");
        assert_eq!(v["error"]["field"], "url");
        assert_eq!(v["error"]["code"], "url_too_long");
        let reason = v["error"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("2001") && reason.contains("2000"),
            "{reason}"
        );
        assert!(
            cors,
            "a tracker route's refusal is readable from any origin"
        );
        let counted = metrics.requests.get_or_create(&StatusLabel {
            route: "/e.gif",
            status: 414,
        });
        assert_eq!(counted.get(), 1);
        // Any path, routed or not, has the same limit.
        let (status, v, cors) = send(&app, &format!("/nope?{}", "x".repeat(2000)), 0).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (414, Some("url_too_long"))
        );
        assert!(!cors);
    }

    #[tokio::test]
    async fn headers_at_the_limit_pass_and_one_byte_more_is_a_json_431() {
        let app = app(Arc::new(Metrics::new()));
        // One header, `x-pad: …`: 5 + 4 bytes of name and framing.
        assert_eq!(send(&app, "/e.gif", 3000 - 9).await.0, 200);
        let (status, v, _) = send(&app, "/e.gif", 3000 - 8).await;
        assert_eq!(status, 431, "{v}");
        assert_eq!(v["error"]["field"], "headers");
        assert_eq!(v["error"]["code"], "headers_too_large");
        assert!(v["error"]["reason"].as_str().unwrap().contains("3001"));
    }

    #[tokio::test]
    async fn headers_at_the_count_limit_pass_and_one_more_is_a_json_431() {
        let app = app(Arc::new(Metrics::new()));
        // A repeated name counts once per line.
        assert_eq!(send_with(&app, "/e.gif", 0, 40).await.0, 200);
        let (status, v, cors) = send_with(&app, "/e.gif", 0, 41).await;
        assert_eq!(status, 431, "{v}");
        assert_eq!(v["error"]["field"], "headers");
        assert_eq!(v["error"]["code"], "too_many_headers");
        let reason = v["error"]["reason"].as_str().unwrap();
        assert!(reason.contains("41") && reason.contains("40"), "{reason}");
        assert!(cors);
    }

    #[test]
    fn targets_and_headers_are_counted_as_sent() {
        let uri: Uri = "/e.gif?site=a.com".parse().unwrap();
        assert_eq!(target_bytes(&uri), "/e.gif?site=a.com".len());
        let uri: Uri = "http://a.com:8080/e?x=1".parse().unwrap();
        assert_eq!(target_bytes(&uri), "http://a.com:8080/e?x=1".len());
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("a.com"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("22"));
        assert_eq!(
            header_bytes(&h),
            "host: a.com\r\nx-a: 1\r\nx-a: 22\r\n".len()
        );
    }
}
