//! The ClickHouse side of the service, on top of [`crate::clickhouse`]: the
//! [`Store`] the loader writes to, `migrate`, and the month-to-date usage read for
//! quotas.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::clickhouse::{self, ClickHouseConfig, Client, TableLayout};
use crate::config::ClickHouseArgs;
use crate::loader::{BoxFuture, Chunk, Store, StoreError};

fn client(a: &ClickHouseArgs) -> Result<Client, String> {
    Client::new(ClickHouseConfig {
        urls: a.clickhouse_url.clone(),
        database: a.clickhouse_database.clone(),
        table: a.clickhouse_table.clone(),
        user: a.clickhouse_user.clone(),
        password: a.clickhouse_password.clone(),
        timeout: a.clickhouse_timeout,
        compression: a.clickhouse_compression,
        block_rows: a.clickhouse_block_rows,
        sort_inserts: a.clickhouse_sort_inserts,
    })
    .map_err(|e| e.to_string())
}

/// Loads chunks into the events table.
pub struct ClickHouseStore {
    client: Arc<Client>,
    /// Read at start-up when ClickHouse answers, else at the first insert.
    layout: OnceCell<TableLayout>,
}

impl ClickHouseStore {
    async fn layout(&self) -> Result<&TableLayout, clickhouse::Error> {
        self.layout.get_or_try_init(|| self.client.describe()).await
    }
}

fn store_error(e: &clickhouse::Error) -> StoreError {
    StoreError {
        retryable: e.is_retryable(),
        code: e.metric_code(),
        message: e.to_string(),
    }
}

impl Store for ClickHouseStore {
    fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let layout = self.layout().await.map_err(|e| {
                // The table's layout is not the data's fault: keep retrying (an operator
                // may be fixing the table) rather than quarantine.
                StoreError {
                    retryable: true,
                    ..store_error(&e)
                }
            })?;
            self.client
                .insert_parts(layout, &chunk.batches, Some(&chunk.token))
                .await
                .map_err(|e| store_error(&e))
        })
    }

    fn url_health(&self) -> Vec<(String, bool)> {
        self.client.url_health()
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.client.ping().await.map_err(|e| store_error(&e)) })
    }
}

/// Reads each site's usage since a time from the events table.
pub struct UsageReader {
    client: Arc<Client>,
}

impl UsageReader {
    /// Rows per site received since `since_ms` (the start of the month).
    pub async fn month_usage(&self, since_ms: i64) -> Result<HashMap<String, u64>, String> {
        let table = self.client.qualified_table().map_err(|e| e.to_string())?;
        let sql = format!(
            "SELECT site_id, count() FROM {table} WHERE received_at >= toDateTime({}) GROUP BY site_id FORMAT TabSeparated",
            since_ms.div_euclid(1000)
        );
        let text = self.client.query(&sql).await.map_err(|e| e.to_string())?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let (s, n) = l.rsplit_once('\t')?;
                Some((s.to_owned(), n.parse().ok()?))
            })
            .collect())
    }
}

impl UsageReader {
    /// When `site`'s month-to-date usage first went past `limit`: the `received_at`
    /// (Unix ms, at the table's precision) of its event number `limit + 1` since
    /// `since_ms`, or `None` while it has no more than `limit`. Asked once a month per
    /// site over its limit ([`crate::quota::Quotas::over_limit`]). Two queries, so that
    /// a plan of millions of events does not make the server order a month of rows:
    /// the site's rows per day (the table is ordered by site, then day), which gives
    /// the crossing day, then that day's rows only, ordered, at the right offset.
    pub async fn crossed_at(
        &self,
        site: &str,
        since_ms: i64,
        limit: u64,
    ) -> Result<Option<i64>, String> {
        let table = self.client.qualified_table().map_err(|e| e.to_string())?;
        let rows = format!(
            "FROM {table} WHERE site_id = {} AND received_at >= toDateTime({})",
            clickhouse::quote_str(site),
            since_ms.div_euclid(1000)
        );
        let days = self
            .client
            .query(&format!(
                "SELECT toDate(received_at) AS d, count() {rows} GROUP BY d ORDER BY d FORMAT TabSeparated"
            ))
            .await
            .map_err(|e| e.to_string())?;
        let mut before = 0u64;
        for line in days.lines().filter(|l| !l.is_empty()) {
            let (day, n) = line
                .split_once('\t')
                .and_then(|(d, n)| Some((d, n.parse::<u64>().ok()?)))
                .ok_or_else(|| format!("per-day usage line {line:?}"))?;
            if before + n <= limit {
                before += n;
                continue;
            }
            let text = self
                .client
                .query(&format!(
                    "SELECT toUnixTimestamp(received_at) {rows} AND toDate(received_at) = toDate({}) ORDER BY received_at LIMIT {}, 1 FORMAT TabSeparated",
                    clickhouse::quote_str(day),
                    limit - before
                ))
                .await
                .map_err(|e| e.to_string())?;
            let t = text.trim();
            return t
                .parse::<i64>()
                .map(|s| Some(s * 1000))
                .map_err(|e| format!("crossing time {t:?}: {e}"));
        }
        Ok(None)
    }
}

/// Connects and checks the table: a table that cannot take schema v1 is an error here,
/// at start-up; an unreachable server is not (the spool keeps everything until it
/// answers, and the layout is read then).
pub async fn clickhouse(a: &ClickHouseArgs) -> Result<(Arc<dyn Store>, UsageReader), String> {
    let client = Arc::new(client(a)?);
    let store = ClickHouseStore {
        client: client.clone(),
        layout: OnceCell::new(),
    };
    let mut last = String::new();
    for attempt in 0..3 {
        match client.describe().await {
            Ok(layout) => {
                let v = client.server_version().await.map_err(|e| e.to_string())?;
                tracing::info!(version = ?v, table = %client.qualified_table().unwrap_or_default(), "ClickHouse table checked");
                let _ = store.layout.set(layout);
                return Ok((Arc::new(store), UsageReader { client }));
            }
            Err(e) if e.is_retryable() => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            Err(e) => return Err(format!("ClickHouse table unusable: {e}")),
        }
    }
    tracing::warn!(error = %last, "ClickHouse not reachable at start; spooling until it is");
    Ok((Arc::new(store), UsageReader { client }))
}

/// `sink-clickhouse migrate`.
pub async fn migrate(a: &ClickHouseArgs, cluster: Option<&str>) -> Result<(), String> {
    let c = client(a)?;
    clickhouse::migrate(&c, cluster)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("migrate done");
    Ok(())
}
