//! Every answer the worker gives, as status + body + `Retry-After`: kept apart from the
//! Workers glue so the contract is unit-tested natively.
//!
//! | case | status | body |
//! |---|---|---|
//! | accepted (some or all events) | 202 | `{"accepted": n, "rejected": [{"index", "field", "code", "reason"}]}` — invalid events, events of a site refused by its quota (`site`, `quota_exceeded`), events too large for a Queue message (`props`, `too_large`); the pixel answers a 1×1 GIF |
//! | every event rejected, or the request malformed | 400 | `{"error": {"field", "code", "reason"}, "rejected": [...]}` |
//! | body over `max_body_bytes` (by `Content-Length`, or while streaming a body without one), or the request's events over a Queue `sendBatch` once encoded | 413 | as 400 |
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

/// An event the edge refused after ingest-core accepted it (its site's quota, its size
/// as a Queue message): the same `{index, field, code, reason}` as a [`Rejection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Zero-based index of the event in the request.
    pub index: usize,
    /// Field, code and reason.
    pub problem: Problem,
}

impl Refused {
    /// An event of a site whose plan quota is used up past its grace period; `message`
    /// is ingest-core's friendly refusal.
    pub fn quota(index: usize, message: &str) -> Self {
        Refused {
            index,
            problem: Problem {
                field: "site".into(),
                code: "quota_exceeded",
                reason: message.to_owned(),
            },
        }
    }

    /// An event of `bytes` as JSON, over the Queue's message limit of `limit` bytes
    /// (its properties are what can make it that large).
    pub fn too_large(index: usize, bytes: usize, limit: usize) -> Self {
        Refused {
            index,
            problem: Problem {
                field: "props".into(),
                code: "too_large",
                reason: format!(
                    "the event is {bytes} bytes once encoded, over the limit of {limit} bytes per event; send fewer or shorter properties"
                ),
            },
        }
    }
}

/// The indexes in the request of the `accepted` events ingest-core returned, given its
/// `rejected` (in index order): every index is one or the other (bots are dropped whole,
/// so a request with bots has no accepted events).
pub fn accepted_indexes(accepted: usize, rejected: &[Rejection]) -> Vec<usize> {
    let mut out = Vec::with_capacity(accepted);
    let mut rej = rejected.iter().map(|r| r.index).peekable();
    let mut index = 0;
    while out.len() < accepted {
        if rej.next_if_eq(&index).is_none() {
            out.push(index);
        }
        index += 1;
    }
    out
}

/// Every rejection of a request, ingest-core's and the edge's, in index order.
fn all_rejections(rejected: &[Rejection], refused: &[Refused]) -> Vec<(usize, Problem)> {
    let mut all: Vec<(usize, Problem)> = rejected
        .iter()
        .map(|r| (r.index, r.error.to_problem()))
        .chain(refused.iter().map(|r| (r.index, r.problem.clone())))
        .collect();
    all.sort_by_key(|(i, _)| *i);
    all
}

fn rejections_json(all: &[(usize, Problem)]) -> Value {
    Value::Array(
        all.iter()
            .map(|(i, p)| json!({"index": i, "field": p.field, "code": p.code, "reason": p.reason}))
            .collect(),
    )
}

/// A request-level problem (malformed body, too large, too many events...): 400, 413
/// for a body over the limit, 500 for the worker's own bug, which the request did not
/// cause (`Error::is_caller_bug`).
pub fn problem(err: &Error) -> Reply {
    let status = match err {
        Error::BodyTooLarge { .. } => 413,
        e if e.is_caller_bug() => 500,
        _ => 400,
    };
    Reply {
        status,
        body: Body::Json(json!({"error": error_json(&err.to_problem()), "rejected": []})),
        retry_after_secs: None,
    }
}

