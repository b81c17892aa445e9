//! Every answer the worker gives, as status + body + `Retry-After`: kept apart from the
//! Workers glue so the contract is unit-tested natively.
//!
//! | case | status | body |
//! |---|---|---|
//! | accepted (some or all events) | 202 | `{"accepted": n, "rejected": [{"index", "field", "code", "reason"}]}`; the pixel answers a 1×1 GIF |
//! | every event rejected, or the request malformed | 400 | `{"error": {"field", "code", "reason"}, "rejected": [...]}` |
//! | body over `max_body_bytes` | 413 | as 400 |
//! | over the client's rate | 429 + `Retry-After` | `{"error": {"field": "client", "code": "rate_limited", ...}}` |
//! | the site's plan quota is used up, past its grace period | 429 + `Retry-After` (until the quota resets) | `{"error": {"field": "site", "code": "quota_exceeded", "reason": <friendly message>}, "resets_at_ms"}` |
//! | the worker cannot enqueue (Queue down, no sink configured) | 503 + `Retry-After` | `{"error": {"field": "server", "code": "unavailable", ...}}` |
//!
//! Bots get 202 with `accepted: 0`: they did nothing wrong and should not learn how to
//! be counted. Bad input never yields a 5xx.

use ingest_core::{Error, Problem, Rejection};
use serde_json::{json, Value};

/// The body of a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `application/json`.
    Json(Value),
    /// The 1×1 transparent GIF of the pixel route.
    Gif,
    /// No body (CORS preflight).
    Empty,
}

/// A reply before it becomes a Workers `Response`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Body,
    /// Seconds for `Retry-After`, when set.
    pub retry_after_secs: Option<u64>,
}

/// The smallest transparent 1×1 GIF (43 bytes).
pub const GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// `Retry-After` in whole seconds, rounded up, at least 1 (a 0 invites a busy loop).
pub fn retry_after_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

fn error_json(p: &Problem) -> Value {
    json!({"field": p.field, "code": p.code, "reason": p.reason})
}

fn rejections_json(rejected: &[Rejection]) -> Value {
    Value::Array(
        rejected
            .iter()
            .map(|r| {
                let p = r.error.to_problem();
                json!({"index": r.index, "field": p.field, "code": p.code, "reason": p.reason})
            })
            .collect(),
    )
}

/// A request-level problem (malformed body, too large, too many events...).
pub fn problem(err: &Error) -> Reply {
    let status = if matches!(err, Error::BodyTooLarge { .. }) {
        413
    } else {
        400
    };
    Reply {
        status,
        body: Body::Json(json!({"error": error_json(&err.to_problem()), "rejected": []})),
        retry_after_secs: None,
    }
}

/// The outcome of a parsed request: 202 when anything was accepted (or only bots were
/// dropped), else 400 naming the first rejection. `pixel` answers the GIF on success.
pub fn outcome(accepted: usize, rejected: &[Rejection], bots: usize, pixel: bool) -> Reply {
    if accepted == 0 && bots == 0 {
        if let Some(first) = rejected.first() {
            return Reply {
                status: 400,
                body: Body::Json(json!({
                    "error": error_json(&first.error.to_problem()),
                    "rejected": rejections_json(rejected),
                })),
                retry_after_secs: None,
            };
        }
    }
    Reply {
        status: 202,
        body: if pixel {
            Body::Gif
        } else {
            Body::Json(json!({"accepted": accepted, "rejected": rejections_json(rejected)}))
        },
        retry_after_secs: None,
    }
}

/// Over the client's rate.
pub fn rate_limited(retry_after_ms: u64) -> Reply {
    let secs = retry_after_secs(retry_after_ms);
    Reply {
        status: 429,
        body: Body::Json(json!({"error": {
            "field": "client",
            "code": "rate_limited",
            "reason": format!("too many events from this client; retry in {secs} s"),
        }})),
        retry_after_secs: Some(secs),
    }
}

/// The site's quota is used up past its grace period.
pub fn quota_refused(message: &str, retry_after_ms: u64, resets_at_ms: i64) -> Reply {
    Reply {
        status: 429,
        body: Body::Json(json!({
            "error": {"field": "site", "code": "quota_exceeded", "reason": message},
            "resets_at_ms": resets_at_ms,
        })),
        retry_after_secs: Some(retry_after_secs(retry_after_ms)),
    }
}

/// The worker cannot take events right now (not the client's fault).
pub fn unavailable(reason: &str) -> Reply {
    Reply {
        status: 503,
        body: Body::Json(json!({"error": {
            "field": "server", "code": "unavailable", "reason": reason,
        }})),
        retry_after_secs: Some(5),
    }
}

/// No such route.
pub fn not_found(method: &str, path: &str) -> Reply {
    Reply {
        status: 404,
        body: Body::Json(json!({"error": {
            "field": "path",
            "code": "not_found",
            "reason": format!("no route {method} {path}; see POST /api/event, POST /e, GET /e.gif, GET /script.js"),
        }})),
        retry_after_secs: None,
    }
}

/// CORS preflight answer (the headers are added to every reply by the glue).
pub fn preflight() -> Reply {
    Reply {
        status: 204,
        body: Body::Empty,
        retry_after_secs: None,
    }
}

/// CORS headers of every reply of the worker: the preflight's set, shared with the sink
/// ([`ingest_core::CORS_PREFLIGHT_HEADERS`]), on every reply (the same few bytes on a
/// 204 or a 202, and a browser that reads them from either is satisfied).
pub const CORS_HEADERS: [(&str, &str); 4] = ingest_core::CORS_PREFLIGHT_HEADERS;

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(r: &Reply) -> &Value {
        match &r.body {
            Body::Json(v) => v,
            b => panic!("not JSON: {b:?}"),
        }
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(0), 1);
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(1000), 1);
        assert_eq!(retry_after_secs(1001), 2);
    }

    #[test]
    fn all_rejected_is_400_naming_the_field() {
        let rej = [Rejection {
            index: 0,
            error: Error::Missing {
                field: "url".into(),
            },
        }];
        let r = outcome(0, &rej, 0, false);
        assert_eq!(r.status, 400);
        let v = json_of(&r);
        assert_eq!(v["error"]["field"], "url");
        assert_eq!(v["rejected"][0]["index"], 0);
    }

    #[test]
    fn partly_accepted_is_202_with_the_rejections() {
        let rej = [Rejection {
            index: 1,
            error: Error::Missing {
                field: "site".into(),
            },
        }];
        let r = outcome(1, &rej, 0, false);
        assert_eq!(r.status, 202);
        assert_eq!(json_of(&r)["rejected"][0]["field"], "site");
        assert_eq!(outcome(1, &[], 0, true).body, Body::Gif);
        assert_eq!(outcome(0, &[], 3, false).status, 202, "bots are not told");
    }

    #[test]
    fn limits_carry_retry_after() {
        let r = rate_limited(1500);
        assert_eq!((r.status, r.retry_after_secs), (429, Some(2)));
        let q = quota_refused("used up", 10_000, 42);
        assert_eq!((q.status, q.retry_after_secs), (429, Some(10)));
        assert_eq!(json_of(&q)["error"]["code"], "quota_exceeded");
        let big = problem(&Error::BodyTooLarge {
            limit: 1,
            actual: 2,
        });
        assert_eq!(big.status, 413);
        assert_eq!(json_of(&big)["error"]["field"], "body");
    }

    #[test]
    fn the_gif_is_a_gif() {
        assert_eq!(&GIF[..6], b"GIF89a");
        assert_eq!(GIF.len(), 43);
        assert_eq!(*GIF.last().unwrap(), 0x3b);
    }
}
