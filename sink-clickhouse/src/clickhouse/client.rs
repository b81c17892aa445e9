//! The HTTP client: failover across URLs, per-URL health, version-aware settings.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use arrow_array::RecordBatch;

use super::ident::quote_str;
use super::layout::{DescribeRow, TableLayout};
use super::sortkey::SortKey;
use super::stream::{
    self, blocks, check_block_rows, check_encodes, same_columns, stream_body, Blocks,
};
use super::{quote_ident, Error, Result, WireCompression};

/// Where and how to reach ClickHouse.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// Base URLs (`http://host:8123`, `https://…:8443`), tried in order (failover).
    pub urls: Vec<String>,
    /// Database of the target table.
    pub database: String,
    /// Target table.
    pub table: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// How insert bodies travel: LZ4-framed or plain Native.
    pub compression: WireCompression,
    /// Rows per Native block of an insert: an insert of up to this many rows is sent as
    /// one block, a larger one in blocks of this many (between
    /// [`super::MIN_BLOCK_ROWS`] and [`super::MAX_BLOCK_ROWS`]; default
    /// [`super::DEFAULT_BLOCK_ROWS`]).
    pub block_rows: usize,
    /// Send each insert in the table's sorting-key order (where the key is columns or
    /// `toDate` of a UTC time column), so that the server skips its own sort: about
    /// half of its CPU per inserted row (see `sortkey`).
    pub sort_inserts: bool,
}

/// The server's version, which decides the settings and types we may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// Major, minor, patch.
    pub parts: (u32, u32, u32),
    /// As the server printed it.
    pub text: String,
}

impl ServerVersion {
    /// Parses `SELECT version()` output such as `18.16.1` or `24.8.4.13`.
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let text = text.trim();
        let mut it = text.split('.').map(|p| p.parse::<u32>());
        let major = it.next()?.ok()?;
        let minor = it.next()?.ok()?;
        let patch = it.next().and_then(|p| p.ok()).unwrap_or(0);
        Some(ServerVersion {
            parts: (major, minor, patch),
            text: text.to_owned(),
        })
    }

    /// At least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.parts.0, self.parts.1) >= (major, minor)
    }

    /// `insert_deduplication_token` exists (22.2+).
    pub fn has_dedup_token(&self) -> bool {
        self.at_least(22, 2)
    }

    /// `async_insert` exists (21.11+); we always insert synchronously.
    pub fn has_async_insert(&self) -> bool {
        self.at_least(21, 11)
    }

    /// `DateTime64` exists (20.1+).
    pub fn has_datetime64(&self) -> bool {
        self.at_least(20, 1)
    }

    /// `LowCardinality` is a regular type (19.0+; experimental before).
    pub fn has_low_cardinality(&self) -> bool {
        self.at_least(19, 0)
    }

    /// `non_replicated_deduplication_window` exists for MergeTree (21.1+ here).
    pub fn has_non_replicated_dedup(&self) -> bool {
        self.at_least(21, 1)
    }
}

/// A ClickHouse HTTP client over one or more URLs.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    cfg: ClickHouseConfig,
    healthy: Vec<AtomicBool>,
    /// Per URL: inserts are LZ4-framed (from [`ClickHouseConfig::compression`]).
    lz4: Vec<bool>,
    preferred: AtomicUsize,
    version: OnceLock<ServerVersion>,
    /// Of the optional insert settings, those the server knows (from `system.settings`).
    known_settings: OnceLock<Vec<String>>,
    /// The target is a `Distributed` table (insert synchronously into the shards).
    distributed: AtomicBool,
}

/// Insert settings we send only where the server has them (18.16 refuses unknown ones).
const OPTIONAL_SETTINGS: &[&str] = &[
    "async_insert",
    "insert_deduplication_token",
    "insert_distributed_sync",
];

