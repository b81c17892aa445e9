//! The one error type of the crate: every rejection names the field and the reason.

use serde::Serialize;

/// Why an event or a request was rejected.
///
/// Every variant carries the field it is about (a JSON field name such as `"url"`,
/// `"props.plan"`, or `"body"` for the request as a whole) so a service can answer
/// `{"field": ..., "reason": ...}` without knowing the variants. All are the
/// client's doing (a 4xx) except [`Error::Context`], the calling service's own bug
/// ([`Error::is_caller_bug`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The body is larger than [`crate::Limits::max_body_bytes`].
    #[error("body: {actual} bytes is over the limit of {limit}")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
        /// The size seen.
        actual: usize,
    },
    /// More events in one request than [`crate::Limits::max_events_per_request`].
    #[error("body: more than {limit} events in one request")]
    TooManyEvents {
        /// The configured limit.
        limit: usize,
    },
    /// The body is not valid JSON (or NDJSON), or not UTF-8.
    #[error("{field}: malformed JSON: {reason}")]
    Malformed {
        /// The field the error is about.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Nesting deeper than [`crate::Limits::max_depth`].
    #[error("{field}: nested deeper than {limit}")]
    TooDeep {
        /// The field the error is about.
        field: String,
        /// The configured limit.
        limit: usize,
    },
    /// A required field is absent.
    #[error("{field}: required")]
    Missing {
        /// The field the error is about.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("{field}: expected {expected}")]
    WrongType {
        /// The field the error is about.
        field: String,
        /// The JSON type expected.
        expected: &'static str,
    },
    /// A string is longer than its limit.
    #[error("{field}: longer than {limit} bytes")]
    TooLong {
        /// The field the error is about.
        field: String,
        /// The configured limit.
        limit: usize,
    },
    /// More props than [`crate::Limits::max_props`].
    #[error("{field}: more than {limit} properties")]
    TooManyProps {
        /// The field the error is about.
        field: String,
        /// The configured limit.
        limit: usize,
    },
    /// A number outside its allowed range (negative, too large, not finite).
    #[error("{field}: {reason}")]
    OutOfRange {
        /// The field the error is about.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A field whose value is not acceptable for another reason (bad URL, unknown field...).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field the error is about.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The site is not known, or the hostname is not allowed for it.
    #[error("{field}: {reason}")]
    UnknownSite {
        /// The field the error is about.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The Arrow batch does not match schema v1 (wrong type, unknown column).
    #[error("{field}: {reason}")]
    Schema {
        /// The field the error is about.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Arrow IPC / Parquet encoding or decoding failed.
    #[error("{field}: {reason}")]
    Encoding {
        /// The field the error is about.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The caller's [`crate::RequestContext`] is inconsistent — its `salt` is not the
    /// salt of its `received_at_ms`'s UTC day — so the request was not processed.
    /// Not the client's fault: the service that links the crate has a bug, and should
    /// answer a server error (5xx) and fix it. See [`Error::is_caller_bug`].
    #[error("{field}: {reason}")]
    Context {
        /// The field of the [`crate::RequestContext`] that is wrong (`"salt"`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// The field the error is about (`"body"` for request-level errors).
    pub fn field(&self) -> &str {
        match self {
            Error::BodyTooLarge { .. } | Error::TooManyEvents { .. } => "body",
            Error::Malformed { field, .. }
            | Error::TooDeep { field, .. }
            | Error::Missing { field }
            | Error::WrongType { field, .. }
            | Error::TooLong { field, .. }
            | Error::TooManyProps { field, .. }
            | Error::OutOfRange { field, .. }
            | Error::Invalid { field, .. }
            | Error::UnknownSite { field, .. }
            | Error::Schema { field, .. }
            | Error::Encoding { field, .. }
            | Error::Context { field, .. } => field,
        }
    }

    /// A short, stable, snake_case name for metrics labels (`rejected_total{reason=...}`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::TooManyEvents { .. } => "too_many_events",
            Error::Malformed { .. } => "malformed",
            Error::TooDeep { .. } => "too_deep",
            Error::Missing { .. } => "missing",
            Error::WrongType { .. } => "wrong_type",
            Error::TooLong { .. } => "too_long",
            Error::TooManyProps { .. } => "too_many_props",
            Error::OutOfRange { .. } => "out_of_range",
            Error::Invalid { .. } => "invalid",
            Error::UnknownSite { .. } => "unknown_site",
            Error::Schema { .. } => "schema",
            Error::Encoding { .. } => "encoding",
            Error::Context { .. } => "context",
        }
    }

    /// True when the error is the calling service's bug, not the request's
    /// ([`Error::Context`]): answer it with a 5xx, never as the client's fault.
    pub fn is_caller_bug(&self) -> bool {
        matches!(self, Error::Context { .. })
    }

    /// The error as the JSON-friendly value a service puts in its reply.
    pub fn to_problem(&self) -> Problem {
        Problem {
            field: self.field().to_owned(),
            code: self.code(),
            reason: self.to_string(),
        }
    }

    /// Shorthand used by the parsers.
    #[allow(dead_code)] // used by the parsers
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// An error in the form a service serializes: `{"field", "code", "reason"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The field the error is about.
    pub field: String,
    /// Stable machine-readable code (see [`Error::code`]).
    pub code: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

/// One rejected event of a multi-event request.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Zero-based index of the event in the request (line number - 1 for NDJSON).
    pub index: usize,
    /// Why it was rejected.
    pub error: Error,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
