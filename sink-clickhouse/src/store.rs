//! The ClickHouse side of the service, on top of [`crate::clickhouse`]: the
//! [`Store`](crate::loader::Store) the loader writes to, `migrate`, and the
//! month-to-date usage read for quotas.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::ClickHouseArgs;
use crate::loader::Store;

/// Reads each site's usage since a time from the events table.
pub struct UsageReader {}

impl UsageReader {
    /// Rows per site since `since_ms`.
    pub async fn month_usage(&self, _since_ms: i64) -> Result<HashMap<String, u64>, String> {
        Err("ClickHouse client not built yet".into())
    }
}

/// Connects, checks the table, and returns the store and the usage reader.
pub async fn clickhouse(_a: &ClickHouseArgs) -> Result<(Arc<dyn Store>, UsageReader), String> {
    Err("ClickHouse client not built yet".into())
}

/// `sink-clickhouse migrate`.
pub async fn migrate(_a: &ClickHouseArgs, _cluster: Option<&str>) -> Result<(), String> {
    Err("ClickHouse client not built yet".into())
}
