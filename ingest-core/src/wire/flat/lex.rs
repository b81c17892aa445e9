//! The byte-level pieces of the fast path: whitespace, plain strings (a SWAR scan for
//! their end), literals, the numbers whose value is certain, and object members.
//! Each returns `None` where the fast path must give up and leave the bytes to
//! simd-json.

use std::ops::Range;

use super::super::json::Num;

/// Skips whitespace within a line: a raw `\n` is where the scan stops (an NDJSON
/// line's end, which lets the caller find lines by scanning them; the rare object
/// pretty-printed over several lines is left to simd-json).
#[inline]
pub(super) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `w` that ends a plain string run: `"`, `\`, a control
/// character (< 0x20) or a non-ASCII byte. The lowest set bit is exact (the classic
/// SWAR zero-byte tests can only flag false positives above a true one).
#[inline]
fn specials(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let quote = zero(w ^ (LO * b'"' as u64));
    let backslash = zero(w ^ (LO * b'\\' as u64));
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    quote | backslash | control | (w & HI)
}

/// The string starting at `b[*i] == '"'`: its content's range, with `*i` moved past the
/// closing quote. `None` for escapes, control or non-ASCII bytes, or no closing quote.
#[inline]
pub(super) fn string(b: &[u8], i: &mut usize) -> Option<Range<usize>> {
    let start = *i + 1;
    let mut j = start;
    while let Some(chunk) = b.get(j..j + 8) {
        let w = u64::from_le_bytes(chunk.try_into().ok()?);
        let m = specials(w);
        if m != 0 {
            j += (m.trailing_zeros() / 8) as usize;
            return close(b, start, j, i);
        }
        j += 8;
    }
    while let Some(&c) = b.get(j) {
        if c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c) {
            break;
        }
        j += 1;
    }
    close(b, start, j, i)
}

#[inline]
fn close(b: &[u8], start: usize, j: usize, i: &mut usize) -> Option<Range<usize>> {
    if b.get(j) != Some(&b'"') {
        return None;
    }
    *i = j + 1;
    Some(start..j)
}

/// A string or `null` at `b[*i]`; anything else is `None` (the caller gives up).
#[inline]
pub(super) fn string_or_null(b: &[u8], i: &mut usize) -> Option<Option<Range<usize>>> {
    match b.get(*i)? {
        b'"' => string(b, i).map(Some),
        b'n' => literal(b, i, b"null").then_some(None),
        _ => None,
    }
}

/// [`string_or_null`] of at most `max` bytes (a longer one is the simd-json path's
/// `TooLong`).
#[inline]
pub(super) fn string_within(b: &[u8], i: &mut usize, max: usize) -> Option<Option<Range<usize>>> {
    match string_or_null(b, i)? {
        Some(r) if r.len() > max => None,
        r => Some(r),
    }
}

#[inline]
pub(super) fn literal(b: &[u8], i: &mut usize, lit: &[u8]) -> bool {
    if b.get(*i..*i + lit.len()) == Some(lit) {
        *i += lit.len();
        true
    } else {
        false
    }
}

/// Powers of ten that are exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A non-negative JSON number at `b[*i]`, of the forms whose value is certain: an
/// integer of at most 18 digits (simd-json's `U64`/`I64`), or a fraction or exponent
/// whose digits fit 2^53 and whose power of ten is at most 22 — one correctly rounded
/// operation on exact operands (Clinger's fast path), so every correct parser gives the
/// same f64. Anything else (a minus sign included) is `None`.
#[inline(always)]
pub(super) fn number(b: &[u8], i: &mut usize) -> Option<Num> {
    let mut j = *i;
    let mut m: u64 = 0;
    let mut digits = 0u32;
    while let Some(&c @ b'0'..=b'9') = b.get(j) {
        m = m * 10 + (c - b'0') as u64;
        digits += 1;
        j += 1;
        if digits > 18 {
            return None;
        }
    }
    // JSON: at least one digit, and no leading zero before more digits.
    if digits == 0 || (digits > 1 && b[*i] == b'0') {
        return None;
    }
    let mut exp: i32 = 0;
    let mut float = false;
    if b.get(j) == Some(&b'.') {
        float = true;
        j += 1;
        let before = digits;
        while let Some(&c @ b'0'..=b'9') = b.get(j) {
            m = m * 10 + (c - b'0') as u64;
            digits += 1;
            exp -= 1;
            j += 1;
            if digits > 18 {
                return None;
            }
        }
        if digits == before {
            return None;
        }
    }
    if let Some(b'e' | b'E') = b.get(j) {
        float = true;
        j += 1;
        let neg = match b.get(j) {
            Some(b'-') => {
                j += 1;
                true
            }
            Some(b'+') => {
                j += 1;
                false
            }
            _ => false,
        };
        let mut e: i32 = 0;
        let mut n = 0;
        while let Some(&c @ b'0'..=b'9') = b.get(j) {
            e = e * 10 + (c - b'0') as i32;
            n += 1;
            j += 1;
            if n > 3 {
                return None;
            }
        }
        if n == 0 {
            return None;
        }
        exp += if neg { -e } else { e };
    }
    *i = j;
    if !float {
        return Some(Num::Int(m));
    }
    if m > 1 << 53 || !(-22..=22).contains(&exp) {
        return None;
    }
    let x = m as f64;
    Some(Num::Float(if exp >= 0 {
        x * POW10[exp as usize]
    } else {
        x / POW10[(-exp) as usize]
    }))
}

/// Skips a scalar value (an unknown key's); containers and anything unusual are `None`.
#[inline]
pub(super) fn skip_scalar(b: &[u8], i: &mut usize) -> Option<()> {
    match b.get(*i)? {
        b'"' => string(b, i).map(drop),
        b'n' => literal(b, i, b"null").then_some(()),
        b't' => literal(b, i, b"true").then_some(()),
        b'f' => literal(b, i, b"false").then_some(()),
        b'0'..=b'9' => number(b, i).map(drop),
        _ => None,
    }
}

/// After a value: `,` (more members: `Some(true)`) or `}` (`Some(false)`).
#[inline]
pub(super) fn next_member(b: &[u8], i: &mut usize) -> Option<bool> {
    // Compact JSON, as trackers send it: `,"` goes straight to the next key.
    if b.get(*i) == Some(&b',') && b.get(*i + 1) == Some(&b'"') {
        *i += 1;
        return Some(true);
    }
    *i = skip_ws(b, *i);
    let c = *b.get(*i)?;
    *i = skip_ws(b, *i + 1);
    match c {
        b',' => Some(true),
        b'}' => Some(false),
        _ => None,
    }
}

/// `"key"` then `:`: the key's range, with `*i` at the value.
#[inline]
pub(super) fn key(b: &[u8], i: &mut usize) -> Option<Range<usize>> {
    if b.get(*i) != Some(&b'"') {
        return None;
    }
    let k = string(b, i)?;
    *i = skip_ws(b, *i);
    if b.get(*i) != Some(&b':') {
        return None;
    }
    *i = skip_ws(b, *i + 1);
    Some(k)
}
