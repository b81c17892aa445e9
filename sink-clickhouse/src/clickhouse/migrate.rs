//! `sink-clickhouse migrate`: the database and the schema-v1 table, with types the
//! server's version supports.
//!
//! | column kind | modern (20.1+) | 18.16 |
//! |---|---|---|
//! | `received_at` | `DateTime64(3, 'UTC')` | `DateTime('UTC')` (seconds: 18.16 has no DateTime64) |
//! | low-cardinality strings | `LowCardinality(String)` | `String` (LowCardinality was experimental before 19.0) |
//! | `event_id` | `UUID` | `UUID` |
//!
//! Engine: `MergeTree` partitioned by month and ordered by `(site_id, toDate(received_at),
//! name, visitor_id)` — the order dashboard queries filter by. On 21.1+ the table keeps a
//! `non_replicated_deduplication_window`, so a replayed insert with the same
//! deduplication token is dropped by the server; elsewhere `event_id` identifies a
//! duplicate (`SELECT … FROM t FINAL` is not needed: `uniqExact(event_id)` or a
//! `ReplacingMergeTree` of the user's choosing collapse it).
//!
//! With a cluster: a `ReplicatedMergeTree` table `<table>_local` on every node
//! (`ON CLUSTER`, ZooKeeper path `/clickhouse/tables/{shard}/<db>/<table>_local`,
//! replica `{replica}` — the macros of each server's config), and a `Distributed`
//! table `<table>` over them sharded by `cityHash64(visitor_id)`, so one visitor's rows
//! stay on one shard. Replicated tables deduplicate a retried block on every version.

use super::ident::quote_str;
use super::{quote_ident, Client, Result, ServerVersion};

/// Columns whose values repeat a lot (LowCardinality on modern servers).
const LOW_CARDINALITY: &[&str] = &[
    "site_id",
    "name",
    "hostname",
    "referrer_host",
    "referrer_source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "country",
    "region",
    "city",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "device",
];

fn column_type(name: &str, v: &ServerVersion) -> &'static str {
    match name {
        "event_id" => "UUID",
        "received_at" if v.has_datetime64() => "DateTime64(3, 'UTC')",
        "received_at" => "DateTime('UTC')",
        "screen_width" => "UInt16",
        "visitor_id" => "UInt64",
        "ttfb_ms" | "fcp_ms" | "lcp_ms" | "inp_ms" | "load_ms" | "engagement_ms" => {
            "Nullable(UInt32)"
        }
        "cls" => "Nullable(Float32)",
        "scroll_depth" => "Nullable(UInt8)",
        "prop_keys" | "prop_values" => "Array(String)",
        n if LOW_CARDINALITY.contains(&n) && v.has_low_cardinality() => "LowCardinality(String)",
        _ => "String",
    }
}

/// The columns `migrate` creates for a server version, as `(name, type)` pairs: what
/// `DESCRIBE TABLE` answers for that table (benchmarks and tests build layouts from it).
pub fn table_columns(v: &ServerVersion) -> Vec<(String, String)> {
    ingest_core::schema::COLUMNS
        .iter()
        .map(|c| (c.to_string(), column_type(c, v).to_string()))
        .collect()
}

/// The statements that create the database and table (and, with a cluster, the
/// replicated local tables and the distributed table), in order.
pub fn create_table_sql(
    v: &ServerVersion,
    database: &str,
    table: &str,
    cluster: Option<&str>,
) -> Result<Vec<String>> {
    let db = quote_ident(database)?;
    let on_cluster = match cluster {
        Some(c) => format!(" ON CLUSTER {}", quote_ident(c)?),
        None => String::new(),
    };
    let columns: Vec<String> = ingest_core::schema::COLUMNS
        .iter()
        .map(|c| Ok(format!("    {} {}", quote_ident(c)?, column_type(c, v))))
        .collect::<Result<_>>()?;
    let columns = columns.join(",\n");
    let order = "PARTITION BY toYYYYMM(received_at)\nORDER BY (site_id, toDate(received_at), name, visitor_id)";
    let mut out = vec![format!("CREATE DATABASE IF NOT EXISTS {db}{on_cluster}")];
    match cluster {
        None => {
            let settings = if v.has_non_replicated_dedup() {
                "\nSETTINGS non_replicated_deduplication_window = 1000"
            } else {
                ""
            };
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {db}.{}\n(\n{columns}\n)\nENGINE = MergeTree\n{order}{settings}",
                quote_ident(table)?
            ));
        }
        Some(c) => {
            let local = format!("{table}_local");
            let zk_path = quote_str(&format!("/clickhouse/tables/{{shard}}/{database}/{local}"));
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {db}.{}{on_cluster}\n(\n{columns}\n)\nENGINE = ReplicatedMergeTree({zk_path}, '{{replica}}')\n{order}",
                quote_ident(&local)?
            ));
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {db}.{}{on_cluster} AS {db}.{}\nENGINE = Distributed({}, {}, {}, cityHash64(visitor_id))",
                quote_ident(table)?,
                quote_ident(&local)?,
                quote_ident(c)?,
                quote_ident(database)?,
                quote_ident(&local)?
            ));
        }
    }
    Ok(out)
}

/// Creates the database and table if they do not exist, for the server's version.
pub async fn migrate(client: &Client, cluster: Option<&str>) -> Result<()> {
    let v = client.server_version().await?;
    let cfg = client.config();
    for sql in create_table_sql(&v, &cfg.database, &cfg.table, cluster)? {
        tracing::info!(%sql, "migrate");
        client.query(&sql).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_version() {
        let old = ServerVersion::parse("18.16.1").unwrap();
        let new = ServerVersion::parse("24.8.1").unwrap();
        let old_sql = create_table_sql(&old, "analytics", "events", None)
            .unwrap()
            .join("\n");
        let new_sql = create_table_sql(&new, "analytics", "events", None)
            .unwrap()
            .join("\n");
        assert!(
            old_sql.contains("`received_at` DateTime('UTC')")
                && !old_sql.contains("LowCardinality")
        );
        assert!(
            new_sql.contains("DateTime64(3, 'UTC')") && new_sql.contains("LowCardinality(String)")
        );
        assert!(new_sql.contains("non_replicated_deduplication_window"));
        let cl = create_table_sql(&old, "analytics", "events", Some("c1")).unwrap();
        assert_eq!(cl.len(), 3);
        assert!(cl[1].contains("ReplicatedMergeTree") && cl[2].contains("Distributed(`c1`"));
    }
}
