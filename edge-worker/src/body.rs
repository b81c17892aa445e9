//! Reading a request body within `max_body_bytes`, whether or not it announces its
//! length: kept apart from the Workers glue (which feeds it the chunks of
//! `Request::stream()`) so the bound is unit-tested natively.
//!
//! A `Content-Length` over the limit is refused before anything is read; one that is not
//! a byte count is a 400 naming the header. A body without one (chunked) is read chunk by
//! chunk and refused as soon as it passes the limit: memory stays within the limit plus
//! the one chunk the runtime handed over, never the whole body.

use ingest_core::Error;

/// The header the length check is about (the `field` of its errors).
pub const CONTENT_LENGTH: &str = "Content-Length";

/// Checks a request's `Content-Length` (`None`: absent) against `limit`: the announced
/// length when it is within it, [`Error::BodyTooLarge`] (413) when it is over, and
/// [`Error::Invalid`] naming the header (400) when it is not a byte count.
pub fn declared_length(value: Option<&str>, limit: usize) -> Result<Option<usize>, Error> {
    let Some(v) = value else {
        return Ok(None);
    };
    // u64, not usize: on wasm32 a length over 4 GiB is still a length (and too large).
    let len: u64 = v.trim().parse().map_err(|_| Error::Invalid {
        field: CONTENT_LENGTH.into(),
        reason: format!("{v:?} is not a length in bytes"),
    })?;
    match usize::try_from(len) {
        Ok(n) if n <= limit => Ok(Some(n)),
        _ => Err(Error::BodyTooLarge {
            limit,
            actual: usize::try_from(len).unwrap_or(usize::MAX),
        }),
    }
}

/// A body being read, at most `limit` bytes of it.
#[derive(Debug)]
pub struct BoundedBody {
    buf: Vec<u8>,
    limit: usize,
}

impl BoundedBody {
    /// An empty body for a request that announced `declared` bytes (already checked by
    /// [`declared_length`]; reserved up front so the chunks are not copied again).
    pub fn new(limit: usize, declared: Option<usize>) -> Self {
        BoundedBody {
            buf: Vec::with_capacity(declared.unwrap_or(0).min(limit)),
            limit,
        }
    }

    /// Appends the next chunk, or refuses the body (413) when it would pass the limit;
    /// the caller stops reading then.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Error> {
        let seen = self.buf.len().saturating_add(chunk.len());
        if seen > self.limit {
            return Err(Error::BodyTooLarge {
                limit: self.limit,
                actual: seen,
            });
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// The body read.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply;

    #[test]
    fn content_length_is_checked_before_reading() {
        assert_eq!(declared_length(None, 10), Ok(None));
        assert_eq!(declared_length(Some(" 10 "), 10), Ok(Some(10)));
        let over = declared_length(Some("11"), 10).unwrap_err();
        assert_eq!(reply::problem(&over).status, 413);
        let huge = declared_length(Some("99999999999999999999"), 10);
        assert!(huge.is_err(), "{huge:?}");
        for bad in ["", "ten", "-1", "1e3", "0x10"] {
            let err = declared_length(Some(bad), 10).unwrap_err();
            let r = reply::problem(&err);
            assert_eq!(r.status, 400, "{bad:?}");
            assert_eq!(err.field(), CONTENT_LENGTH);
        }
    }

    /// A body without a length is refused at the first chunk past the limit, holding no
    /// more than the limit; the 413 is the one the `Content-Length` path gives.
    #[test]
    fn a_body_without_length_stops_at_the_limit() {
        let mut b = BoundedBody::new(100, None);
        for _ in 0..10 {
            b.push(&[b'x'; 10]).unwrap();
        }
        let err = b.push(b"y").unwrap_err();
        assert_eq!(
            err,
            Error::BodyTooLarge {
                limit: 100,
                actual: 101
            }
        );
        assert_eq!(reply::problem(&err).status, 413);
        assert_eq!(err.field(), "body");
        assert_eq!(b.into_bytes().len(), 100, "nothing past the limit is kept");
        let mut ok = BoundedBody::new(100, Some(5));
        ok.push(b"hello").unwrap();
        assert_eq!(ok.into_bytes(), b"hello");
    }
}
