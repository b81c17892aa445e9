//! The fast path: ordinary URLs split by hand, borrowing from the input.
//!
//! It returns `None` — "ask the `url` crate" — for every input where its output could
//! differ from the WHATWG parser's, so it only has to be right on what it accepts:
//!
//! - every byte is printable ASCII (`0x21..=0x7e`) and none is a backslash, so there
//!   is no whitespace for the parser to trim or strip, nothing non-ASCII to
//!   percent-encode or punycode, and no `\` that special schemes read as `/`;
//! - the scheme is `http` or `https` (any case) followed by exactly `://`;
//! - the authority has no userinfo (`@`), the host is made of ASCII letters, digits,
//!   `-` and `.` in non-empty labels, no label starts with `xn--` (the parser would
//!   validate the punycode), and the last label does not start with a digit (the parser
//!   would read the host as an IPv4 number, as in `0x7f.1`); `[` (IPv6) is refused too;
//! - the port, if any, is 1 to 5 digits and at most 65535;
//! - the path has no `.`/`..` segment and no `%2e` (dot segments the parser removes)
//!   and none of `"` `<` `>` `` ` `` `{` `}` (which it percent-encodes);
//! - the query has none of `"` `<` `>` `'` (which it percent-encodes for special
//!   schemes); the fragment is dropped, so its content does not matter.
//!
//! On such input the parser's host is our host lowercased, its path is our path (or
//! `/` when empty) and its query is our query, byte for byte; the property test in
//! `proptests.rs` holds us to that.

use std::borrow::Cow;

use super::{finish_host, NormalizeConfig, PageUrl};

// One table lookup per byte tells whether it needs a closer look; the common bytes of
// a path or query (letters, digits, `-`, `_`, `=`…) fall straight through.
/// Never on the fast path: controls, space, DEL, non-ASCII, `\`.
const BAD: u8 = 1;
/// Percent-encoded by the parser in a path: `"` `<` `>` `` ` `` `{` `}`.
const PATH_ENC: u8 = 2;
/// Percent-encoded by the parser in a special scheme's query: `"` `<` `>` `'`.
const QUERY_ENC: u8 = 4;
/// Needs a look in the path: `/` `%` `?` `#`.
const PATH_MARK: u8 = 8;
/// Needs a look in the query: `&` `=` `%` `+` `#`.
const QUERY_MARK: u8 = 16;
/// A host-label byte: ASCII letter, digit or `-`.
const HOST: u8 = 32;
/// An ASCII uppercase letter (the host needs lowercasing).
const UPPER: u8 = 64;

static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut f = 0;
        if c <= b' ' || c >= 0x7f || c == b'\\' {
            f |= BAD;
        }
        if matches!(c, b'"' | b'<' | b'>' | b'`' | b'{' | b'}') {
            f |= PATH_ENC;
        }
        if matches!(c, b'"' | b'<' | b'>' | b'\'') {
            f |= QUERY_ENC;
        }
        if matches!(c, b'/' | b'%' | b'?' | b'#') {
            f |= PATH_MARK;
        }
        if matches!(c, b'&' | b'=' | b'%' | b'+' | b'#') {
            f |= QUERY_MARK;
        }
        if c.is_ascii_alphanumeric() || c == b'-' {
            f |= HOST;
        }
        if c.is_ascii_uppercase() {
            f |= UPPER;
        }
        t[b] = f;
        b += 1;
    }
    t
}

/// [`super::normalize_url`] for ordinary URLs; `None` means "use the `url` crate".
pub(super) fn page_url<'a>(url: &'a str, cfg: &NormalizeConfig) -> Option<PageUrl<'a>> {
    let bytes = url.as_bytes();
    let auth = scan_authority(bytes)?;
    let hostname = finish_host(host_str(url, &auth), cfg)?;

    // Path: up to `?`, `#` or the end.
    let mut i = auth.end;
    let mut segment_start = i;
    while i < bytes.len() {
        let class = CLASS[usize::from(bytes[i])];
        if class & (BAD | PATH_ENC | PATH_MARK) == 0 {
            i += 1;
            continue;
        }
        if class & (BAD | PATH_ENC) != 0 {
            return None;
        }
        match bytes[i] {
            b'?' | b'#' => break,
            b'/' => {
                if dot_segment(bytes, segment_start, i) {
                    return None;
                }
                segment_start = i + 1;
            }
            // `%2e` is a dot to the parser: `/%2e%2E/` is a `..` segment.
            _ => {
                if bytes.get(i + 1) == Some(&b'2') && matches!(bytes.get(i + 2), Some(b'e' | b'E'))
                {
                    return None;
                }
            }
        }
        i += 1;
    }
    if dot_segment(bytes, segment_start, i) {
        return None;
    }
    let path = &url[auth.end..i];
    let [utm_source, utm_medium, utm_campaign, utm_content, utm_term] =
        if bytes.get(i) == Some(&b'?') {
            query_utm(url, i + 1)?
        } else {
            Default::default()
        };
    // The fragment is dropped; nothing in it changes what the parser makes of the rest.
    // Built where it is returned: a `PageUrl` filled in place and then returned was
    // copied (160 bytes, a `memcpy` call) on its way out.
    Some(PageUrl {
        hostname,
        pathname: Cow::Borrowed(if path.is_empty() { "/" } else { path }),
        utm_source,
        utm_medium,
        utm_campaign,
        utm_content,
        utm_term,
    })
}

