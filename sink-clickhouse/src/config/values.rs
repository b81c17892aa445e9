//! The values of the flags that are not plain numbers or strings: their parsers (sizes,
//! durations) and the bounds they check, used as clap's `value_parser`s in the parent
//! module.

use std::time::Duration;

use crate::clickhouse::check_block_rows;
use crate::server::head::{
    MAX_HEADERS_CEILING, MAX_HEADER_BYTES_CEILING, MAX_URL_BYTES_CEILING, MIN_HEAD_LIMIT_BYTES,
    MIN_MAX_HEADERS,
};

/// `--clickhouse-block-rows`: a count within the client's bounds.
pub(super) fn block_rows(s: &str) -> Result<usize, String> {
    check_block_rows(s.parse().map_err(|e| format!("{s:?}: {e}"))?)
}

/// The largest `--max-ipc-expansion`: LZ4, the only compression the IPC reader takes,
/// expands a body at most about 255 times, so a larger factor would bound nothing.
pub const MAX_IPC_EXPANSION_CEILING: u64 = 255;

/// The largest `--min-ipc-decoded-bytes`: the floor is what a body of a few bytes may
/// make the sink allocate, per request; past 1 GiB it no longer bounds anything a
/// host of this service has to spare.
pub const MAX_IPC_DECODED_FLOOR: u64 = 1 << 30;

/// `--min-ipc-decoded-bytes`: a size up to [`MAX_IPC_DECODED_FLOOR`].
pub(super) fn ipc_decoded_floor(s: &str) -> Result<usize, String> {
    let n = parse_bytes(s)?;
    if n > MAX_IPC_DECODED_FLOOR {
        return Err(format!(
            "{s:?}: at most 1GiB (every body, however small, may decode to this much)"
        ));
    }
    usize::try_from(n).map_err(|_| format!("{s:?}: too large for this platform"))
}

/// The smallest `--flush-bytes`: a segment is sealed once it reaches its size, so one
/// below a group-commit round's size makes a segment, and an insert, of every round.
pub const MIN_SEGMENT_BYTES: u64 = 1 << 20;

/// `--flush-bytes`: a size of at least [`MIN_SEGMENT_BYTES`].
pub(super) fn segment_bytes(s: &str) -> Result<u64, String> {
    let n = parse_bytes(s)?;
    if n < MIN_SEGMENT_BYTES {
        return Err(format!(
            "{s:?}: a segment needs at least 1MiB (a smaller one seals every group-commit round on its own)"
        ));
    }
    Ok(n)
}

/// `--flush-interval`: a duration above zero (zero would seal every round's segment).
pub(super) fn segment_age(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be more than zero"));
    }
    Ok(d)
}

/// `--max-url-bytes`: a size within [`MIN_HEAD_LIMIT_BYTES`] and
/// [`MAX_URL_BYTES_CEILING`].
pub(super) fn url_bytes(s: &str) -> Result<usize, String> {
    head_limit(s, MAX_URL_BYTES_CEILING)
}

/// `--max-header-bytes`: a size within [`MIN_HEAD_LIMIT_BYTES`] and
/// [`MAX_HEADER_BYTES_CEILING`].
pub(super) fn header_bytes(s: &str) -> Result<usize, String> {
    head_limit(s, MAX_HEADER_BYTES_CEILING)
}

/// `--max-headers`: a count within [`MIN_MAX_HEADERS`] and [`MAX_HEADERS_CEILING`].
pub(super) fn header_count(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?}: not a number of headers"))?;
    if !(MIN_MAX_HEADERS..=MAX_HEADERS_CEILING).contains(&n) {
        return Err(format!(
            "{s:?}: must be within {MIN_MAX_HEADERS} and {MAX_HEADERS_CEILING} (fewer would \
             refuse browsers behind a CDN; past {MAX_HEADERS_CEILING} hyper refuses the \
             request with no JSON body)"
        ));
    }
    Ok(n)
}

/// A request-head limit: at least 1KiB, and at most `ceiling`, so that both limits
/// together fit the connection's read buffer (`server::head`).
pub(super) fn head_limit(s: &str, ceiling: usize) -> Result<usize, String> {
    let n = parse_bytes(s)?;
    if n < MIN_HEAD_LIMIT_BYTES as u64 || n > ceiling as u64 {
        return Err(format!(
            "{s:?}: must be within {MIN_HEAD_LIMIT_BYTES} and {ceiling} bytes (past the \
             connection's read buffer hyper refuses the request with no JSON body)"
        ));
    }
    Ok(n as usize)
}

/// Parses `250ms`, `1s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 500ms, 1s, 2m"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        u => return Err(format!("{s:?}: unknown unit {u:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `1024`, `64KiB`, `16MiB`, `10GiB` (also `KB`/`MB`/`GB` as powers of 1000).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 16MiB"))?;
    let mul: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => return Err(format!("{s:?}: unknown unit {u:?} (KiB, MiB, GiB)")),
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("{s:?}: too large"))
}
