//! The target table's real columns, matched against schema v1 once at start-up.
//!
//! "The table decides the encoding": every schema-v1 column present in the table is
//! encoded into that column's own type (18.16 converts nothing on insert). Table
//! columns that are not in schema v1 are left out of the insert, so they take their
//! defaults — they must have one (or be Nullable). Schema-v1 columns the table lacks
//! are skipped, and listed in [`TableLayout::skipped`] for a start-up warning, so a
//! user's narrower table works.

use arrow_schema::DataType;
use ingest_core::schema;

use super::types::ChType;
use super::{Error, Result};

/// One column of the insert: a schema-v1 column and the table type it is written as.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnPlan {
    /// Column name (the same in the batch and in the table).
    pub name: String,
    /// The table's type, as the server printed it (sent back in the Native block).
    pub type_name: String,
    /// The parsed type that drives the encoder.
    pub ty: ChType,
}

/// The columns an insert sends, in table order, checked against schema v1.
#[derive(Debug, Clone, PartialEq)]
pub struct TableLayout {
    /// `db.table`, for messages.
    pub table: String,
    /// The columns to send.
    pub columns: Vec<ColumnPlan>,
    /// Schema-v1 columns the table does not have (not sent).
    pub skipped: Vec<String>,
    /// Table columns not in schema v1 (they take their defaults).
    pub defaulted: Vec<String>,
    /// The table's sorting key, where inserts are sent in its order
    /// ([`super::Client::describe`] sets it; `None`: arrival order).
    pub sort_key: Option<super::SortKey>,
}

/// One row of `DESCRIBE TABLE`: name, type, default kind (`DEFAULT`, `MATERIALIZED`,
/// `ALIAS` or empty).
#[derive(Debug, Clone)]
pub struct DescribeRow {
    /// Column name.
    pub name: String,
    /// Type text.
    pub type_name: String,
    /// Default kind, empty when none.
    pub default_kind: String,
}

impl TableLayout {
    /// Builds the layout from `(name, type)` pairs (no defaults known: every extra
    /// column must then be Nullable).
    pub fn from_describe(rows: &[(String, String)]) -> Result<TableLayout> {
        let rows: Vec<DescribeRow> = rows
            .iter()
            .map(|(n, t)| DescribeRow {
                name: n.clone(),
                type_name: t.clone(),
                default_kind: String::new(),
            })
            .collect();
        Self::from_rows("table", &rows)
    }

    /// Builds the layout from `DESCRIBE TABLE` rows of `table`.
    pub fn from_rows(table: &str, rows: &[DescribeRow]) -> Result<TableLayout> {
        let mut columns = Vec::new();
        let mut defaulted = Vec::new();
        for row in rows {
            let ty = ChType::parse(&row.type_name);
            let layout_err = |reason: String| Error::Layout {
                table: table.to_owned(),
                column: row.name.clone(),
                reason,
            };
            match schema::column_type(&row.name) {
                Some((arrow, nullable)) => {
                    if matches!(row.default_kind.as_str(), "MATERIALIZED" | "ALIAS") {
                        return Err(layout_err(format!(
                            "is {} in the table, so it cannot be inserted; schema v1 provides it",
                            row.default_kind
                        )));
                    }
                    check_compat(&arrow, nullable, &ty).map_err(|why| {
                        layout_err(format!(
                            "schema v1 has {arrow}{} but the table has {}: {why}",
                            if nullable { " (nullable)" } else { "" },
                            row.type_name
                        ))
                    })?;
                    columns.push(ColumnPlan {
                        name: row.name.clone(),
                        type_name: row.type_name.clone(),
                        ty,
                    });
                }
                None => {
                    let ok = !row.default_kind.is_empty() || matches!(ty, ChType::Nullable(_));
                    if !ok {
                        return Err(layout_err(format!(
                            "is not a schema v1 column and has no default ({}); give it a DEFAULT or drop it",
                            row.type_name
                        )));
                    }
                    defaulted.push(row.name.clone());
                }
            }
        }
        if columns.is_empty() {
            return Err(Error::Layout {
                table: table.to_owned(),
                column: "*".into(),
                reason: "has no schema v1 column at all".into(),
            });
        }
        let skipped = schema::COLUMNS
            .iter()
            .filter(|c| !columns.iter().any(|p| p.name == **c))
            .map(|c| c.to_string())
            .collect();
        Ok(TableLayout {
            table: table.to_owned(),
            columns,
            skipped,
            defaulted,
            sort_key: None,
        })
    }

