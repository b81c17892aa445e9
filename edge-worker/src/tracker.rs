//! The tracker served at `GET /script.js`: page views, SPA navigation
//! (`pushState`/`popstate`), custom events through `window.pv(name, props)`, web vitals
//! (TTFB, FCP, LCP, CLS, INP, load) once per page as a `web-vitals` event, sent with
//! `sendBeacon` and a `fetch(keepalive)` fallback to `POST /e` in our own format.
//! Configured by `data-site` (required) and `data-api` (default: the script's origin).
//!
//! It is served as written (no minifier in the build): it stays under the 1.5 KB gzip
//! budget readable, and the integration test measures the served bytes.

/// The tracker's source (`edge-worker/tracker/script.js`).
pub const SCRIPT_JS: &str = include_str!("../tracker/script.js");

/// `Content-Type` of the tracker.
pub const CONTENT_TYPE: &str = "application/javascript; charset=utf-8";

/// `Cache-Control` of the tracker: an hour fresh in browsers and at the edge, then
/// revalidated in the background for a day, so a new tracker reaches every page
/// within about an hour without costing visitors a blocking fetch.
pub const CACHE_CONTROL: &str = "public, max-age=3600, stale-while-revalidate=86400";

#[cfg(test)]
mod tests {
    #[test]
    fn the_tracker_posts_our_format_to_e_and_exposes_pv() {
        let s = super::SCRIPT_JS;
        for needle in [
            "data-site",
            "data-api",
            "'/e'",
            "w.pv =",
            "sendBeacon",
            "keepalive",
        ] {
            assert!(s.contains(needle), "script.js lacks {needle}");
        }
        for field in ["ttfb_ms", "fcp_ms", "lcp_ms", "inp_ms", "load_ms", "cls"] {
            assert!(s.contains(field), "script.js does not report {field}");
        }
    }
}
