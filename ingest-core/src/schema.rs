//! Schema v1: the Arrow schema of an event batch (DESIGN.md, "The event row").

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The schema version written into every batch's metadata under [`VERSION_KEY`].
pub const VERSION: &str = "1";
/// Metadata key holding the schema version.
pub const VERSION_KEY: &str = "pageview.schema_version";

/// Column names in schema order.
pub const COLUMNS: [&str; 33] = [
    "event_id",
    "received_at",
    "site_id",
    "name",
    "hostname",
    "pathname",
    "referrer_host",
    "referrer_source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "country",
    "region",
    "city",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "device",
    "screen_width",
    "visitor_id",
    "ttfb_ms",
    "fcp_ms",
    "lcp_ms",
    "inp_ms",
    "load_ms",
    "cls",
    "scroll_depth",
    "engagement_ms",
    "prop_keys",
    "prop_values",
];

/// The Arrow data type of a column of schema v1, and whether it is nullable.
pub fn column_type(name: &str) -> Option<(DataType, bool)> {
    let utf8 = (DataType::Utf8, false);
    Some(match name {
        "event_id" => (DataType::FixedSizeBinary(16), false),
        "received_at" => (
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        "screen_width" => (DataType::UInt16, false),
        "visitor_id" => (DataType::UInt64, false),
        "ttfb_ms" | "fcp_ms" | "lcp_ms" | "inp_ms" | "load_ms" | "engagement_ms" => {
            (DataType::UInt32, true)
        }
        "cls" => (DataType::Float32, true),
        "scroll_depth" => (DataType::UInt8, true),
        "prop_keys" | "prop_values" => (
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
            false,
        ),
        n if COLUMNS.contains(&n) => utf8,
        _ => return None,
    })
}

/// The full schema v1, with the version in its metadata. Cheap to call (cached).
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let fields: Vec<Field> = COLUMNS
                .iter()
                .map(|n| {
                    let (t, nullable) = column_type(n).expect("every column has a type");
                    Field::new(*n, t, nullable)
                })
                .collect();
            let meta = HashMap::from([(VERSION_KEY.to_owned(), VERSION.to_owned())]);
            Arc::new(Schema::new_with_metadata(fields, meta))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_every_column_once_with_version() {
        let s = schema();
        assert_eq!(s.fields().len(), COLUMNS.len());
        assert_eq!(
            s.metadata().get(VERSION_KEY).map(String::as_str),
            Some(VERSION)
        );
        assert!(column_type("nope").is_none());
        assert_eq!(
            s.field_with_name("cls").unwrap().data_type(),
            &DataType::Float32
        );
    }
}
