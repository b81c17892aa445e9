//! `GET /`: a self-contained HTML status page (inline CSS and JS, no external assets).
//!
//! The page polls `/metrics` and `/readyz` every second and draws the last three
//! minutes as inline SVG charts, so the server does nothing per poll beyond what those
//! two routes already do. Per-URL ClickHouse health comes from `/readyz`'s
//! `clickhouse` list; the sink keeps no recent error lines, so the page shows
//! `sink_clickhouse_errors_total` by code instead.

use axum::http::header;
use axum::response::IntoResponse;

/// The page, compiled in.
const PAGE: &str = include_str!("status.html");

/// Serves the status page.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}

#[cfg(test)]
mod tests {
    use super::PAGE;

    #[test]
    fn page_is_small_and_self_contained() {
        assert!(PAGE.len() < 20 * 1024, "page is {} bytes", PAGE.len());
        for id in [
            "events-total",
            "loaded-total",
            "rejected-total",
            "spool-bytes",
        ] {
            assert!(PAGE.contains(&format!("id=\"{id}\"")), "missing #{id}");
        }
        // No external assets: nothing fetched from another origin.
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
    }
}
