//! What the loader writes (a [`Chunk`]) and where it goes (a [`Store`]: ClickHouse, in
//! `crate::store`, or Parquet files, here).

use std::future::Future;
use std::pin::Pin;

use arrow_array::RecordBatch;

use crate::parquet_out::ParquetOut;

/// Rows of one segment's records `first..=last`, ready to write.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Segment id.
    pub segment: u64,
    /// When the segment was created (Unix ms).
    pub created_at_ms: i64,
    /// First record index.
    pub first: u32,
    /// Last record index.
    pub last: u32,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Row count.
    pub rows: usize,
    /// Insert deduplication token.
    pub token: String,
}

/// Why a write failed.
#[derive(Debug, Clone)]
pub struct StoreError {
    /// Worth retrying (network, timeout, server overloaded) — or not (the data is invalid).
    pub retryable: bool,
    /// For the metric label: the ClickHouse error code, or a short word.
    pub code: String,
    /// For the log.
    pub message: String,
}

/// A boxed future (the two stores are chosen at run time).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where chunks go.
pub trait Store: Send + Sync {
    /// Writes a chunk; `Ok` means durable at the destination.
    fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Health per destination URL (empty for Parquet).
    fn url_health(&self) -> Vec<(String, bool)> {
        Vec::new()
    }
    /// Checks the destination while there is nothing to load, so `/readyz` and the
    /// per-URL health stay true to life without traffic.
    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

impl Store for ParquetOut {
    fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let out = self.clone();
            let c = chunk.clone();
            tokio::task::spawn_blocking(move || {
                out.write(c.created_at_ms, c.segment, c.first, c.last, &c.batches)
            })
            .await
            // A panic or an encoder error is the chunk's fault (quarantined); an I/O
            // error, a full disk say, is retried.
            .map_err(|e| StoreError {
                retryable: !e.is_panic(),
                code: "panic".into(),
                message: e.to_string(),
            })?
            .map(|_| ())
            .map_err(|e| StoreError {
                retryable: e.kind() != std::io::ErrorKind::InvalidData,
                code: if e.kind() == std::io::ErrorKind::InvalidData {
                    "parquet".into()
                } else {
                    "io".into()
                },
                message: e.to_string(),
            })
        })
    }
}
