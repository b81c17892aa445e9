//! `conform`: what a batch posted to the sink may look like.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, Int64Array, LargeStringArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use ingest_core::schema::{self, VERSION_KEY};
use ingest_core::{batch_to_events, conform, events_to_batch, Error};

use crate::common::pageview;

fn full() -> RecordBatch {
    events_to_batch(&(0..5).map(pageview).collect::<Vec<_>>())
}

/// `full()` with columns replaced (`Some`) or dropped (`None`), in the order given.
fn edit(changes: &[(&str, Option<ArrayRef>)]) -> RecordBatch {
    let b = full();
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        match changes.iter().find(|(n, _)| n == f.name()) {
            Some((_, None)) => {}
            Some((_, Some(new))) => {
                fields.push(Field::new(f.name(), new.data_type().clone(), true));
                cols.push(new.clone());
            }
            None => {
                fields.push(f.as_ref().clone());
                cols.push(c.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

fn schema_error(r: Result<RecordBatch, Error>) -> (String, String) {
    match r {
        Err(Error::Schema { field, reason }) => (field, reason),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn a_v1_batch_passes_unchanged() {
    let b = full();
    assert_eq!(conform(&b).unwrap(), b);
}

#[test]
fn missing_nullable_columns_become_null() {
    let b = edit(&[("ttfb_ms", None), ("cls", None), ("scroll_depth", None)]);
    let out = conform(&b).unwrap();
    assert_eq!(out.schema(), schema::schema());
    for c in ["ttfb_ms", "cls", "scroll_depth"] {
        assert_eq!(out.column_by_name(c).unwrap().null_count(), 5, "{c}");
    }
    let events = batch_to_events(&out).unwrap();
    assert_eq!(events[0].timings.ttfb_ms, None);
    assert_eq!(events[0].pathname, "/blog/post-0");
}

#[test]
fn missing_required_column_is_named() {
    let (field, reason) = schema_error(conform(&edit(&[("site_id", None)])));
    assert_eq!(field, "site_id");
    assert!(reason.contains("missing"), "{reason}");
}

#[test]
fn unknown_column_is_named() {
    let b = full();
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut cols = b.columns().to_vec();
    fields.push(Field::new("ip", DataType::Int64, false));
    cols.push(Arc::new(Int64Array::from(vec![1; 5])));
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let (field, reason) = schema_error(conform(&b));
    assert_eq!(field, "ip");
    assert!(reason.contains("unknown column"), "{reason}");
}

#[test]
fn wrong_type_is_named_with_both_types() {
    let b = edit(&[("screen_width", Some(Arc::new(Int64Array::from(vec![1; 5]))))]);
    let e = conform(&b).unwrap_err();
    assert_eq!(e.field(), "screen_width");
    assert_eq!(e.code(), "schema");
    let reason = e.to_string();
    assert!(
        reason.contains("UInt16") && reason.contains("Int64"),
        "{reason}"
    );
}

#[test]
fn dictionary_and_large_strings_are_cast() {
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    for _ in 0..5 {
        dict.append_value("example.com");
    }
    let large = LargeStringArray::from(vec!["Firefox"; 5]);
    let b = edit(&[
        ("site_id", Some(Arc::new(dict.finish()))),
        ("browser", Some(Arc::new(large))),
    ]);
    let out = conform(&b).unwrap();
    assert_eq!(out, full());
}

#[test]
fn columns_in_any_order() {
    let b = full();
    let n = b.num_columns();
    let order: Vec<usize> = (0..n).rev().collect();
    let reversed = b.project(&order).unwrap();
    assert_eq!(conform(&reversed).unwrap(), b);
}

#[test]
fn nulls_in_a_non_nullable_column_are_refused() {
    let hosts: ArrayRef = Arc::new(arrow_array::StringArray::from(vec![
        Some("a"),
        None,
        Some("c"),
        Some("d"),
        Some("e"),
    ]));
    let (field, reason) = schema_error(conform(&edit(&[("hostname", Some(hosts))])));
    assert_eq!(field, "hostname");
    assert!(reason.contains("null"), "{reason}");
}

#[test]
fn lists_with_pyarrow_style_nullable_items_are_accepted() {
    // pyarrow's default list item field is `item`, nullable.
    let mk = |v: &str| {
        let mut l = ListBuilder::new(StringBuilder::new());
        for _ in 0..5 {
            l.values().append_value(v);
            l.append(true);
        }
        Arc::new(l.finish()) as ArrayRef
    };
    let b = edit(&[
        ("prop_keys", Some(mk("plan"))),
        ("prop_values", Some(mk("pro"))),
    ]);
    assert_eq!(conform(&b).unwrap(), full());
}

#[test]
fn props_of_different_lengths_are_refused() {
    let mut l = ListBuilder::new(StringBuilder::new());
    for _ in 0..5 {
        l.values().append_value("a");
        l.values().append_value("b");
        l.append(true);
    }
    let (field, reason) = schema_error(conform(&edit(&[(
        "prop_values",
        Some(Arc::new(l.finish()) as ArrayRef),
    )])));
    assert_eq!(field, "prop_values");
    assert!(
        reason.contains("row 0 has 1 prop_keys but 2 prop_values"),
        "{reason}"
    );
}

#[test]
fn another_schema_version_is_refused() {
    let b = full();
    let meta = HashMap::from([(VERSION_KEY.to_owned(), "2".to_owned())]);
    let s = Schema::new_with_metadata(b.schema().fields().clone(), meta);
    let b = RecordBatch::try_new(Arc::new(s), b.columns().to_vec()).unwrap();
    let (field, _) = schema_error(conform(&b));
    assert_eq!(field, VERSION_KEY);
}

#[test]
fn repeated_column_is_refused() {
    let b = full();
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut cols = b.columns().to_vec();
    fields.push(fields[3].clone());
    cols.push(cols[3].clone());
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    assert_eq!(schema_error(conform(&b)).0, "name");
}

/// A `site_id` that is not the pipeline's canonical form is refused, naming the first
/// such row and what is wrong with it; ids canonical already pass, including non-ASCII
/// capitals (the canonical form lowercases ASCII letters only) and dictionary-encoded
/// columns.
#[test]
fn non_canonical_site_ids_are_refused() {
    let sites =
        |ids: [&str; 5]| -> ArrayRef { Arc::new(arrow_array::StringArray::from(ids.to_vec())) };
    for (ids, row, why) in [
        (
            ["a.com", "a.com", "A.com", "b.com", "B.com"],
            2,
            "has ASCII uppercase letters",
        ),
        (
            [" a.com", "a.com", "a.com", "a.com", "a.com"],
            0,
            "has leading or trailing ASCII whitespace",
        ),
        (
            ["a.com", "a.com", "a.com", "a.com", "a.com\n"],
            4,
            "has leading or trailing ASCII whitespace",
        ),
        (["a.com", "", "a.com", "a.com", "a.com"], 1, "is empty"),
        (["a.com", "a.com", "a.com", " \t", "a.com"], 3, "is empty"),
    ] {
        let (field, reason) = schema_error(conform(&edit(&[("site_id", Some(sites(ids)))])));
        assert_eq!(field, "site_id");
        assert!(
            reason.starts_with(&format!("row {row}: the site id {why};")),
            "{ids:?}: {reason}"
        );
    }
    let ok = ["a.com", "bücher.example", "Übung.example", "x", "a b"];
    assert!(conform(&edit(&[("site_id", Some(sites(ok)))])).is_ok());
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    for s in ["a.com", "a.com", "a.com", "Example.com", "a.com"] {
        dict.append_value(s);
    }
    let (field, reason) = schema_error(conform(&edit(&[(
        "site_id",
        Some(Arc::new(dict.finish())),
    )])));
    assert_eq!(field, "site_id");
    assert!(reason.starts_with("row 3:"), "{reason}");
    // `batch_to_events` reads only what `conform` accepts.
    assert_eq!(
        batch_to_events(&edit(&[("site_id", Some(sites(["A.com"; 5])))]))
            .unwrap_err()
            .field(),
        "site_id"
    );
}
