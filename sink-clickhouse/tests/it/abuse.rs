//! Abuse of the running sink (embedded mode): a spoofed `X-Forwarded-For` does not move
//! a client out of its rate-limit bucket; behind a configured trusted proxy the rightmost
//! untrusted hop is the key; CORS on every tracker route, none on `/v1/batches`.
//! (401 on `/v1/batches`, unknown sites and hostnames are in `sink_embedded` and
//! `sink_clickhouse`; identifier quoting in `clickhouse_loader` and the unit tests.)

use serde_json::Value;

use crate::support::load::UA;
use crate::support::sink::Sink;

const EV: &str = "{\"site\":\"a.com\",\"url\":\"https://a.com/\"}\n";

/// A sink whose clients get a burst of 5 events and 0.1 more a second (a request may
/// carry the whole burst), with `extra` flags.
fn limited_sink(extra: &[&str]) -> Sink {
    let mut args = vec![
        "--client-rate",
        "0.1",
        "--client-burst",
        "5",
        "--max-events-per-request",
        "5",
    ];
    args.extend_from_slice(extra);
    Sink::start(&args)
}

fn post(http: &reqwest::blocking::Client, sink: &Sink, xff: &str, n: usize) -> u16 {
    let r = http
        .post(sink.url("/e"))
        .header("user-agent", UA)
        .header("x-forwarded-for", xff)
        .header("cf-connecting-ip", xff.split(',').next().unwrap_or(""))
        .body(EV.repeat(n))
        .send()
        .unwrap();
    let s = r.status().as_u16();
    if s == 429 {
        let ra = r.headers()["retry-after"].to_str().unwrap().to_owned();
        assert!(ra.parse::<u64>().unwrap() >= 1);
        let v: Value = r.json().unwrap();
        assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    }
    s
}

#[test]
fn spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_key() {
    // No --trusted-proxy: the peer (127.0.0.1) is the key whatever the headers say.
    let sink = limited_sink(&[]);
    let http = reqwest::blocking::Client::new();
    assert_eq!(post(&http, &sink, "198.51.100.1", 5), 202);
    for i in 2..30 {
        let spoof = format!("198.51.100.{i}, 203.0.113.{i}");
        assert_eq!(post(&http, &sink, &spoof, 1), 429, "rotating XFF {spoof}");
    }
    assert!(sink.metric("sink_rate_limited_total") >= 28.0);
}

#[test]
fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_key() {
    let sink = limited_sink(&["--trusted-proxy", "127.0.0.1/32,10.0.0.0/8"]);
    let http = reqwest::blocking::Client::new();
    let send = |xff: &str, n: usize| {
        http.post(sink.url("/e"))
            .header("user-agent", UA)
            .header("x-forwarded-for", xff)
            .body(EV.repeat(n))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // Client 198.51.100.7 behind our own proxy 10.0.0.2: it uses its burst.
    assert_eq!(send("198.51.100.7, 10.0.0.2", 5), 202);
    assert_eq!(send("198.51.100.7, 10.0.0.2", 1), 429);
    // It forges hops on the left: still the same rightmost untrusted hop, still 429.
    assert_eq!(send("1.2.3.4, 198.51.100.7, 10.0.0.2", 1), 429);
    assert_eq!(send("9.9.9.9,198.51.100.7", 1), 429);
    // Another client (another rightmost untrusted hop) has its own bucket.
    assert_eq!(send("1.2.3.4, 198.51.100.8, 10.0.0.2", 5), 202);
    assert_eq!(send("198.51.100.8", 1), 429);
    assert_eq!(send("198.51.100.9", 5), 202);
}

#[test]
fn cors_on_every_tracker_route_and_not_on_batches() {
    let sink = Sink::start(&[]);
    let http = reqwest::blocking::Client::new();
    for (path, method) in [("/e", "POST"), ("/api/event", "POST"), ("/e.gif", "GET")] {
        for origin in ["https://a.com", "null", "http://evil.example:8080"] {
            let r = http
                .request(reqwest::Method::OPTIONS, sink.url(path))
                .header("origin", origin)
                .header("access-control-request-method", method)
                .header("access-control-request-headers", "content-type")
                .send()
                .unwrap();
            assert!(r.status().is_success(), "{path} {origin}: {}", r.status());
            let h = r.headers();
            assert_eq!(h["access-control-allow-origin"], "*", "{path}");
            assert!(
                h.get("access-control-allow-credentials").is_none(),
                "{path}"
            );
            let methods = h["access-control-allow-methods"].to_str().unwrap();
            assert!(methods.contains(method), "{path}: {methods}");
            // The preflight is ingest-core's, the one the edge worker answers too.
            for (name, value) in ingest_core::CORS_PREFLIGHT_HEADERS {
                assert_eq!(h[name], value, "{path}: {name}");
            }
        }
        // The actual request carries the header too (and never credentials).
        let rq = if method == "GET" {
            http.get(sink.url("/e.gif?site=a.com&url=https%3A%2F%2Fa.com%2F"))
        } else {
            http.post(sink.url(path))
                .body(r#"{"site":"a.com","url":"https://a.com/","n":"pageview","u":"https://a.com/","d":"a.com"}"#)
        };
        let r = rq
            .header("origin", "https://a.com")
            .header("user-agent", UA)
            .send()
            .unwrap();
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{path}");
        assert!(r
            .headers()
            .get("access-control-allow-credentials")
            .is_none());
    }
    // A refusal carries it too: a page can read why its event was refused.
    let r = http
        .post(sink.url("/e"))
        .header("origin", "https://a.com")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    // /v1/batches: no CORS on the preflight nor on the request.
    let r = http
        .request(reqwest::Method::OPTIONS, sink.url("/v1/batches"))
        .header("origin", "https://a.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert!(
        !r.status().is_success(),
        "preflight of /v1/batches: {}",
        r.status()
    );
    let r = http
        .post(sink.url("/v1/batches"))
        .header("origin", "https://a.com")
        .bearer_auth("wrong")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn unknown_paths_and_methods_get_json_errors() {
    let sink = Sink::start(&[]);
    let http = reqwest::blocking::Client::new();
    let json = |r: reqwest::blocking::Response| -> serde_json::Value { r.json().unwrap() };
    let r = http.get(sink.url("/no/such/route")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json(r)["error"]["code"], "not_found");
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/e", "POST"),
        (reqwest::Method::DELETE, "/v1/batches", "POST"),
        (reqwest::Method::POST, "/healthz", "GET"),
    ] {
        let r = http.request(method, sink.url(path)).send().unwrap();
        assert_eq!(r.status(), 405, "{path}");
        let allowed = r.headers()["allow"].to_str().unwrap().to_owned();
        assert!(allowed.contains(allow), "{path}: allow {allowed}");
        let body = json(r);
        assert_eq!(body["error"]["field"], "method", "{path}");
        assert_eq!(body["error"]["code"], "method_not_allowed", "{path}");
    }
}
