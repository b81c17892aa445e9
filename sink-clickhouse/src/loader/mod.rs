//! The loader: sealed spool segments → ClickHouse inserts (or Parquet files).
//!
//! A segment is streamed one record at a time; records are grouped into chunks of up
//! to `--flush-rows` rows; each chunk is one insert whose deduplication token is
//! derived from the spool id, the segment id and the record range (the same after a
//! replay). A failed insert is retried with exponential backoff and jitter (the client
//! fails over between URLs); a chunk the server rejects as invalid goes to the
//! quarantine folder as an Arrow IPC file, with a metric and a log line. The segment is
//! deleted only after every chunk is acknowledged or quarantined.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use tokio::sync::watch;

use crate::metrics::{CodeLabel, Metrics};
use crate::parquet_out::ParquetOut;
use crate::server::{now_ms, Health};
use crate::spool::{ipc, Next, Sealed, SegmentReader, Spool};

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

/// How often an idle loader probes the destination.
const PROBE_EVERY: Duration = Duration::from_secs(5);

impl Store for ParquetOut {
    fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let out = self.clone();
            let c = chunk.clone();
            tokio::task::spawn_blocking(move || {
                out.write(c.created_at_ms, c.segment, c.first, c.last, &c.batches)
            })
            .await
            .map_err(|e| StoreError {
                retryable: true,
                code: "panic".into(),
                message: e.to_string(),
            })?
            .map(|_| ())
            .map_err(|e| StoreError {
                retryable: true,
                code: "io".into(),
                message: e.to_string(),
            })
        })
    }
}

/// Loader settings.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Most rows per insert / Parquet file.
    pub max_rows: usize,
    /// First retry delay.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Segments loaded at once (at least 1).
    pub concurrency: usize,
}

/// The loader loop.
pub struct Loader {
    spool: Spool,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    cfg: LoaderConfig,
}

/// How a segment ended.
enum SegmentEnd {
    Done,
    Stopped,
}

impl Loader {
    /// A loader of `spool` into `store`.
    pub fn new(
        spool: Spool,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        cfg: LoaderConfig,
    ) -> Self {
        Loader {
            spool,
            store,
            metrics,
            health,
            cfg,
        }
    }

