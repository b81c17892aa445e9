//! Known keys as 16-byte patterns: where a client writes its keys in a fixed order, a
//! key costs one comparison instead of a string scan and a lookup by name.

use super::super::fields::{Dialect, Field, OWN_NAMES, PLAUSIBLE_NAMES};
use super::lex::skip_ws;

/// A known key as it appears in compact JSON, `"name":`, as the little-endian
/// integer of its bytes: matching it at a position is one 16-byte load, a xor and a
/// mask, where [`key`](super::lex::key) scans the string, skips whitespace and looks the name up.
#[derive(Clone, Copy)]
pub(super) struct KeyPattern {
    pub(super) bytes: u128,
    pub(super) mask: u128,
    /// Bytes of `"name":`.
    pub(super) len: usize,
    pub(super) field: Field,
}

impl KeyPattern {
    const fn new(name: &str, field: Field) -> Self {
        let n = name.as_bytes();
        assert!(n.len() + 3 <= 16, "key patterns are at most 16 bytes");
        let mut bytes = b'"' as u128;
        let mut k = 0;
        while k < n.len() {
            bytes |= (n[k] as u128) << (8 * (k + 1));
            k += 1;
        }
        bytes |= (b'"' as u128) << (8 * (n.len() + 1));
        bytes |= (b':' as u128) << (8 * (n.len() + 2));
        let len = n.len() + 3;
        let mask = if len == 16 {
            u128::MAX
        } else {
            (1u128 << (8 * len)) - 1
        };
        KeyPattern {
            bytes,
            mask,
            len,
            field,
        }
    }
}

/// The patterns of a name table, in its order.
const fn patterns<const N: usize>(names: &[(&str, Field); N]) -> [KeyPattern; N] {
    let mut out = [KeyPattern {
        bytes: 0,
        mask: 0,
        len: 0,
        field: Field::Site,
    }; N];
    let mut k = 0;
    while k < N {
        out[k] = KeyPattern::new(names[k].0, names[k].1);
        k += 1;
    }
    out
}

/// The own format's keys as patterns, in [`OWN_NAMES`]' order (any order is correct;
/// a key where the order expects it costs one comparison, one written out of order
/// costs one per pattern until the match, see [`predicted_key`]).
pub(super) static OWN_KEYS: [KeyPattern; OWN_NAMES.len()] = patterns(&OWN_NAMES);

/// Plausible's keys as patterns, in [`PLAUSIBLE_NAMES`]' order (short names first).
pub(super) static PLAUSIBLE_KEYS: [KeyPattern; PLAUSIBLE_NAMES.len()] = patterns(&PLAUSIBLE_NAMES);

pub(super) fn key_patterns(dialect: &Dialect) -> &'static [KeyPattern] {
    if dialect.plausible {
        &PLAUSIBLE_KEYS
    } else {
        &OWN_KEYS
    }
}

/// The known key written as `"name":` at `b[*i]`, tried from `keys[*next]` on (the
/// key after the previous one, so a client's fixed key order costs one comparison
/// per key), with `*i` moved to the value and `*next` past the match. `None` when no
/// pattern matches here: the caller reads the key with [`key`](super::lex::key), which gives the same
/// answer for every key a pattern matches (a unit test holds this).
#[inline]
pub(super) fn predicted_key(
    b: &[u8],
    i: &mut usize,
    keys: &[KeyPattern],
    next: &mut usize,
) -> Option<Field> {
    let at = *i;
    // The 16 bytes from `at`; near the end of the line, the last 16 shifted down, so
    // the bytes past the end read as zero, which no pattern byte is.
    let w = if let Some(chunk) = b.get(at..at + 16) {
        u128::from_le_bytes(chunk.try_into().ok()?)
    } else {
        let tail = b.get(b.len().checked_sub(16)?..)?;
        // `at == b.len()` shifts everything out (128 bits: `checked_shr` says 0).
        let shift = 8 * (at + 16).checked_sub(b.len())?;
        u128::from_le_bytes(tail.try_into().ok()?)
            .checked_shr(u32::try_from(shift).ok()?)
            .unwrap_or(0)
    };
    let n = keys.len();
    let mut k = *next;
    for _ in 0..n {
        if k >= n {
            k = 0;
        }
        let p = &keys[k];
        if (w ^ p.bytes) & p.mask == 0 {
            *i = skip_ws(b, at + p.len);
            *next = k + 1;
            return Some(p.field);
        }
        k += 1;
    }
    None
}
