//! The fields of an event and their names on the wire: the one table of key names
//! per dialect (own format and pixel; Plausible), from which the name lookup, the
//! canonical names of errors and the fast path's key patterns ([`super::flat`]) all
//! come; the duplicate-key check; and the per-format choices of the JSON decoders.

use crate::{Error, Result};

/// A field of the event, whatever name a wire format gives it. Declared in the order
/// of [`OWN_NAMES`], which [`Field::name`] indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Site,
    Url,
    Name,
    Referrer,
    ScreenWidth,
    Ts,
    TtfbMs,
    FcpMs,
    LcpMs,
    InpMs,
    LoadMs,
    Cls,
    ScrollDepth,
    EngagementMs,
    Props,
}

/// The own format's (and the pixel's) key names: the one table both the name lookup
/// and the fast path's key patterns ([`super::flat`]) come from. In the order our
/// tracker and the benches' generator write them (page fields, timings, props), which
/// is the order the fast path tries its patterns in, and the order of [`Field`]
/// (checked at compile time below), so these are also the canonical names of errors.
pub(crate) static OWN_NAMES: [(&str, Field); 15] = [
    ("site", Field::Site),
    ("url", Field::Url),
    ("name", Field::Name),
    ("referrer", Field::Referrer),
    ("screen_width", Field::ScreenWidth),
    ("ts", Field::Ts),
    ("ttfb_ms", Field::TtfbMs),
    ("fcp_ms", Field::FcpMs),
    ("lcp_ms", Field::LcpMs),
    ("inp_ms", Field::InpMs),
    ("load_ms", Field::LoadMs),
    ("cls", Field::Cls),
    ("scroll_depth", Field::ScrollDepth),
    ("engagement_ms", Field::EngagementMs),
    ("props", Field::Props),
];

const _: () = {
    let mut i = 0;
    while i < OWN_NAMES.len() {
        assert!(OWN_NAMES[i].1 as usize == i, "OWN_NAMES is in Field order");
        i += 1;
    }
};

/// Plausible's key names, its script's short ones first (the order the fast path tries
/// them in). Keys not listed (`v`, `i`/`interactive`, `h`/`hashMode`, `$`/`revenue`,
/// …) are ignored.
pub(crate) static PLAUSIBLE_NAMES: [(&str, Field); 16] = [
    ("n", Field::Name),
    ("u", Field::Url),
    ("d", Field::Site),
    ("r", Field::Referrer),
    ("w", Field::ScreenWidth),
    ("p", Field::Props),
    ("m", Field::Props),
    ("sd", Field::ScrollDepth),
    ("e", Field::EngagementMs),
    ("name", Field::Name),
    ("url", Field::Url),
    ("domain", Field::Site),
    ("referrer", Field::Referrer),
    ("screen_width", Field::ScreenWidth),
    ("props", Field::Props),
    ("meta", Field::Props),
];

/// `key` → its field in `names`. A linear scan: the fast path matches known keys by
/// pattern first, so this serves only keys written unusually (whitespace before the
/// colon, escapes), the simd-json path and the pixel's query keys.
#[inline]
fn lookup(names: &[(&str, Field)], key: &[u8]) -> Option<Field> {
    names
        .iter()
        .find(|(n, _)| n.as_bytes() == key)
        .map(|&(_, f)| f)
}

impl Field {
    /// The canonical (own-format) name, used in every error whatever the wire name.
    pub(crate) fn name(self) -> &'static str {
        OWN_NAMES.get(self as usize).map_or("unknown", |&(n, _)| n)
    }

    /// Plausible key → field.
    #[inline]
    pub(crate) fn from_plausible_name(key: &[u8]) -> Option<Field> {
        lookup(&PLAUSIBLE_NAMES, key)
    }

    /// Own-format (and pixel) key → field.
    #[inline]
    pub(crate) fn from_own_name(key: &[u8]) -> Option<Field> {
        lookup(&OWN_NAMES, key)
    }

    #[inline]
    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// Remembers which fields an event already set, to reject duplicates (including two
/// aliases of one field, such as Plausible's `n` and `name`).
#[derive(Default)]
pub(crate) struct Seen(u32);

impl Seen {
    #[inline]
    pub(crate) fn insert(&mut self, f: Field) -> Result<()> {
        if self.0 & f.bit() != 0 {
            return Err(Error::invalid(f.name(), "duplicate key"));
        }
        self.0 |= f.bit();
        Ok(())
    }
}

/// The per-format choices of the JSON decoder.
pub(crate) struct Dialect {
    /// Plausible compatibility: its key names ([`Field::from_plausible_name`]), `d` may
    /// be a comma-separated list, props may be a JSON-encoded string, and props whose
    /// value is null, empty, an object or an array are dropped (as Plausible does)
    /// instead of rejecting the event. Otherwise the own format.
    pub(crate) plausible: bool,
}

impl Dialect {
    /// Wire key (its unescaped bytes) → field; `None` = unknown key, ignored. A
    /// direct call, so both lookups inline into the decoders (a function pointer here
    /// was an indirect call per key).
    #[inline]
    pub(crate) fn field(&self, key: &[u8]) -> Option<Field> {
        if self.plausible {
            Field::from_plausible_name(key)
        } else {
            Field::from_own_name(key)
        }
    }
}
