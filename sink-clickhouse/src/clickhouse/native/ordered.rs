//! A block's columns in the table's sorting-key order: the rows `order` picks from the
//! parts, each value copied once from where it is into the block (the loader's inserts,
//! [`super::encode_native_ordered`]). Strings and fixed-width columns are gathered
//! here; other types go through arrow-select's `interleave` and the usual encoder.

use arrow_array::Array;

use super::super::types::ChType;
use super::super::{Error, Result};
use super::{encode, put_value};

/// String column of the rows `order` picks from `parts`, as [`put_strings`] writes
/// each part: one pass, each value copied once from where it is.
pub(super) fn gather_strings(
    out: &mut Vec<u8>,
    parts: &[&arrow_array::StringArray],
    order: &[(usize, usize)],
) {
    let cols: Vec<(&[i32], &[u8])> = parts
        .iter()
        .map(|a| (a.value_offsets(), a.value_data()))
        .collect();
    let (bytes, rows) = parts.iter().fold((0, 0), |(b, r), a| {
        let o = a.value_offsets();
        (b + (o[a.len()] - o[0]) as usize, r + a.len())
    });
    if bytes == 0 {
        // A column empty in every row (no geo database: country, region, city) is
        // one zero length a row, in any order.
        out.resize(out.len() + order.len(), 0);
        return;
    }
    out.reserve(order.len() + bytes / rows.max(1) * order.len());
    for (k, &(p, r)) in order.iter().enumerate() {
        // The offsets of the row `2 * AHEAD` on are asked for (their line comes in
        // while the next rows are copied), then the bytes of the row `AHEAD` on, whose
        // offsets were asked for that way.
        if let Some(&(p2, r2)) = order.get(k + 2 * AHEAD) {
            prefetch(cols[p2].0, r2);
        }
        if let Some(&(p1, r1)) = order.get(k + AHEAD) {
            let (offsets, data) = cols[p1];
            prefetch(data, offsets[r1] as usize);
        }
        let (offsets, data) = cols[p];
        put_value(out, data, offsets[r] as usize, offsets[r + 1] as usize);
    }
}

/// Rows the gathers look ahead. They read rows at random over a whole chunk (a few
/// megabytes a column at 100,000 rows), so most reads miss the caches; without a hint
/// each copy waited for its own miss. `encoders`' `clickhouse_native_records_key_order`
/// (sort, gather and encode of 100,000 rows), alternating runs: 39.0–44.8 ms without,
/// 33.4–35.3 ms with 8 rows of look-ahead (4, 16 and 32 were no better).
const AHEAD: usize = 8;

/// Asks the CPU to bring `items[at]`'s cache line in; nothing when `at` is out of
/// bounds, or on targets other than x86_64 with SSE.
#[inline(always)]
fn prefetch<T>(items: &[T], at: usize) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    if let Some(item) = items.get(at) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint: it writes no memory and no register, and it
        // cannot fault (the pointer is in bounds anyway). SSE, which it needs, is on
        // (the `cfg` above: every x86_64 target but the soft-float ones).
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(item).cast());
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = (items, at);
}

/// Bytes per row of a ClickHouse type written as fixed-width values, and whether a
/// null map (one byte per row) comes first; `None` for any other type.
pub(super) fn fixed_width(ty: &ChType) -> Option<(bool, usize)> {
    let width = |t: &ChType| match t {
        ChType::UInt8 | ChType::Int8 => Some(1),
        ChType::UInt16 | ChType::Int16 => Some(2),
        ChType::UInt32 | ChType::Int32 | ChType::Float32 | ChType::DateTime => Some(4),
        ChType::UInt64 | ChType::Int64 | ChType::Float64 | ChType::DateTime64(_) => Some(8),
        ChType::Uuid | ChType::FixedString(16) => Some(16),
        _ => None,
    };
    match ty {
        ChType::Nullable(inner) => width(inner).map(|w| (true, w)),
        t => width(t).map(|w| (false, w)),
    }
}

/// A fixed-width column (`fixed_width(ty)`) of the rows in `order`: each part is
/// written as [`encode`] writes it, in its own order (a sequential pass), and the
/// rows' null flags and values are then copied out in key order. Where arrow-select's
/// `interleave` built a gathered Arrow array (values and validity bit by bit) that was
/// then encoded, this copies each row's bytes once.
pub(super) fn gather_fixed(
    out: &mut Vec<u8>,
    arrs: &[&dyn Array],
    order: &[(usize, usize)],
    ty: &ChType,
    name: &str,
) -> Result<()> {
    let (nullable, width) = fixed_width(ty).expect("checked by the caller");
    let mut parts = Vec::new();
    // Where each part's null map and values start in `parts`.
    let mut starts = Vec::with_capacity(arrs.len());
    for a in arrs {
        let at = parts.len();
        encode(&mut parts, &[*a], ty, name)?;
        let values = if nullable { at + a.len() } else { at };
        if parts.len() != values + a.len() * width {
            return Err(Error::Batch {
                column: name.to_owned(),
                reason: format!("{ty:?} did not encode as {width} bytes a row"),
            });
        }
        starts.push((at, values));
    }
    if nullable {
        out.extend(order.iter().map(|&(p, r)| parts[starts[p].0 + r]));
    }
    match width {
        1 => out.extend(order.iter().map(|&(p, r)| parts[starts[p].1 + r])),
        2 => gather_values::<2>(out, &parts, &starts, order),
        4 => gather_values::<4>(out, &parts, &starts, order),
        8 => gather_values::<8>(out, &parts, &starts, order),
        _ => gather_values::<16>(out, &parts, &starts, order),
    }
    Ok(())
}

/// Copies the `W`-byte value of each row in `order` (one fixed-size move a row).
fn gather_values<const W: usize>(
    out: &mut Vec<u8>,
    parts: &[u8],
    starts: &[(usize, usize)],
    order: &[(usize, usize)],
) {
    out.reserve(order.len() * W);
    for (k, &(p, r)) in order.iter().enumerate() {
        if let Some(&(p1, r1)) = order.get(k + AHEAD) {
            prefetch(parts, starts[p1].1 + r1 * W);
        }
        let at = starts[p].1 + r * W;
        let v: [u8; W] = parts[at..at + W].try_into().expect("W bytes");
        out.extend_from_slice(&v);
    }
}