    /// The column list of the `INSERT`, already quoted.
    pub fn insert_columns(&self) -> Result<String> {
        let quoted: Result<Vec<String>> = self
            .columns
            .iter()
            .map(|c| super::quote_ident(&c.name))
            .collect();
        Ok(quoted?.join(", "))
    }
}

/// Whether an Arrow column of schema v1 can be written into a ClickHouse type without
/// loss. Widening is fine; narrowing, or a type of another kind, is refused.
fn check_compat(arrow: &DataType, nullable: bool, ty: &ChType) -> std::result::Result<(), String> {
    let ty = match ty {
        ChType::Nullable(inner) => inner.as_ref(),
        other => other,
    };
    let ok = match (arrow, ty) {
        (
            DataType::FixedSizeBinary(16),
            ChType::Uuid | ChType::FixedString(16) | ChType::String,
        ) => true,
        (
            DataType::Timestamp(..),
            ChType::DateTime | ChType::DateTime64(_) | ChType::Int64 | ChType::UInt64,
        ) => true,
        (DataType::Utf8, ChType::String) => true,
        (DataType::Utf8, ChType::LowCardinality(inner)) => **inner == ChType::String,
        (DataType::List(_), ChType::Array(inner)) => **inner == ChType::String,
        (DataType::Float32, ChType::Float32 | ChType::Float64) => true,
        (DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64, t) => {
            let src_bits = match arrow {
                DataType::UInt8 => 8,
                DataType::UInt16 => 16,
                DataType::UInt32 => 32,
                _ => 64,
            };
            match t.int_info() {
                Some((false, bits)) => bits >= src_bits,
                Some((true, bits)) => bits > src_bits,
                None => matches!(t, ChType::Float64) && src_bits <= 32,
            }
        }
        _ => false,
    };
    let _ = nullable; // a nullable source into a non-Nullable column stores 0 for null
    if ok {
        Ok(())
    } else {
        Err("the encoder cannot write that type without loss".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, &str, &str)]) -> Vec<DescribeRow> {
        pairs
            .iter()
            .map(|(n, t, d)| DescribeRow {
                name: n.to_string(),
                type_name: t.to_string(),
                default_kind: d.to_string(),
            })
            .collect()
    }

    #[test]
    fn user_table_with_extras_and_other_types() {
        let l = TableLayout::from_rows(
            "db.t",
            &rows(&[
                ("event_id", "UUID", ""),
                ("received_at", "DateTime", ""),
                ("site_id", "String", ""),
                ("pathname", "LowCardinality(String)", ""),
                ("screen_width", "UInt32", ""),
                ("lcp_ms", "Nullable(UInt64)", ""),
                ("note", "String", "DEFAULT"),
                ("maybe", "Nullable(String)", ""),
            ]),
        )
        .unwrap();
        assert_eq!(l.columns.len(), 6);
        assert_eq!(l.defaulted, ["note", "maybe"]);
        assert!(l.skipped.contains(&"utm_term".to_string()));
    }

    #[test]
    fn mismatch_names_column_and_both_types() {
        let err = TableLayout::from_rows("db.t", &rows(&[("pathname", "Int8", "")])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("pathname") && msg.contains("Int8") && msg.contains("Utf8"),
            "{msg}"
        );
        let err =
            TableLayout::from_rows("db.t", &rows(&[("screen_width", "UInt8", "")])).unwrap_err();
        assert!(err.to_string().contains("UInt8"));
        let err = TableLayout::from_rows(
            "db.t",
            &rows(&[("site_id", "String", ""), ("extra", "UInt8", "")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no default"));
    }
}
