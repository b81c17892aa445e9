//! Inserts sent in the table's sorting-key order, so that the server need not sort them.
//!
//! A MergeTree insert sorts each block by the table's `ORDER BY` and then permutes
//! every column of the block into that order — unless the block is in that order
//! already (`isAlreadySorted`, in every server since 1.1: 18.16 counts such blocks in
//! `system.events` as `MergeTreeDataWriterBlocksAlreadySorted`). On 18.16 here, ten
//! 100,000-row blocks of schema v1 cost the server 0.71–0.83 s of CPU in key order
//! against 1.37–1.55 s in arrival order (three alternating rounds): about half of
//! the server's insert work is that sort and permutation. Sorting here costs less:
//! each key column becomes one `u64` rank per row (strings ranked through their
//! distinct values, of which a chunk has few in the leading key columns), the ranks
//! are packed into one `u128` per row where they fit, and the permutation is applied
//! column by column while encoding.
//!
//! Only speed depends on this, never what is stored: if our order differed from the
//! server's for some key (a type read wrongly), the server would sort the block as it
//! always did. Keys we cannot evaluate exactly (expressions other than a column or
//! `toDate` of a UTC time column, floats, nullable or signed columns) are not sorted.
//! The order is a function of the chunk's rows alone (ties keep arrival order), so a
//! replayed chunk is sent as the same block.

use std::cmp::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMillisecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type};
use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::DataType;

use super::layout::TableLayout;
use super::native::{datetime64_ticks, datetime_secs};
use super::types::ChType;

/// How one element of the sorting key is computed from a schema-v1 column.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Elem {
    /// A String or LowCardinality(String) column: bytewise, as ClickHouse compares.
    Str(String),
    /// An unsigned integer column stored in an unsigned type at least as wide.
    UInt(String),
    /// A `DateTime` column: the seconds as encoded.
    Seconds(String),
    /// A `DateTime64(P)` column: the ticks as encoded.
    Ticks(String, u32),
    /// `toDate(col)` of a UTC `DateTime` or `DateTime64` column: days since 1970.
    Day(String),
}

/// A table's sorting key, as far as the loader can evaluate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    elems: Vec<Elem>,
}

impl SortKey {
    /// The key of `system.tables.sorting_key` (e.g. `site_id, toDate(received_at),
    /// name, visitor_id`) over the columns of `layout`, or why the loader cannot sort
    /// by it.
    pub fn parse(sorting_key: &str, layout: &TableLayout) -> Result<SortKey, String> {
        let sorting_key = sorting_key.trim();
        if sorting_key.is_empty() {
            return Err("the table has no sorting key".into());
        }
        let mut elems = Vec::new();
        for expr in split_top_level(sorting_key) {
            let expr = expr.trim();
            let (column, day) = match expr
                .strip_prefix("toDate(")
                .and_then(|r| r.strip_suffix(')'))
            {
                Some(inner) => (unquote(inner.trim()), true),
                None => (unquote(expr), false),
            };
            let column = column.ok_or_else(|| format!("`{expr}` is not a column"))?;
            let plan = layout
                .columns
                .iter()
                .find(|c| c.name == column)
                .ok_or_else(|| format!("`{column}` is not a column the sink inserts"))?;
            let utc = plan.type_name.contains("'UTC'") || plan.type_name.contains("'Etc/UTC'");
            let elem = match (&plan.ty, day) {
                (ChType::DateTime | ChType::DateTime64(_), true) if utc => Elem::Day(column),
                (_, true) => {
                    return Err(format!(
                        "`{expr}`: toDate of a {} (only of a time column in UTC)",
                        plan.type_name
                    ))
                }
                (ChType::String, _) => Elem::Str(column),
                (ChType::LowCardinality(inner), _) if **inner == ChType::String => {
                    Elem::Str(column)
                }
                (ChType::UInt8 | ChType::UInt16 | ChType::UInt32 | ChType::UInt64, _) => {
                    Elem::UInt(column)
                }
                (ChType::DateTime, _) => Elem::Seconds(column),
                (ChType::DateTime64(p), _) => Elem::Ticks(column, *p),
                _ => return Err(format!("`{column}` is a {}", plan.type_name)),
            };
            elems.push(elem);
        }
        Ok(SortKey { elems })
    }

    /// The rows of `parts` as (part, row) pairs in key order, ties in arrival order;
    /// `None` when they are in key order already, or when a column is missing or of
    /// an unexpected Arrow type (the encoder then says what is wrong).
    pub fn order(&self, parts: &[RecordBatch]) -> Option<Vec<(usize, usize)>> {
        let rows: usize = parts.iter().map(RecordBatch::num_rows).sum();
        if rows < 2 || rows > u32::MAX as usize {
            return None;
        }
        let mut keys: Vec<Vec<u64>> = Vec::with_capacity(self.elems.len());
        for elem in &self.elems {
            keys.push(values(elem, parts, rows)?);
        }
        let cmp = |a: usize, b: usize| -> Ordering {
            keys.iter()
                .map(|k| k[a].cmp(&k[b]))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        };
        if (1..rows).all(|i| cmp(i - 1, i) != Ordering::Greater) {
            return None;
        }
        let sorted = sort_rows(&keys, rows, cmp);
        let mut starts = Vec::with_capacity(parts.len());
        let mut at = 0;
        for p in parts {
            starts.push(at);
            at += p.num_rows();
        }
        Some(
            sorted
                .into_iter()
                .map(|g| {
                    let g = g as usize;
                    let part = starts.partition_point(|&s| s <= g) - 1;
                    (part, g - starts[part])
                })
                .collect(),
        )
    }
}

