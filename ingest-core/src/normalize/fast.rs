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

use super::{finish_host, utm_fields, NormalizeConfig, PageUrl};

/// [`super::normalize_url`] for ordinary URLs; `None` means "use the `url` crate".
pub(super) fn page_url<'a>(url: &'a str, cfg: &NormalizeConfig) -> Option<PageUrl<'a>> {
    let bytes = url.as_bytes();
    if !bytes.iter().all(|&b| b > b' ' && b < 0x7f && b != b'\\') {
        return None;
    }
    let auth_start = scheme_len(bytes)?;
    let auth_end = bytes[auth_start..]
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .map_or(bytes.len(), |i| auth_start + i);
    let host = lowercase(host_of(&url[auth_start..auth_end])?);
    let hostname = finish_host(host, cfg)?;

    let path_end = bytes[auth_end..]
        .iter()
        .position(|&b| matches!(b, b'?' | b'#'))
        .map_or(bytes.len(), |i| auth_end + i);
    let path = &url[auth_end..path_end];
    if !plain_path(path.as_bytes()) {
        return None;
    }
    let pathname = Cow::Borrowed(if path.is_empty() { "/" } else { path });

    let mut page = PageUrl {
        hostname,
        pathname,
        ..PageUrl::default()
    };
    if bytes.get(path_end) == Some(&b'?') {
        let query_end = bytes[path_end..]
            .iter()
            .position(|&b| b == b'#')
            .map_or(bytes.len(), |i| path_end + i);
        let query = &url[path_end + 1..query_end];
        if query
            .bytes()
            .any(|b| matches!(b, b'"' | b'<' | b'>' | b'\''))
        {
            return None;
        }
        let [source, medium, campaign, content, term] = utm_fields(query);
        page.utm_source = source;
        page.utm_medium = medium;
        page.utm_campaign = campaign;
        page.utm_content = content;
        page.utm_term = term;
    }
    Some(page)
}

/// The lowercase host of an ordinary `http`/`https` URL (before `www.`/trailing-dot
/// handling), or `None` to ask the `url` crate. Only the scheme and authority are
/// looked at: what follows the host cannot change how the parser reads the host, as
/// long as the host ends at `/`, `?` or `#` (a `\` or whitespace inside the
/// authority is refused by the host check).
pub(super) fn http_host(url: &str) -> Option<Cow<'_, str>> {
    let bytes = url.as_bytes();
    let auth_start = scheme_len(bytes)?;
    let auth_end = bytes[auth_start..]
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .map_or(bytes.len(), |i| auth_start + i);
    Some(lowercase(host_of(&url[auth_start..auth_end])?))
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

/// The host of an authority `host[:port]` when it is a plain domain name.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if let Some(port) = port {
        let digits = port.as_bytes();
        if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // At most 5 digits: fits in u32 without overflow.
        let value = digits
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
        if value > u32::from(u16::MAX) {
            return None;
        }
    }
    let mut last_label = "";
    for label in host.split('.') {
        let b = label.as_bytes();
        if b.is_empty()
            || !b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
            || (b.len() >= 4 && b[..4].eq_ignore_ascii_case(b"xn--"))
        {
            return None;
        }
        last_label = label;
    }
    if last_label.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    Some(host)
}

/// True when the parser keeps the path byte for byte: no dot segment, no `%2e`, no
/// byte it percent-encodes. The caller has checked for non-ASCII, whitespace and `\`.
fn plain_path(path: &[u8]) -> bool {
    let mut segment_start = 0;
    for (i, &b) in path.iter().enumerate() {
        match b {
            b'"' | b'<' | b'>' | b'`' | b'{' | b'}' => return false,
            b'%' if path.get(i + 1) == Some(&b'2')
                && matches!(path.get(i + 2), Some(b'e' | b'E')) =>
            {
                return false
            }
            b'/' => {
                if dot_segment(&path[segment_start..i]) {
                    return false;
                }
                segment_start = i + 1;
            }
            _ => {}
        }
    }
    !dot_segment(&path[segment_start..])
}

fn dot_segment(segment: &[u8]) -> bool {
    matches!(segment, b"." | b"..")
}

/// Lowercases an ASCII host, borrowing when it already is lowercase (the usual case).
fn lowercase(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
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