/// The outcome of a parsed request: 202 when anything was accepted (or only bots were
/// dropped), else 400 naming the first rejection. `rejected` are ingest-core's
/// rejections, `refused` the edge's; the reply lists both by index. `pixel` answers the
/// GIF on success.
pub fn outcome(
    accepted: usize,
    rejected: &[Rejection],
    refused: &[Refused],
    bots: usize,
    pixel: bool,
) -> Reply {
    let all = all_rejections(rejected, refused);
    if accepted == 0 && bots == 0 {
        if let Some((_, first)) = all.first() {
            return Reply {
                status: 400,
                body: Body::Json(json!({
                    "error": error_json(first),
                    "rejected": rejections_json(&all),
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
            Body::Json(json!({"accepted": accepted, "rejected": rejections_json(&all)}))
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

/// The request's events, `bytes` once encoded for the Queue, are over what one Queue
/// `sendBatch` takes (`limit`): refused whole, nothing enqueued.
pub fn encoded_too_large(bytes: usize, limit: usize) -> Reply {
    Reply {
        status: 413,
        body: Body::Json(json!({
            "error": {
                "field": "body",
                "code": "body_too_large",
                "reason": format!(
                    "the request's events are {bytes} bytes once encoded, over the limit of {limit} bytes per request; send fewer events per request"
                ),
            },
            "rejected": [],
        })),
        retry_after_secs: None,
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
        let r = outcome(0, &rej, &[], 0, false);
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
        let r = outcome(1, &rej, &[], 0, false);
        assert_eq!(r.status, 202);
        assert_eq!(json_of(&r)["rejected"][0]["field"], "site");
        assert_eq!(outcome(1, &[], &[], 0, true).body, Body::Gif);
        assert_eq!(
            outcome(0, &[], &[], 3, false).status,
            202,
            "bots are not told"
        );
    }

    /// Events the edge refused (quota, size) are listed with ingest-core's rejections,
    /// by index, in the same shape.
    #[test]
    fn refused_events_are_listed_by_index() {
        let rej = [Rejection {
            index: 2,
            error: Error::Missing {
                field: "url".into(),
            },
        }];
        let refused = [
            Refused::too_large(3, 200_000, 102_400),
            Refused::quota(0, "over.example has used its 10,000 events"),
        ];
        let r = outcome(1, &rej, &refused, 0, false);
        assert_eq!(r.status, 202);
        let v = json_of(&r);
        assert_eq!(v["accepted"], 1);
        let list = v["rejected"].as_array().unwrap();
        let got: Vec<(u64, &str, &str)> = list
            .iter()
            .map(|e| {
                (
                    e["index"].as_u64().unwrap(),
                    e["field"].as_str().unwrap(),
                    e["code"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (0, "site", "quota_exceeded"),
                (2, "url", "missing"),
                (3, "props", "too_large")
            ]
        );
        assert!(list[0]["reason"].as_str().unwrap().contains("over.example"));
        // Nothing left: 400 naming the first by index.
        let r = outcome(0, &[], &refused, 0, false);
        assert_eq!(r.status, 400);
        assert_eq!(json_of(&r)["error"]["code"], "quota_exceeded");
        let big = encoded_too_large(300_000, 229_376);
        assert_eq!(big.status, 413);
        assert_eq!(json_of(&big)["error"]["field"], "body");
    }

    #[test]
    fn accepted_indexes_skip_the_rejected() {
        let rej = |i| Rejection {
            index: i,
            error: Error::Missing {
                field: "url".into(),
            },
        };
        assert_eq!(accepted_indexes(3, &[]), [0, 1, 2]);
        assert_eq!(accepted_indexes(3, &[rej(0), rej(2)]), [1, 3, 4]);
        assert_eq!(accepted_indexes(0, &[rej(0)]), Vec::<usize>::new());
        assert_eq!(accepted_indexes(2, &[rej(1), rej(2)]), [0, 3]);
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

    /// The worker's own bug (a salt of the wrong day) is a 500, not the client's 400.
    #[test]
    fn a_caller_bug_is_a_500() {
        let r = problem(&Error::Context {
            field: "salt".into(),
            reason: "the salt is for another day".into(),
        });
        assert_eq!(r.status, 500);
        assert_eq!(json_of(&r)["error"]["code"], "context");
        let r = problem(&Error::Missing {
            field: "site".into(),
        });
        assert_eq!(r.status, 400);
    }

    #[test]
    fn the_gif_is_a_gif() {
        assert_eq!(&GIF[..6], b"GIF89a");
        assert_eq!(GIF.len(), 43);
        assert_eq!(*GIF.last().unwrap(), 0x3b);
    }
}