/// Row numbers `0..rows` sorted by `keys` (ties by row number). Where the key columns'
/// ranges and the row number fit in 128 bits together (for schema v1 always: ≈ 76 bits
/// of key), each row becomes one `u128` — the key's columns, then the row number in the
/// low bits, which orders ties — and those are sorted as integers; otherwise the rows
/// are sorted by comparing column by column.
fn sort_rows(keys: &[Vec<u64>], rows: usize, cmp: impl Fn(usize, usize) -> Ordering) -> Vec<u32> {
    let ranges: Vec<(u64, u32)> = keys
        .iter()
        .map(|k| {
            let (min, max) = k
                .iter()
                .fold((u64::MAX, 0), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            (min, 64 - (max - min).leading_zeros())
        })
        .collect();
    let key_bits: u32 = ranges.iter().map(|&(_, bits)| bits).sum();
    let row_bits = usize::BITS - rows.saturating_sub(1).leading_zeros();
    if key_bits + row_bits <= 128 {
        let mut packed: Vec<u128> = (0..rows)
            .map(|r| {
                let key = keys
                    .iter()
                    .zip(&ranges)
                    .fold(0u128, |acc, (k, &(min, bits))| {
                        (acc << bits) | u128::from(k[r] - min)
                    });
                (key << row_bits) | r as u128
            })
            .collect();
        packed.sort_unstable();
        let mask = (1u128 << row_bits) - 1;
        packed.into_iter().map(|k| (k & mask) as u32).collect()
    } else {
        let mut idx: Vec<u32> = (0..rows as u32).collect();
        idx.sort_unstable_by(|&a, &b| cmp(a as usize, b as usize).then(a.cmp(&b)));
        idx
    }
}

/// One `u64` per row of `parts` for `elem`, ordered as ClickHouse orders the column's
/// values; `None` if a part lacks the column or holds another Arrow type.
fn values(elem: &Elem, parts: &[RecordBatch], rows: usize) -> Option<Vec<u64>> {
    let (Elem::Str(name)
    | Elem::UInt(name)
    | Elem::Seconds(name)
    | Elem::Ticks(name, _)
    | Elem::Day(name)) = elem;
    let arrs: Vec<&dyn Array> = parts
        .iter()
        .map(|p| p.column_by_name(name).map(|a| a.as_ref()))
        .collect::<Option<_>>()?;
    let mut out = Vec::with_capacity(rows);
    if let Elem::Str(_) = elem {
        let strs: Vec<&StringArray> = arrs
            .iter()
            .map(|a| a.as_string_opt::<i32>())
            .collect::<Option<_>>()?;
        string_ranks(&strs, &mut out);
        return Some(out);
    }
    for arr in arrs {
        match (elem, arr.data_type()) {
            (Elem::UInt(_), DataType::UInt8) => out.extend(
                arr.as_primitive::<UInt8Type>()
                    .values()
                    .iter()
                    .map(|&v| v as u64),
            ),
            (Elem::UInt(_), DataType::UInt16) => out.extend(
                arr.as_primitive::<UInt16Type>()
                    .values()
                    .iter()
                    .map(|&v| v as u64),
            ),
            (Elem::UInt(_), DataType::UInt32) => out.extend(
                arr.as_primitive::<UInt32Type>()
                    .values()
                    .iter()
                    .map(|&v| v as u64),
            ),
            (Elem::UInt(_), DataType::UInt64) => {
                out.extend_from_slice(arr.as_primitive::<UInt64Type>().values())
            }
            (Elem::Seconds(_) | Elem::Ticks(..) | Elem::Day(_), DataType::Timestamp(..)) => {
                let ms = arr.as_primitive_opt::<TimestampMillisecondType>()?.values();
                // The encoder's own conversions, so the order is that of the values
                // the server receives.
                match elem {
                    Elem::Seconds(_) => out.extend(ms.iter().map(|&m| datetime_secs(m) as u64)),
                    Elem::Ticks(_, p) => {
                        out.extend(ms.iter().map(|&m| signed_order(datetime64_ticks(m, *p))))
                    }
                    _ => out.extend(ms.iter().map(|&m| signed_order(m.div_euclid(86_400_000)))),
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// An `i64` as a `u64` of the same order.
fn signed_order(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// Each row's rank among the distinct values of the column: the values are looked up
/// once per run of equal values (a request's rows often share a site), the distinct
/// ones sorted bytewise.
fn string_ranks(parts: &[&StringArray], out: &mut Vec<u64>) {
    let (distinct, ids) = super::native::dictionary(parts, &[]);
    let mut by_value: Vec<u32> = (0..distinct.len() as u32).collect();
    by_value.sort_unstable_by(|&a, &b| distinct[a as usize].cmp(distinct[b as usize]));
    let mut rank = vec![0u64; distinct.len()];
    for (r, &id) in by_value.iter().enumerate() {
        rank[id as usize] = r as u64;
    }
    out.extend(ids.iter().map(|&id| rank[id as usize]));
}

/// `s` split at its top-level commas (not those inside parentheses or quotes).
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut quote, mut start) = (Vec::new(), 0i32, None, 0);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A plain or back-quoted identifier, unquoted; `None` for anything else.
fn unquote(s: &str) -> Option<String> {
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match s.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        Some(inner) if !inner.contains(['`', '\\']) && !inner.is_empty() => Some(inner.to_owned()),
        Some(_) => None,
        None if plain(s) => Some(s.to_owned()),
        None => None,
    }
}

#[cfg(test)]
mod tests;