    /// Loads sealed segments until `stop` turns true.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut last_probe = Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            let segs = match self.spool.sealed() {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "listing the spool failed");
                    Vec::new()
                }
            };
            if segs.is_empty() {
                if last_probe.elapsed() >= PROBE_EVERY {
                    last_probe = Instant::now();
                    let ok = self.store.probe().await.is_ok();
                    self.note_urls();
                    if ok {
                        self.health.failing_since_ms.store(0, Ordering::Relaxed);
                    } else {
                        let _ = self.health.failing_since_ms.compare_exchange(
                            0,
                            now_ms(),
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                }
                tokio::select! {
                    _ = self.spool.sealed_notify().notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            if let SegmentEnd::Stopped = self.load_all(segs, &stop, None).await {
                return;
            }
        }
    }

    /// Loads `segs`, up to `concurrency` at once, each started in order. A segment's
    /// own chunks are written one after another with the same dedup tokens as when
    /// loaded alone, so a replay after a crash dedups whatever the concurrency was.
    /// Stops at the first `Stopped` (the segments in flight stay in the spool).
    async fn load_all(
        &self,
        segs: Vec<Sealed>,
        stop: &watch::Receiver<bool>,
        deadline: Option<Instant>,
    ) -> SegmentEnd {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let mut segs = segs.into_iter();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.cfg.concurrency.max(1) {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let Some(seg) = segs.next() else { break };
                let mut stop = stop.clone();
                in_flight.push(async move { self.load_segment(&seg, &mut stop, deadline).await });
            }
            match in_flight.next().await {
                None => {
                    return if segs.len() == 0 {
                        SegmentEnd::Done
                    } else {
                        SegmentEnd::Stopped
                    }
                }
                Some(SegmentEnd::Stopped) => return SegmentEnd::Stopped,
                Some(SegmentEnd::Done) => {}
            }
        }
    }

    /// The final pass at shutdown: loads what is sealed until done or `deadline`.
    /// Returns true when the spool is empty.
    pub async fn drain(&self, deadline: Instant) -> bool {
        let (_tx, rx) = watch::channel(false);
        let Ok(segs) = self.spool.sealed() else {
            return false;
        };
        if let SegmentEnd::Stopped = self.load_all(segs, &rx, Some(deadline)).await {
            return false;
        }
        self.spool.sealed().is_ok_and(|s| s.is_empty())
    }

    async fn load_segment(
        &self,
        seg: &Sealed,
        stop: &mut watch::Receiver<bool>,
        deadline: Option<Instant>,
    ) -> SegmentEnd {
        let path = seg.path.clone();
        let reader = tokio::task::spawn_blocking(move || SegmentReader::open(&path)).await;
        let mut reader = match reader {
            Ok(Ok(Ok(r))) => r,
            Ok(Ok(Err(reason))) => {
                self.quarantine_segment(seg, reason);
                return SegmentEnd::Done;
            }
            other => {
                tracing::error!(segment = %seg.path.display(), result = ?other.err(), "opening a spool segment failed; will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return SegmentEnd::Done;
            }
        };
        let created = reader.header.created_at_ms;
        loop {
            // Read the next chunk (blocking I/O + decode off the async threads).
            let max_rows = self.cfg.max_rows;
            let res = tokio::task::spawn_blocking(move || {
                let chunk = read_chunk(&mut reader, max_rows);
                (reader, chunk)
            })
            .await;
            let (r, chunk) = match res {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %e, "reading a segment panicked");
                    return SegmentEnd::Done;
                }
            };
            reader = r;
            let (first, last, batches, rows) = match chunk {
                Ok(None) => break,
                Ok(Some(c)) => c,
                Err(reason) => {
                    self.quarantine_segment(seg, &reason);
                    return SegmentEnd::Done;
                }
            };
            let chunk = Chunk {
                segment: seg.id,
                created_at_ms: created,
                first,
                last,
                rows,
                token: self.spool.dedup_token(seg.id, first, last),
                batches,
            };
            if let SegmentEnd::Stopped = self.write_with_retry(&chunk, stop, deadline).await {
                return SegmentEnd::Stopped;
            }
        }
        if let Err(e) = self.spool.delete(seg) {
            tracing::error!(error = %e, segment = %seg.path.display(), "deleting a loaded segment failed");
        }
        SegmentEnd::Done
    }

    async fn write_with_retry(
        &self,
        chunk: &Chunk,
        stop: &mut watch::Receiver<bool>,
        deadline: Option<Instant>,
    ) -> SegmentEnd {
        let mut backoff = self.cfg.min_backoff;
        loop {
            let t0 = Instant::now();
            let res = self.store.write(chunk).await;
            self.note_urls();
            match res {
                Ok(()) => {
                    self.metrics
                        .load_latency
                        .observe(t0.elapsed().as_secs_f64());
                    self.metrics.loaded_rows.inc_by(chunk.rows as u64);
                    self.metrics.loaded_batches.inc();
                    self.health.failing_since_ms.store(0, Ordering::Relaxed);
                    tracing::debug!(
                        segment = chunk.segment,
                        rows = chunk.rows,
                        ms = t0.elapsed().as_millis() as u64,
                        "chunk loaded"
                    );
                    return SegmentEnd::Done;
                }
                Err(e) => {
                    self.metrics
                        .clickhouse_errors
                        .get_or_create(&CodeLabel {
                            code: e.code.clone(),
                        })
                        .inc();
                    if !e.retryable {
                        self.quarantine_chunk(chunk, &e);
                        return SegmentEnd::Done;
                    }
                    let _ = self.health.failing_since_ms.compare_exchange(
                        0,
                        now_ms(),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    // Full jitter around the current backoff: 50%..150%.
                    let sleep = backoff.mul_f64(0.5 + fastrand::f64());
                    tracing::warn!(segment = chunk.segment, code = %e.code, error = %e.message, retry_in_ms = sleep.as_millis() as u64, "load failed; retrying");
                    if deadline.is_some_and(|d| Instant::now() + sleep >= d) {
                        return SegmentEnd::Stopped;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(sleep) => {}
                        _ = stop.changed() => { if *stop.borrow() { return SegmentEnd::Stopped; } }
                    }
                    backoff = (backoff * 2).min(self.cfg.max_backoff);
                }
            }
        }
    }

    fn note_urls(&self) {
        let u = self.store.url_health();
        if !u.is_empty() {
            if let Ok(mut g) = self.health.urls.lock() {
                *g = u;
            }
        }
    }

    fn quarantine_segment(&self, seg: &Sealed, reason: &str) {
        self.metrics.quarantined.inc();
        if let Err(e) = self.spool.quarantine(seg, reason) {
            tracing::error!(error = %e, segment = %seg.path.display(), "moving a damaged segment to quarantine failed");
        }
    }

    /// Keeps a chunk the server refused as an Arrow IPC file (+ `.reason`), never a
    /// silent drop.
    fn quarantine_chunk(&self, chunk: &Chunk, e: &StoreError) {
        self.metrics.quarantined.inc();
        let dir = &self.spool.config().quarantine_dir;
        let name = format!(
            "rejected-{}-{:020}-{}-{}.arrows",
            self.spool.spool_id(),
            chunk.segment,
            chunk.first,
            chunk.last
        );
        let res = ipc::encode(&chunk.batches)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|bytes| {
                std::fs::write(dir.join(&name), bytes)?;
                std::fs::write(
                    dir.join(format!("{name}.reason")),
                    format!("{}: {}", e.code, e.message),
                )?;
                std::fs::File::open(dir.join(&name))?.sync_all()?;
                crate::spool::fsync_dir(dir)
            });
        match res {
            Ok(()) => {
                tracing::error!(file = %dir.join(&name).display(), rows = chunk.rows, code = %e.code, error = %e.message, "ClickHouse rejected a batch as invalid; moved to quarantine")
            }
            Err(io) => {
                tracing::error!(error = %io, rows = chunk.rows, "ClickHouse rejected a batch and writing it to quarantine failed")
            }
        }
    }
}

type ChunkParts = (u32, u32, Vec<RecordBatch>, usize);

/// Reads records until `max_rows` rows (at least one record). `Ok(None)` at the end.
fn read_chunk(reader: &mut SegmentReader, max_rows: usize) -> Result<Option<ChunkParts>, String> {
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut first = None;
    let mut last = 0;
    loop {
        match reader
            .next_record()
            .map_err(|e| format!("read error: {e}"))?
        {
            Next::End => break,
            Next::Bad { offset, reason } => return Err(format!("{reason} at offset {offset}")),
            Next::Record(rec) => {
                first.get_or_insert(rec.index);
                last = rec.index;
                for b in ipc::decode_compact(rec.ipc())
                    .map_err(|e| format!("record {}: {e}", rec.index))?
                {
                    rows += b.num_rows();
                    batches.push(b);
                }
                if rows >= max_rows {
                    break;
                }
            }
        }
    }
    Ok(first.map(|f| (f, last, batches, rows)))
}

#[cfg(test)]
mod tests;