/// Scans the query from `start` to `#` or the end, refusing bytes the parser would
/// encode, and returns the UTM fields (source, medium, campaign, content, term)
/// exactly as `form_urlencoded` parsing of the whole query would (first occurrence
/// wins; `+` and `%XX` decoded; empty when absent).
fn query_utm(url: &str, start: usize) -> Option<[Cow<'_, str>; 5]> {
    let bytes = url.as_bytes();
    let mut found: [Option<Cow<'_, str>>; 5] = Default::default();
    let mut pair_start = start;
    let mut key_end = None;
    let mut encoded = false;
    let mut i = start;
    loop {
        let b = bytes.get(i).copied();
        let class = b.map_or(QUERY_MARK, |b| CLASS[usize::from(b)]);
        if class & (BAD | QUERY_ENC | QUERY_MARK) == 0 {
            i += 1;
            continue;
        }
        if class & (BAD | QUERY_ENC) != 0 {
            return None;
        }
        match b {
            Some(b'=') => {
                key_end.get_or_insert(i);
            }
            Some(b'%' | b'+') => encoded = true,
            // `&`, `#` or the end: a pair is complete.
            _ => {
                let pair = &url[pair_start..i];
                let key = &url[pair_start..key_end.unwrap_or(i)];
                if encoded {
                    // Rare: let form_urlencoded decode this one pair, key and value.
                    if let Some((k, v)) = url::form_urlencoded::parse(pair.as_bytes()).next() {
                        if let Some(slot) = utm_slot(&k) {
                            found[slot].get_or_insert(v);
                        }
                    }
                } else if let Some(slot) = utm_slot(key) {
                    let value = key_end.map_or("", |k| &url[k + 1..i]);
                    found[slot].get_or_insert(Cow::Borrowed(value));
                }
                if b != Some(b'&') {
                    break;
                }
                pair_start = i + 1;
                key_end = None;
                encoded = false;
            }
        }
        i += 1;
    }
    Some(found.map(Option::unwrap_or_default))
}

fn utm_slot(key: &str) -> Option<usize> {
    match key.strip_prefix("utm_")? {
        "source" => Some(0),
        "medium" => Some(1),
        "campaign" => Some(2),
        "content" => Some(3),
        "term" => Some(4),
        _ => None,
    }
}

/// The lowercase host of an ordinary `http`/`https` URL (before `www.`/trailing-dot
/// handling), or `None` to ask the `url` crate. Only the scheme and authority are
/// looked at: what follows the host cannot change how the parser reads the host, as
/// long as the authority ends at `/`, `?`, `#` or the end (anything else — `\`,
/// whitespace, `@`, `[` — sends the URL to the `url` crate).
#[inline(always)]
pub(super) fn http_host(url: &str) -> Option<Cow<'_, str>> {
    let auth = scan_authority(url.as_bytes())?;
    Some(host_str(url, &auth))
}

/// Where the host and the authority of an ordinary URL are.
struct Authority {
    host_start: usize,
    host_end: usize,
    /// Where the path (or query, or fragment) starts.
    end: usize,
    uppercase: bool,
}

