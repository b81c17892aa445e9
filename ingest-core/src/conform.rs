//! Checking a batch that someone else built (the edge's, or a user's pyarrow table)
//! against schema v1, and turning batches back into events.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, TimestampMillisecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{new_null_array, Array, ArrayRef, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, TimeUnit};

use crate::error::{Error, Result};
use crate::event::{Event, Timings};
use crate::schema;
use crate::sites::is_canonical_site_id;

fn schema_err(field: &str, reason: impl Into<String>) -> Error {
    Error::Schema {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Makes a batch posted to the sink exactly schema v1, or says which column is wrong.
///
/// - Columns may come in any order; the output is in schema order with the v1
///   metadata.
/// - A missing *nullable* column becomes all nulls; a missing non-nullable column, an
///   unknown or repeated column, a wrong type, or nulls in a non-nullable column is an
///   [`Error::Schema`] naming the column.
/// - String columns may also be `LargeUtf8`, `Utf8View` or dictionary-encoded (any
///   integer key) over those; they are cast to `Utf8`. List items may be any of those
///   and the list's item field may have any name and nullability (no null items).
/// - `received_at` may be `Timestamp(ms)` with time zone `UTC`, `+00:00` or none (Unix
///   ms either way).
/// - `prop_keys` and `prop_values` must have the same length in every row.
/// - Every `site_id` must be canonical, as the pipeline stores it (not empty, no
///   surrounding ASCII whitespace, no ASCII uppercase letter); the first row that is
///   not is named in the error.
/// - A schema version in the metadata other than [`schema::VERSION`] is refused.
///
/// A non-canonical site id is refused rather than rewritten: the row's `visitor_id`
/// was hashed by its producer with the site id as it sent it, so a rewritten id would
/// be stored beside visitor ids that no event of the canonical id has — the same
/// person counted twice that day. It would also split the site's rows, its quota
/// count and its registry lookup between spellings. The edge (ingest-core's pipeline)
/// only ever sends canonical ids, so such a batch comes from a broken or foreign
/// producer, which is told which row to fix.
pub fn conform(batch: &RecordBatch) -> Result<RecordBatch> {
    let in_schema = batch.schema();
    if let Some(v) = in_schema.metadata().get(schema::VERSION_KEY) {
        if v != schema::VERSION {
            return Err(schema_err(
                schema::VERSION_KEY,
                format!(
                    "schema version {v} is not supported (expected {})",
                    schema::VERSION
                ),
            ));
        }
    }
    let mut found: Vec<Option<ArrayRef>> = vec![None; schema::COLUMNS.len()];
    for (field, col) in in_schema.fields().iter().zip(batch.columns()) {
        let name = field.name().as_str();
        let idx = schema::COLUMNS
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| schema_err(name, "unknown column (not in schema v1)"))?;
        if found[idx].is_some() {
            return Err(schema_err(name, "column appears twice"));
        }
        found[idx] = Some(conform_column(name, col)?);
    }
    let rows = batch.num_rows();
    let mut cols = Vec::with_capacity(found.len());
    for (name, col) in schema::COLUMNS.iter().zip(found) {
        let (ty, nullable) = schema::column_type(name).expect("v1 column");
        let col = match col {
            Some(c) => c,
            None if nullable => new_null_array(&ty, rows),
            None => return Err(schema_err(name, "required column is missing")),
        };
        if !nullable && col.null_count() > 0 {
            return Err(schema_err(
                name,
                format!("{} nulls in a non-nullable column", col.null_count()),
            ));
        }
        cols.push(col);
    }
    check_site_ids(cols[SITE_ID].as_string::<i32>())?;
    let keys = cols[schema::COLUMNS.len() - 2].as_list::<i32>();
    let values = cols[schema::COLUMNS.len() - 1].as_list::<i32>();
    for i in 0..rows {
        if keys.value_length(i) != values.value_length(i) {
            return Err(schema_err(
                "prop_values",
                format!(
                    "row {i} has {} prop_keys but {} prop_values",
                    keys.value_length(i),
                    values.value_length(i)
                ),
            ));
        }
    }
    RecordBatch::try_new(schema::schema(), cols).map_err(|e| schema_err("batch", e.to_string()))
}

/// The index of `site_id` in [`schema::COLUMNS`].
const SITE_ID: usize = 2;

/// Every row's site id is canonical (see [`conform`]): one pass over the column's
/// bytes, nothing copied.
fn check_site_ids(ids: &StringArray) -> Result<()> {
    debug_assert_eq!(schema::COLUMNS[SITE_ID], "site_id");
    for (i, id) in ids.iter().enumerate() {
        // A null was refused above (the column is not nullable).
        let Some(id) = id else { continue };
        if is_canonical_site_id(id) {
            continue;
        }
        let why = if id.trim_ascii().is_empty() {
            "is empty"
        } else if id.trim_ascii().len() != id.len() {
            "has leading or trailing ASCII whitespace"
        } else {
            "has ASCII uppercase letters"
        };
        return Err(schema_err(
            "site_id",
            format!(
                "row {i}: the site id {why}; site ids are sent canonical (ASCII whitespace \
                 trimmed, ASCII letters lowercased, not empty), as the visitor id was hashed \
                 with it"
            ),
        ));
    }
    Ok(())
}

/// One column cast to its v1 type, or the error naming it.
fn conform_column(name: &str, col: &ArrayRef) -> Result<ArrayRef> {
    let (want, _) = schema::column_type(name).expect("caller checked the name");
    let got = col.data_type();
    if got == &want {
        return Ok(col.clone());
    }
    let wrong = || {
        schema_err(
            name,
            format!("expected {want}, got {got}", got = col.data_type()),
        )
    };
    match &want {
        DataType::Utf8 => to_utf8(col).ok_or_else(wrong),
        DataType::Timestamp(TimeUnit::Millisecond, _) => match got {
            DataType::Timestamp(TimeUnit::Millisecond, tz)
                if tz.as_deref().is_none_or(|z| z == "UTC" || z == "+00:00") =>
            {
                let a = col.as_primitive::<TimestampMillisecondType>();
                Ok(Arc::new(a.clone().with_timezone("UTC")))
            }
            _ => Err(wrong()),
        },
        DataType::List(item) => {
            let list = col.as_list_opt::<i32>().ok_or_else(wrong)?;
            let values = to_utf8(list.values()).ok_or_else(wrong)?;
            if values.null_count() > 0 {
                return Err(schema_err(name, "null items in a list of strings"));
            }
            let out = ListArray::try_new(
                item.clone(),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )
            .map_err(|e| schema_err(name, e.to_string()))?;
            Ok(Arc::new(out))
        }
        _ => Err(wrong()),
    }
}

/// Any string-like array as `Utf8`, or `None` if it is not string-like.
fn to_utf8(col: &ArrayRef) -> Option<ArrayRef> {
    let out: StringArray = match col.data_type() {
        DataType::Utf8 => return Some(col.clone()),
        DataType::LargeUtf8 => col.as_string::<i64>().iter().collect(),
        DataType::Utf8View => col.as_string_view().iter().collect(),
        DataType::Dictionary(_, _) => {
            let dict = col.as_any_dictionary_opt()?;
            let values = to_utf8(dict.values())?;
            let values = values.as_string::<i32>();
            let keys = dict.normalized_keys();
            let nulls = dict.keys().logical_nulls();
            let mut b = StringBuilder::with_capacity(col.len(), 0);
            for (i, &k) in keys.iter().enumerate() {
                if nulls.as_ref().is_some_and(|n| n.is_null(i))
                    || k >= values.len()
                    || values.is_null(k)
                {
                    b.append_null();
                } else {
                    b.append_value(values.value(k));
                }
            }
            b.finish()
        }
        _ => return None,
    };
    Some(Arc::new(out))
}

/// The rows of a batch (any batch [`conform`] accepts) as owned events.
pub fn batch_to_events(batch: &RecordBatch) -> Result<Vec<Event<'static>>> {
    let b = conform(batch)?;
    let c = |i: usize| b.column(i);
    let event_id = c(0).as_fixed_size_binary();
    let received = c(1).as_primitive::<TimestampMillisecondType>();
    let strings: Vec<&StringArray> = (2..=20).map(|i| c(i).as_string::<i32>()).collect();
    let screen = c(21).as_primitive::<UInt16Type>();
    let visitor = c(22).as_primitive::<UInt64Type>();
    let timings: Vec<_> = (23..=27)
        .map(|i| c(i).as_primitive::<UInt32Type>())
        .collect();
    let cls = c(28).as_primitive::<Float32Type>();
    let scroll = c(29).as_primitive::<UInt8Type>();
    let engagement = c(30).as_primitive::<UInt32Type>();
    let keys = c(31).as_list::<i32>();
    let values = c(32).as_list::<i32>();
    let (kv, vv) = (
        keys.values().as_string::<i32>(),
        values.values().as_string::<i32>(),
    );

    let opt32 = |a: &arrow_array::PrimitiveArray<UInt32Type>, i| a.is_valid(i).then(|| a.value(i));
    let mut out = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let s = |j: usize| Cow::Owned(strings[j].value(i).to_owned());
        let id: [u8; 16] = event_id
            .value(i)
            .try_into()
            .map_err(|_| schema_err("event_id", "not 16 bytes"))?;
        let (ko, vo) = (keys.value_offsets(), values.value_offsets());
        let props = (ko[i]..ko[i + 1])
            .zip(vo[i]..vo[i + 1])
            .map(|(k, v)| {
                (
                    Cow::Owned(kv.value(k as usize).to_owned()),
                    Cow::Owned(vv.value(v as usize).to_owned()),
                )
            })
            .collect();
        out.push(Event {
            event_id: id,
            received_at_ms: received.value(i),
            site_id: s(0),
            name: s(1),
            hostname: s(2),
            pathname: s(3),
            referrer_host: s(4),
            referrer_source: s(5),
            utm_source: s(6),
            utm_medium: s(7),
            utm_campaign: s(8),
            utm_content: s(9),
            utm_term: s(10),
            country: s(11),
            region: s(12),
            city: s(13),
            browser: s(14),
            browser_version: s(15),
            os: s(16),
            os_version: s(17),
            device: s(18),
            screen_width: screen.value(i),
            visitor_id: visitor.value(i),
            timings: Timings {
                ttfb_ms: opt32(timings[0], i),
                fcp_ms: opt32(timings[1], i),
                lcp_ms: opt32(timings[2], i),
                inp_ms: opt32(timings[3], i),
                load_ms: opt32(timings[4], i),
                cls: cls.is_valid(i).then(|| cls.value(i)),
            },
            scroll_depth: scroll.is_valid(i).then(|| scroll.value(i)),
            engagement_ms: opt32(engagement, i),
            props,
        });
    }
    Ok(out)
}
