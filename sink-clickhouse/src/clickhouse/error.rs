//! Errors of the ClickHouse side, with enough detail to decide retry or quarantine.

/// An error talking to ClickHouse or preparing data for it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an exception.
    #[error("ClickHouse {url} answered {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Server {
        /// The URL that answered.
        url: String,
        /// HTTP status.
        status: u16,
        /// ClickHouse's exception code, when it gave one.
        code: Option<u32>,
        /// The exception text (truncated).
        message: String,
    },
    /// No URL could be reached (connection refused, timeout...): the last error per URL.
    #[error("no ClickHouse URL reachable: {0}")]
    Unreachable(String),
    /// The target table cannot take schema v1 (found at start-up, before any insert).
    #[error("table {table}: column {column}: {reason}")]
    Layout {
        /// `db.table`.
        table: String,
        /// The column.
        column: String,
        /// Why (with both types).
        reason: String,
    },
    /// An identifier that cannot be used (empty, too long, control characters...).
    #[error("identifier {name:?}: {reason}")]
    Identifier {
        /// The identifier as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A batch that does not fit the layout (wrong Arrow type for a column).
    #[error("batch column {column}: {reason}")]
    Batch {
        /// The column.
        column: String,
        /// Why.
        reason: String,
    },
    /// Configuration (bad URL, no URL).
    #[error("configuration: {0}")]
    Config(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exception codes that mean "this data will never be accepted": retrying cannot help,
/// so the loader quarantines the batch. Everything else (network, overload, too many
/// parts, auth, missing table while an operator fixes it) is retried — also a body
/// that arrived damaged (40 CHECKSUM_DOESNT_MATCH, 271 CANNOT_DECOMPRESS: our LZ4
/// frames are checksummed, so the bytes changed on the way).
const DATA_ERRORS: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    16,  // NO_SUCH_COLUMN_IN_TABLE
    20,  // NUMBER_OF_COLUMNS_DOESNT_MATCH
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,  // ATTEMPT_TO_READ_AFTER_EOF
    33,  // CANNOT_READ_ALL_DATA
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    43,  // ILLEGAL_TYPE_OF_ARGUMENT
    44,  // ILLEGAL_COLUMN
    49,  // LOGICAL_ERROR
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    368, // BAD_CAST
];

impl Error {
    /// Whether the same request may succeed later (or on another URL).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Server { code: Some(c), .. } => !DATA_ERRORS.contains(c),
            // ClickHouse names every exception with a code; an answer without one is
            // from something in front of it (a proxy's 401, 403, 404, 413...), which
            // says nothing about the data: retried (and counted, `http_{status}`) until
            // an operator fixes it, never quarantined.
            Error::Server { code: None, .. } => true,
            Error::Unreachable(_) => true,
            Error::Layout { .. } | Error::Identifier { .. } | Error::Batch { .. } => false,
            Error::Config(_) => false,
        }
    }

    /// A short label for the `clickhouse_errors_total{code}` metric.
    pub fn metric_code(&self) -> String {
        match self {
            Error::Server { code: Some(c), .. } => c.to_string(),
            Error::Server { status, .. } => format!("http_{status}"),
            Error::Unreachable(_) => "unreachable".into(),
            Error::Layout { .. } => "layout".into(),
            Error::Identifier { .. } => "identifier".into(),
            Error::Batch { .. } => "batch".into(),
            Error::Config(_) => "config".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: u16, code: Option<u32>) -> Error {
        Error::Server {
            url: "http://ch".into(),
            status,
            code,
            message: String::new(),
        }
    }

    #[test]
    fn retry_or_quarantine() {
        // Bad data or a type mismatch: every retry would fail the same way.
        assert!(!server(500, Some(53)).is_retryable());
        assert!(!server(400, Some(27)).is_retryable());
        assert!(!server(500, Some(368)).is_retryable());
        // Overload, too many parts, a missing table an operator is fixing: retry.
        assert!(server(500, Some(252)).is_retryable());
        assert!(server(500, Some(60)).is_retryable());
        assert!(server(503, None).is_retryable());
        assert!(server(429, None).is_retryable());
        // A body damaged on the way: retried.
        assert!(server(500, Some(40)).is_retryable());
        assert!(server(500, Some(271)).is_retryable());
        // No ClickHouse code: a proxy's answer, not the data's fault.
        for status in [400, 401, 403, 404, 413] {
            assert!(server(status, None).is_retryable(), "{status}");
        }
        assert!(Error::Unreachable("refused".into()).is_retryable());
        assert_eq!(server(500, Some(252)).metric_code(), "252");
        assert_eq!(server(502, None).metric_code(), "http_502");
    }
}
