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
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    use arrow_array::Int32Array;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::spool::SpoolConfig;

    /// Fails the first `fail` writes (retryable or not), then records what it got.
    struct Flaky {
        fail: usize,
        retryable: bool,
        calls: AtomicUsize,
        got: Mutex<Vec<(String, usize)>>,
    }

    impl Store for Flaky {
        fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(async move {
                if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
                    return Err(StoreError {
                        retryable: self.retryable,
                        code: "27".into(),
                        message: "nope".into(),
                    });
                }
                self.got
                    .lock()
                    .unwrap()
                    .push((chunk.token.clone(), chunk.rows));
                Ok(())
            })
        }
    }

    async fn spool_with(dir: &std::path::Path, records: i32) -> Spool {
        let (spool, _) = Spool::open(SpoolConfig {
            dir: dir.join("spool"),
            quarantine_dir: dir.join("quarantine"),
            max_bytes: 1 << 30,
            segment_max_bytes: 1 << 30,
            segment_max_rows: 1 << 30,
            segment_max_age: Duration::from_secs(3600),
            batch_ids_keep: 10,
        })
        .unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        for i in 0..records {
            let b = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int32Array::from(vec![i; 10]))],
            )
            .unwrap();
            spool.append_events(b).await.unwrap();
        }
        spool.seal().await.unwrap();
        spool
    }

    fn loader(spool: &Spool, store: Arc<Flaky>, max_rows: usize) -> Loader {
        Loader::new(
            spool.clone(),
            store,
            Arc::new(Metrics::new()),
            Arc::new(Health::default()),
            LoaderConfig {
                max_rows,
                min_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
                concurrency: 1,
            },
        )
    }

    #[tokio::test]
    async fn retries_then_deletes_with_stable_tokens_per_record_range() {
        let d = tempfile::tempdir().unwrap();
        let spool = spool_with(d.path(), 5).await;
        let store = Arc::new(Flaky {
            fail: 3,
            retryable: true,
            calls: 0.into(),
            got: Mutex::new(Vec::new()),
        });
        let l = loader(&spool, store.clone(), 20);
        assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
        let got = store.got.lock().unwrap().clone();
        let id = spool.spool_id().to_owned();
        // 5 records of 10 rows, chunks of >= 20 rows: records 0-1, 2-3, 4.
        assert_eq!(
            got,
            vec![
                (format!("{id}-1-0-1"), 20),
                (format!("{id}-1-2-3"), 20),
                (format!("{id}-1-4-4"), 10)
            ]
        );
        assert!(spool.sealed().unwrap().is_empty());
        assert!(l.health.failing_since_ms.load(Ordering::Relaxed) == 0);
    }

    /// Counts writes in flight; each takes a while.
    struct Slow {
        now: AtomicUsize,
        most: AtomicUsize,
        got: Mutex<Vec<String>>,
    }

    impl Store for Slow {
        fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(async move {
                let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.now.fetch_sub(1, Ordering::SeqCst);
                self.got.lock().unwrap().push(chunk.token.clone());
                Ok(())
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn segments_load_concurrently_with_the_tokens_they_have_alone() {
        let d = tempfile::tempdir().unwrap();
        let spool = spool_with(d.path(), 2).await;
        // Two more segments of 2 records each.
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        for _ in 0..2 {
            for i in 0..2 {
                let b = RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(Int32Array::from(vec![i; 10]))],
                )
                .unwrap();
                spool.append_events(b).await.unwrap();
            }
            spool.seal().await.unwrap();
        }
        let segs: Vec<u64> = spool.sealed().unwrap().iter().map(|s| s.id).collect();
        assert_eq!(segs.len(), 3);
        let store = Arc::new(Slow {
            now: 0.into(),
            most: 0.into(),
            got: Mutex::new(Vec::new()),
        });
        let l = Loader::new(
            spool.clone(),
            store.clone(),
            Arc::new(Metrics::new()),
            Arc::new(Health::default()),
            LoaderConfig {
                max_rows: 10,
                min_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
                concurrency: 2,
            },
        );
        assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
        assert_eq!(store.most.load(Ordering::SeqCst), 2);
        let mut got = store.got.lock().unwrap().clone();
        got.sort();
        let id = spool.spool_id().to_owned();
        // One chunk per record (10 rows each), tokens by segment and record range.
        let mut want: Vec<String> = segs
            .iter()
            .flat_map(|s| (0..2).map(move |r| (*s, r)))
            .map(|(s, r)| format!("{id}-{s}-{r}-{r}"))
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert!(spool.sealed().unwrap().is_empty());
        assert_eq!(spool.bytes(), 0);
    }

    #[tokio::test]
    async fn a_rejected_chunk_goes_to_quarantine_and_the_rest_is_loaded() {
        let d = tempfile::tempdir().unwrap();
        let spool = spool_with(d.path(), 2).await;
        let store = Arc::new(Flaky {
            fail: 1,
            retryable: false,
            calls: 0.into(),
            got: Mutex::new(Vec::new()),
        });
        let l = loader(&spool, store.clone(), 10);
        assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
        assert_eq!(store.got.lock().unwrap().len(), 1);
        let q: Vec<_> = std::fs::read_dir(d.path().join("quarantine"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let arrows = q
            .iter()
            .find(|n| n.ends_with(".arrows"))
            .expect("quarantined chunk");
        let bytes = std::fs::read(d.path().join("quarantine").join(arrows)).unwrap();
        assert_eq!(
            ipc::decode(&bytes)
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>(),
            10
        );
        assert_eq!(l.metrics.quarantined.get(), 1);
    }

    #[tokio::test]
    async fn drain_gives_up_at_the_deadline_and_keeps_the_segment() {
        let d = tempfile::tempdir().unwrap();
        let spool = spool_with(d.path(), 1).await;
        let store = Arc::new(Flaky {
            fail: usize::MAX,
            retryable: true,
            calls: 0.into(),
            got: Mutex::new(Vec::new()),
        });
        let l = loader(&spool, store, 10);
        assert!(!l.drain(Instant::now() + Duration::from_millis(200)).await);
        assert_eq!(spool.sealed().unwrap().len(), 1);
        assert!(l.health.failing_since_ms.load(Ordering::Relaxed) > 0);
    }
}