/// Checks scheme and authority in one pass: `http://` or `https://` (any case), a host
/// of non-empty labels of letters, digits and `-`, none starting with `xn--`, the last
/// not starting with a digit (an IPv4 number to the parser), then an optional port of
/// 1–5 digits up to 65535, then `/`, `?`, `#` or the end.
// Inlined, with `http_host`, `host_str` and `finish_host`: returned through memory,
// the `Authority` (and the host's `Cow`) were read back with wider loads than the
// callee's stores, a store-forwarding stall that took 14% of `page_url`'s samples and
// 13% of the referrer path's. `profile --against arrow-json`, 10 alternating pairs
// each: +0.7–1.4% (inlining `page_url` itself into its caller too: −7%).
#[inline(always)]
fn scan_authority(bytes: &[u8]) -> Option<Authority> {
    let host_start = scheme_len(bytes)?;
    let rest = &bytes[host_start..];
    let mut seen = 0u8;
    let mut label_start = 0;
    let mut n = 0;
    for &b in rest {
        let class = CLASS[usize::from(b)];
        if class & HOST == 0 {
            if b != b'.' {
                break;
            }
            if !plain_label(&rest[label_start..n]) {
                return None;
            }
            label_start = n + 1;
        }
        seen |= class;
        n += 1;
    }
    let last = &rest[label_start..n];
    if !plain_label(last) || last[0].is_ascii_digit() {
        return None;
    }
    let uppercase = seen & UPPER != 0;
    let mut i = host_start + n;
    let host_end = i;
    if bytes.get(i) == Some(&b':') {
        i += 1;
        let digits_start = i;
        let mut port = 0u32;
        while let Some(&d) = bytes.get(i).filter(|d| d.is_ascii_digit()) {
            port = port * 10 + u32::from(d - b'0');
            i += 1;
            if i - digits_start > 5 {
                return None;
            }
        }
        if i == digits_start || port > u32::from(u16::MAX) {
            return None;
        }
    }
    match bytes.get(i) {
        None | Some(b'/' | b'?' | b'#') => Some(Authority {
            host_start,
            host_end,
            end: i,
            uppercase,
        }),
        _ => None,
    }
}

/// A non-empty label that is not punycode (the parser would validate it).
fn plain_label(label: &[u8]) -> bool {
    !matches!(label, [] | [b'x' | b'X', b'n' | b'N', b'-', b'-', ..])
}

/// The host, lowercased (borrowed when it already is lowercase, the usual case).
#[inline(always)]
fn host_str<'a>(url: &'a str, auth: &Authority) -> Cow<'a, str> {
    let host = &url[auth.host_start..auth.host_end];
    if auth.uppercase {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Length of `http://` or `https://` (any case) at the start, else `None`.
fn scheme_len(bytes: &[u8]) -> Option<usize> {
    let scheme = bytes.get(..4)?;
    if !scheme.eq_ignore_ascii_case(b"http") {
        return None;
    }
    match bytes.get(4..8)? {
        [b':', b'/', b'/', _] => Some(7),
        [b's' | b'S', b':', b'/', b'/'] => Some(8),
        _ => None,
    }
}

/// Is `bytes[start..end]` `.` or `..`? One comparison for the usual longer segment
/// (slicing each segment to match it was 0.7% of the full path).
#[inline]
fn dot_segment(bytes: &[u8], start: usize, end: usize) -> bool {
    end > start
        && end - start <= 2
        && bytes.get(start) == Some(&b'.')
        && bytes.get(end - 1) == Some(&b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_fast_path_refuses() {
        let cfg = NormalizeConfig::default();
        for url in [
            "http://[::1]/",
            "http://127.0.0.1/",
            "http://example.1/",
            "http://xn--bcher-kva.de/",
            "http://a..b/",
            "http://example.com./",
            "http://u@example.com/",
            "http://example.com:/",
            "http://example.com:65536/",
            "http://example.com:123456/",
            "http://example.com/a/../b",
            "http://example.com/a/.",
            "http://example.com/%2E",
            "http://example.com/{x}",
            "http://example.com/?q='",
            "http://example.com\\x",
            " http://example.com/",
            "http://ex_ample.com/",
            "http:/example.com/",
            "http:example.com/",
            "ftp://example.com/",
            "http://",
        ] {
            assert!(page_url(url, &cfg).is_none(), "{url:?}");
        }
    }

    #[test]
    fn what_the_fast_path_accepts() {
        let cfg = NormalizeConfig::default();
        for url in [
            "http://example.com",
            "HTTP://EXAMPLE.COM:65535/A/B.html?x=1&y#f'\"",
            "https://a-b.c-d.example/.well-known/x..y/.z",
            "https://example.com/%20a?%20=%41",
            "https://e.com/~user/|^[]@:;=!$&()*+,",
        ] {
            assert!(page_url(url, &cfg).is_some(), "{url:?}");
        }
    }
}
