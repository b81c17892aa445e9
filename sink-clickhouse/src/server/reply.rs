//! Replies: every error is JSON `{"error": {"field", "code", "reason"}}`, 429 and 503
//! carry `Retry-After`, and bad input never gets a 5xx.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ingest_core::{Problem, Rejection};
use serde::Serialize;

/// One rejected event in a 202 reply.
#[derive(Debug, Serialize)]
pub struct RejectedItem {
    /// Index of the event in the request.
    pub index: usize,
    /// The field it is about.
    pub field: String,
    /// Stable code.
    pub code: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

impl From<&Rejection> for RejectedItem {
    fn from(r: &Rejection) -> Self {
        let p = r.error.to_problem();
        RejectedItem {
            index: r.index,
            field: p.field,
            code: p.code,
            reason: p.reason,
        }
    }
}

/// The body of a 202: what was stored and what was not.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// Events (rows) stored.
    pub accepted: usize,
    /// Events rejected, with the reason.
    pub rejected: Vec<RejectedItem>,
    /// Only for `/v1/batches`: true when this batch id was stored before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub already_stored: bool,
    /// Only for `/v1/batches` with `X-Batch-Ids`: how many of its record batches were
    /// stored before (not stored again).
    #[serde(skip_serializing_if = "is_zero")]
    pub already_stored_batches: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        let status = if self.already_stored {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        (status, axum::Json(self)).into_response()
    }
}

/// A request-level error reply.
#[derive(Debug)]
pub struct ApiError {
    /// Status code.
    pub status: StatusCode,
    /// What to say.
    pub problem: Problem,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after_s: Option<u64>,
    /// Rejected events, when the request failed because all its events did.
    pub rejected: Vec<RejectedItem>,
    /// Answered before the body was read: ask the client not to reuse the connection
    /// (the unread body makes it unusable, and a client that reuses it gets a reset).
    pub close: bool,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a Problem,
    #[serde(skip_serializing_if = "<[RejectedItem]>::is_empty")]
    rejected: &'a [RejectedItem],
}

impl ApiError {
    /// An error with this status, field, code and reason.
    pub fn new(
        status: StatusCode,
        field: &str,
        code: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            problem: Problem {
                field: field.to_owned(),
                code,
                reason: reason.into(),
            },
            retry_after_s: None,
            rejected: Vec::new(),
            close: false,
        }
    }

    /// The same error, with `Connection: close` (the body was not read).
    pub fn closing(self) -> Self {
        ApiError {
            close: true,
            ..self
        }
    }

    /// 400 from an ingest-core error (413 for a body over the limit; 500 for the
    /// sink's own bug, which the request did not cause: `Error::is_caller_bug`).
    pub fn bad_input(e: &ingest_core::Error) -> Self {
        let status = match e {
            ingest_core::Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            e if e.is_caller_bug() => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            problem: e.to_problem(),
            retry_after_s: None,
            rejected: Vec::new(),
            close: false,
        }
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(code: &'static str, reason: impl Into<String>, retry_after_s: u64) -> Self {
        ApiError {
            retry_after_s: Some(retry_after_s.max(1)),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server", code, reason)
        }
    }

    /// 429 with `Retry-After`.
    pub fn too_many(
        field: &str,
        code: &'static str,
        reason: impl Into<String>,
        retry_after_ms: u64,
    ) -> Self {
        ApiError {
            retry_after_s: Some(retry_after_ms.div_ceil(1000).max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, field, code, reason)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.problem,
            rejected: &self.rejected,
        };
        let mut r = (self.status, axum::Json(&body)).into_response();
        if let Some(s) = self.retry_after_s {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.close {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bug of the sink's own (a salt of the wrong day) is a 500; the client's
    /// errors stay 4xx.
    #[test]
    fn a_caller_bug_is_a_500_and_bad_input_a_4xx() {
        let bug = ApiError::bad_input(&ingest_core::Error::Context {
            field: "salt".into(),
            reason: "the salt is for another day".into(),
        });
        assert_eq!(bug.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            (bug.problem.field.as_str(), bug.problem.code),
            ("salt", "context")
        );
        let schema = ApiError::bad_input(&ingest_core::Error::Schema {
            field: "site_id".into(),
            reason: "row 0".into(),
        });
        assert_eq!(schema.status, StatusCode::BAD_REQUEST);
        let big = ApiError::bad_input(&ingest_core::Error::BodyTooLarge {
            limit: 1,
            actual: 2,
        });
        assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