impl Client {
    /// A client; no request is made yet.
    pub fn new(cfg: ClickHouseConfig) -> Result<Self> {
        if cfg.urls.is_empty() {
            return Err(Error::Config("no ClickHouse URL".into()));
        }
        check_block_rows(cfg.block_rows).map_err(|e| Error::Config(format!("block_rows: {e}")))?;
        let mut lz4 = Vec::with_capacity(cfg.urls.len());
        for u in &cfg.urls {
            let parsed = reqwest::Url::parse(u).map_err(|e| Error::Config(format!("{u}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(Error::Config(format!("{u}: only http and https URLs")));
            }
            lz4.push(cfg.compression.lz4_for(&parsed));
        }
        quote_ident(&cfg.database)?;
        quote_ident(&cfg.table)?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let healthy = cfg.urls.iter().map(|_| AtomicBool::new(true)).collect();
        Ok(Client {
            http,
            cfg,
            healthy,
            lz4,
            preferred: AtomicUsize::new(0),
            version: OnceLock::new(),
            known_settings: OnceLock::new(),
            distributed: AtomicBool::new(false),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClickHouseConfig {
        &self.cfg
    }

    /// `db.table`, quoted.
    pub fn qualified_table(&self) -> Result<String> {
        Ok(format!(
            "{}.{}",
            quote_ident(&self.cfg.database)?,
            quote_ident(&self.cfg.table)?
        ))
    }

    /// Any URL answers `SELECT 1`.
    pub async fn ping(&self) -> Result<()> {
        self.query("SELECT 1").await.map(|_| ())
    }

    /// The server's version (asked once, then remembered).
    pub async fn server_version(&self) -> Result<ServerVersion> {
        if let Some(v) = self.version.get() {
            return Ok(v.clone());
        }
        let text = self.query("SELECT version()").await?;
        let v = ServerVersion::parse(&text)
            .ok_or_else(|| Error::Config(format!("unexpected version {text:?}")))?;
        Ok(self.version.get_or_init(|| v).clone())
    }

    /// Runs a statement and returns the response body (TabSeparated for SELECTs).
    pub async fn query(&self, sql: &str) -> Result<String> {
        self.send(&[], bytes::Bytes::from(sql.to_owned())).await
    }

    /// Reads the target table's columns and matches them against schema v1.
    pub async fn describe(&self) -> Result<TableLayout> {
        let table = self.qualified_table()?;
        let text = self
            .query(&format!("DESCRIBE TABLE {table} FORMAT TabSeparated"))
            .await?;
        let rows: Vec<DescribeRow> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut f = l.split('\t').map(tsv_unescape);
                DescribeRow {
                    name: f.next().unwrap_or_default(),
                    type_name: f.next().unwrap_or_default(),
                    default_kind: f.next().unwrap_or_default(),
                }
            })
            .collect();
        if rows.is_empty() {
            return Err(Error::Layout {
                table,
                column: "*".into(),
                reason: "DESCRIBE returned no columns".into(),
            });
        }
        let engine = self
            .query(&format!(
                "SELECT engine FROM system.tables WHERE database = {} AND name = {} FORMAT TabSeparated",
                quote_str(&self.cfg.database),
                quote_str(&self.cfg.table)
            ))
            .await?;
        // An insert into a Distributed table is acknowledged by default before it
        // reaches the shards; we acknowledge nothing the shards do not have.
        self.distributed
            .store(engine.trim() == "Distributed", Ordering::Relaxed);
        let mut layout =
            TableLayout::from_rows(&format!("{}.{}", self.cfg.database, self.cfg.table), &rows)?;
        if self.cfg.sort_inserts {
            layout.sort_key = self.sort_key(&layout).await;
        }
        // A narrower table is allowed, but never silently: say what is not stored.
        if !layout.skipped.is_empty() {
            tracing::warn!(
                table = %layout.table,
                columns = ?layout.skipped,
                "schema v1 columns missing from the table are not stored"
            );
        }
        if !layout.defaulted.is_empty() {
            tracing::info!(
                table = %layout.table,
                columns = ?layout.defaulted,
                "table columns outside schema v1 take their defaults"
            );
        }
        Ok(layout)
    }

    /// The table's sorting key (`system.tables.sorting_key`, in every server since
    /// 18.x), if the loader can sort by it; why not is logged, and inserts then go in
    /// arrival order as before (the server sorts them).
    async fn sort_key(&self, layout: &TableLayout) -> Option<SortKey> {
        let key = self
            .query(&format!(
                "SELECT sorting_key FROM system.tables WHERE database = {} AND name = {} FORMAT TabSeparated",
                quote_str(&self.cfg.database),
                quote_str(&self.cfg.table)
            ))
            .await
            .map(|text| tsv_unescape(text.trim_end_matches('\n')))
            .map_err(|e| e.to_string())
            .and_then(|text| SortKey::parse(&text, layout));
        match key {
            Ok(key) => {
                tracing::info!(table = %layout.table, ?key, "inserts are sent in the table's key order");
                Some(key)
            }
            Err(why) => {
                tracing::info!(table = %layout.table, %why, "inserts are sent in arrival order (the server sorts them)");
                None
            }
        }
    }

    /// Which of [`OPTIONAL_SETTINGS`] the server knows (asked once).
    async fn known_settings(&self) -> Result<&[String]> {
        if let Some(k) = self.known_settings.get() {
            return Ok(k);
        }
        let names: Vec<String> = OPTIONAL_SETTINGS.iter().map(|n| quote_str(n)).collect();
        let text = self
            .query(&format!(
                "SELECT name FROM system.settings WHERE name IN ({}) FORMAT TabSeparated",
                names.join(", ")
            ))
            .await?;
        let known = text.lines().map(str::to_owned).collect();
        Ok(self.known_settings.get_or_init(|| known))
    }

    /// Whether inserts to each URL, in order, are LZ4-framed.
    pub fn lz4_per_url(&self) -> &[bool] {
        &self.lz4
    }

    /// Inserts `batch` in one request: Native (LZ4-framed where the URL's compression
    /// says so), with the deduplication token where the server knows the setting. `Ok`
    /// means the server confirmed it.
    pub async fn insert(
        &self,
        layout: &TableLayout,
        batch: &RecordBatch,
        dedup_token: Option<&str>,
    ) -> Result<()> {
        self.insert_parts(layout, std::slice::from_ref(batch), dedup_token)
            .await
    }

    /// [`Client::insert`] of the rows of `parts`, in order, as one insert — the same
    /// request as for the parts concatenated, without concatenating them (the loader's
    /// chunks are many spool records). The body is streamed: encoded column by column
    /// on a blocking thread while the server parses the column before (module
    /// `clickhouse::stream`), so the insert never holds its rows twice. A failover
    /// encodes it again for the next URL.
    pub async fn insert_parts(
        &self,
        layout: &TableLayout,
        parts: &[RecordBatch],
        dedup_token: Option<&str>,
    ) -> Result<()> {
        // Parts the encoder could not take are refused here, before the request: on the
        // wire an error could only cut the body. On a blocking thread, as the encoding
        // is: the sort is milliseconds of CPU that the runtime's workers, answering
        // requests, should not wait behind. A panic here is the data's failure too.
        let (prep_layout, prep_parts, block_rows) =
            (layout.clone(), parts.to_vec(), self.cfg.block_rows);
        let prepared = tokio::task::spawn_blocking(move || -> Result<Blocks> {
            let (layout, parts) = (&prep_layout, prep_parts);
            same_columns(layout, &parts)?;
            check_encodes(layout, &parts)?;
            // In the table's key order where it has one we can evaluate, so that the
            // server skips its own sort (`sortkey`); `None` also when the rows are in
            // order already.
            let order = layout.sort_key.as_ref().and_then(|key| key.order(&parts));
            Ok(match order {
                Some(order) => Blocks::Ordered {
                    parts,
                    order,
                    block_rows,
                },
                None => Blocks::Slices(blocks(&parts, block_rows)),
            })
        })
        .await;
        let blocks = match prepared {
            Ok(blocks) => std::sync::Arc::new(blocks?),
            Err(_) => {
                return Err(Error::Batch {
                    column: String::new(),
                    reason: "preparing the insert panicked".into(),
                })
            }
        };
        let params = self.insert_params(layout, dedup_token).await?;
        let failure = stream::EncodeFailure::default();
        let sent = self
            .send_with(&params, true, |lz4| {
                stream_body(layout.clone(), blocks.clone(), lz4, failure.clone())
            })
            .await;
        match (sent, failure.get()) {
            (Ok(_), _) => Ok(()),
            // The body was cut by its encoder, not by the network: every retry would
            // fail the same way.
            (Err(_), Some(why)) => Err(Error::Batch {
                column: String::new(),
                reason: format!("encoding the insert failed: {why}"),
            }),
            (Err(e), None) => Err(e),
        }
    }

    /// The query parameters of an insert into the table.
    async fn insert_params(
        &self,
        layout: &TableLayout,
        dedup_token: Option<&str>,
    ) -> Result<Vec<(&'static str, String)>> {
        let known = self.known_settings().await?;
        let has = |name: &str| known.iter().any(|k| k == name);
        let sql = format!(
            "INSERT INTO {} ({}) FORMAT Native",
            self.qualified_table()?,
            layout.insert_columns()?
        );
        let mut params: Vec<(&str, String)> = vec![("query", sql)];
        if has("async_insert") {
            params.push(("async_insert", "0".into()));
        }
        if let (Some(token), true) = (dedup_token, has("insert_deduplication_token")) {
            params.push(("insert_deduplication_token", token.to_owned()));
        }
        if self.distributed.load(Ordering::Relaxed) && has("insert_distributed_sync") {
            params.push(("insert_distributed_sync", "1".into()));
        }
        Ok(params)
    }

    /// Last known health of each URL (for `/readyz` and the status page).
    pub fn url_health(&self) -> Vec<(String, bool)> {
        self.cfg
            .urls
            .iter()
            .zip(&self.healthy)
            .map(|(u, h)| (u.clone(), h.load(Ordering::Relaxed)))
            .collect()
    }

    /// Sends to the preferred URL, failing over in order on connection errors and
    /// retryable server errors; a data error is returned at once (every replica would
    /// refuse it too).
    async fn send(&self, params: &[(&str, String)], body: bytes::Bytes) -> Result<String> {
        self.send_with(params, false, |_| reqwest::Body::from(body.clone()))
            .await
    }

    /// [`Client::send`] of a body made afresh for each URL tried; for an `insert`, the
    /// body is asked for LZ4-framed (`body(true)`, sent with `decompress=1`) where the
    /// URL's compression says so.
    async fn send_with(
        &self,
        params: &[(&str, String)],
        insert: bool,
        body: impl Fn(bool) -> reqwest::Body,
    ) -> Result<String> {
        let n = self.cfg.urls.len();
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let url = &self.cfg.urls[i];
            let lz4 = insert && self.lz4[i];
            let mut req = self.http.post(url).query(params);
            if lz4 {
                req = req.query(&[("decompress", "1")]);
            }
            if self.cfg.user != "default" || !self.cfg.password.is_empty() {
                req = req.basic_auth(&self.cfg.user, Some(&self.cfg.password));
            }
            let req = req.body(body(lz4));
            match req.send().await {
                Err(e) => {
                    self.healthy[i].store(false, Ordering::Relaxed);
                    last = Some(Error::Unreachable(format!("{url}: {e}")));
                }
                Ok(resp) => {
                    self.healthy[i].store(true, Ordering::Relaxed);
                    let status = resp.status().as_u16();
                    let header_code = resp
                        .headers()
                        .get("x-clickhouse-exception-code")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                    let text = match resp.text().await {
                        Ok(t) => t,
                        Err(e) => {
                            last =
                                Some(Error::Unreachable(format!("{url}: reading the reply: {e}")));
                            continue;
                        }
                    };
                    if (200..300).contains(&status) {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Ok(text);
                    }
                    let code = header_code.or_else(|| exception_code(&text));
                    let mut message = text;
                    message.truncate(2000);
                    let err = Error::Server {
                        url: url.clone(),
                        status,
                        code,
                        message,
                    };
                    if !err.is_retryable() {
                        return Err(err);
                    }
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Unreachable("no URL tried".into())))
    }
}

/// `Code: 53, e.displayText() = …` (18.16) or `Code: 53. DB::Exception: …` (modern).
fn exception_code(text: &str) -> Option<u32> {
    let rest = text.split("Code: ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Undoes TabSeparated escaping (`\'`, `\\`, `\t`, `\n`).
fn tsv_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('0') => out.push('\0'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_codes() {
        let v = ServerVersion::parse("18.16.1\n").unwrap();
        assert!(!v.has_dedup_token() && !v.has_datetime64() && !v.has_async_insert());
        assert!(ServerVersion::parse("24.8.4.13").unwrap().has_dedup_token());
        assert_eq!(
            exception_code("Code: 53, e.displayText() = DB::Exception: x"),
            Some(53)
        );
        assert_eq!(exception_code("Code: 368. DB::Exception: y"), Some(368));
        assert_eq!(tsv_unescape("DateTime(\\'UTC\\')"), "DateTime('UTC')");
    }
}
