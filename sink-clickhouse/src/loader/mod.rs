//! The loader: sealed spool segments → ClickHouse inserts (or Parquet files).
//!
//! A segment is streamed one record at a time; records are grouped into chunks of up
//! to `--insert-rows` rows; each chunk is one insert whose deduplication token is
//! derived from the spool id, the segment id and the record range (the same after a
//! replay: the cut depends only on the segment and the setting). Up to
//! `--load-concurrency` inserts are in flight, across segments and within one. A
//! segment sealed last, at the end of a burst, is cut in two halves, inserted at
//! once; that cut is recorded on disk before the first insert (`Spool::write_cut`),
//! so a replay cuts the same way. A failed insert is retried with exponential backoff and jitter (the client
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
use crate::spool::segment::record_rows;
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
    /// Most rows per insert / Parquet file: a segment is cut into chunks of this many
    /// rows (at record boundaries), the same cut on every pass.
    pub max_rows: usize,
    /// First retry delay.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Inserts in flight, and segments loaded at once (at least 1).
    pub concurrency: usize,
}

/// The loader loop.
pub struct Loader {
    spool: Spool,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    cfg: LoaderConfig,
    /// One permit per insert in flight (`cfg.concurrency`), shared by the segments.
    inserts: tokio::sync::Semaphore,
}

/// The next chunk of a segment, as the loader reads it.
enum Read {
    Chunk(Chunk),
    /// A damaged record: the segment goes to quarantine.
    Bad(String),
    /// Reading panicked: the segment is kept and tried again.
    Failed,
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
            inserts: tokio::sync::Semaphore::new(cfg.concurrency.max(1)),
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

    /// Loads `segs`, up to `concurrency` at once, each started in order, then the
    /// segments sealed meanwhile (a new seal starts as soon as a load slot is free, not
    /// after the whole pass), until none is left or `stop` turns true. A segment's
    /// chunks and their dedup tokens are the same whatever the concurrency, so a
    /// replay after a crash dedups whatever was in flight. Returns `Stopped` at the
    /// first `Stopped` (the segments in flight stay in the spool) and when the
    /// deadline leaves segments unloaded.
    async fn load_all(
        &self,
        segs: Vec<Sealed>,
        stop: &watch::Receiver<bool>,
        deadline: Option<Instant>,
    ) -> SegmentEnd {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let most = self.cfg.concurrency.max(1);
        // Segments are started in id order; new seals have higher ids. (A segment left
        // in the spool by this pass — unreadable for now — waits for the next one.)
        let mut newest = segs.last().map_or(0, |s| s.id);
        let mut segs = std::collections::VecDeque::from(segs);
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < most && !*stop.borrow() {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if segs.is_empty() {
                    match self.spool.sealed() {
                        Ok(all) => segs.extend(all.into_iter().filter(|s| s.id > newest)),
                        Err(e) => tracing::error!(error = %e, "listing the spool failed"),
                    }
                    newest = segs.back().map_or(newest, |s| s.id);
                }
                let Some(seg) = segs.pop_front() else { break };
                // The last sealed segment may be cut in halves (see `cut_of`): when
                // the spool is quiet it is the end of a burst, whether or not the one
                // before it is still loading (it usually is).
                let last_sealed = segs.is_empty();
                in_flight.push(async move {
                    self.load_segment(&seg, last_sealed, stop, deadline).await
                });
            }
            let done = tokio::select! {
                done = in_flight.next() => done,
                // A slot is free: look for a new seal.
                _ = self.spool.sealed_notify().notified(), if in_flight.len() < most => continue,
            };
            match done {
                None => {
                    return if segs.is_empty() {
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

    /// Loads one segment: its chunks are read in order, each as soon as an insert of
    /// this segment may start, and written with up to `concurrency` inserts in flight
    /// across the whole loader (the last segment of a burst, cut in halves, uses two).
    /// The segment is deleted once every chunk is in or quarantined.
    async fn load_segment(
        &self,
        seg: &Sealed,
        last_sealed: bool,
        stop: &watch::Receiver<bool>,
        deadline: Option<Instant>,
    ) -> SegmentEnd {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let path = seg.path.clone();
        let reader = tokio::task::spawn_blocking(move || SegmentReader::open(&path)).await;
        let reader = match reader {
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
        let cut = self.cut_of(seg, last_sealed).await;
        // The chunks are read one after another, the next only while fewer than
        // `concurrency` of this segment's are held (memory stays bounded by the
        // concurrency), and written as they come; the semaphore bounds the inserts of
        // all segments in flight together. A bad record ends the reading.
        let most = self.cfg.concurrency.max(1);
        let mut reader = Some(reader);
        let mut writes = FuturesUnordered::new();
        let (mut bad, mut failed) = (None, false);
        loop {
            if reader.is_some() && writes.len() < most {
                let mut read = std::pin::pin!(self.next_chunk(seg, created, cut, reader.take()));
                // The writes in flight go on while the next chunk is read.
                let got = loop {
                    tokio::select! {
                        got = &mut read => break got,
                        Some(end) = writes.next(), if !writes.is_empty() => {
                            if let SegmentEnd::Stopped = end {
                                return SegmentEnd::Stopped;
                            }
                        }
                    }
                };
                match got {
                    Some((Read::Chunk(chunk), r)) => {
                        reader = r;
                        writes.push(self.write_chunk(chunk, stop.clone(), deadline));
                    }
                    Some((Read::Bad(reason), _)) => bad = Some(reason),
                    Some((Read::Failed, _)) => failed = true,
                    None => {}
                }
                continue;
            }
            match writes.next().await {
                None => break,
                // The segment stays in the spool; the chunks still in flight are
                // dropped and written again, with the same tokens, on the next pass.
                Some(SegmentEnd::Stopped) => return SegmentEnd::Stopped,
                Some(SegmentEnd::Done) => {}
            }
        }
        // Every chunk before a damaged record is in (or quarantined) by now.
        if let Some(reason) = bad {
            self.quarantine_segment(seg, &reason);
        } else if !failed {
            if let Err(e) = self.spool.delete(seg) {
                tracing::error!(error = %e, segment = %seg.path.display(), "deleting a loaded segment failed");
            }
        }
        SegmentEnd::Done
    }

    /// Where `seg` is cut in two, if it is: the cut recorded on an earlier pass, or a
    /// new one when no segment was sealed after it, no event has arrived for
    /// [`QUIET`] (the end of a burst, not a lull between two seals of a steady
    /// load) and each half has at least [`SPLIT_MIN_ROWS`] rows. Its two halves are
    /// then inserted at once, by two server threads instead of one; a steady load
    /// keeps whole segments, which cost the server less per row (BENCHMARKS.md). The
    /// cut is on disk before the first insert, so a replay cuts the same way.
    async fn cut_of(&self, seg: &Sealed, last_sealed: bool) -> Option<u32> {
        match self.spool.read_cut(seg) {
            Ok(Some(cut)) => return Some(cut),
            Ok(None) => {}
            Err(e) => {
                // Not written by us as it is: load whole rather than guess.
                tracing::error!(error = %e, segment = %seg.path.display(), "unreadable segment cut; loading the segment whole");
                return None;
            }
        }
        if !last_sealed || self.cfg.concurrency < 2 {
            return None;
        }
        let path = seg.path.clone();
        let rows = match tokio::task::spawn_blocking(move || record_rows(&path)).await {
            Ok(Ok(rows)) => rows,
            _ => return None,
        };
        let cut = half_way(&rows, SPLIT_MIN_ROWS)?;
        // Under a steady load a round comes every few ms: the wait ends at the first.
        let rounds = self.spool.written().1;
        let quiet_since = Instant::now();
        while quiet_since.elapsed() < QUIET {
            tokio::time::sleep(QUIET / 10).await;
            if self.spool.written().1 != rounds {
                return None;
            }
        }
        let (spool, s) = (self.spool.clone(), seg.clone());
        match tokio::task::spawn_blocking(move || spool.write_cut(&s, cut)).await {
            Ok(Ok(())) => Some(cut),
            other => {
                tracing::warn!(segment = %seg.path.display(), result = ?other, "recording a segment cut failed; loading it whole");
                // Whole only if the cut is surely not on disk (else a replay cuts it).
                match self.spool.read_cut(seg) {
                    Ok(None) => None,
                    _ => Some(cut),
                }
            }
        }
    }

    /// The next chunk of `seg` from `reader` (`None`: the stream has ended).
    async fn next_chunk(
        &self,
        seg: &Sealed,
        created: i64,
        cut: Option<u32>,
        reader: Option<SegmentReader>,
    ) -> Option<(Read, Option<SegmentReader>)> {
        let mut reader = reader?;
        let max_rows = self.cfg.max_rows;
        // Blocking I/O + decode off the async threads.
        let res = tokio::task::spawn_blocking(move || {
            let chunk = read_chunk(&mut reader, max_rows, cut);
            (reader, chunk)
        })
        .await;
        match res {
            Err(e) => {
                tracing::error!(error = %e, "reading a segment panicked");
                Some((Read::Failed, None))
            }
            Ok((_, Ok(None))) => None,
            Ok((_, Err(reason))) => Some((Read::Bad(reason), None)),
            Ok((reader, Ok(Some((first, last, batches, rows))))) => Some((
                Read::Chunk(Chunk {
                    segment: seg.id,
                    created_at_ms: created,
                    first,
                    last,
                    rows,
                    token: self.spool.dedup_token(seg.id, first, last),
                    batches,
                }),
                Some(reader),
            )),
        }
    }

    /// Writes a chunk once an insert slot is free. (Read before its slot: a chunk
    /// ready when a slot frees starts at once; acquiring the slot before reading
    /// measured 0.93× end to end, the server idle while the chunk is decoded.)
    async fn write_chunk(
        &self,
        chunk: Chunk,
        mut stop: watch::Receiver<bool>,
        deadline: Option<Instant>,
    ) -> SegmentEnd {
        let _slot = self.inserts.acquire().await;
        self.write_with_retry(&chunk, &mut stop, deadline).await
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

/// Rows each half of a cut segment has at least: below, the second insert saves less
/// than the server's cost of one more part.
pub const SPLIT_MIN_ROWS: u64 = 10_000;

/// How long no event may have reached the spool before a lone segment is cut.
pub const QUIET: Duration = Duration::from_millis(20);

/// The record that starts the second half of a segment of records of `rows` rows:
/// the first at which half the rows are behind. `None` when a half would have fewer
/// than `min` rows.
fn half_way(rows: &[u32], min: u64) -> Option<u32> {
    let total: u64 = rows.iter().map(|&r| u64::from(r)).sum();
    let mut before = 0u64;
    for (i, &r) in rows.iter().enumerate() {
        if before * 2 >= total {
            return (before >= min && total - before >= min)
                .then(|| u32::try_from(i).ok())
                .flatten();
        }
        before += u64::from(r);
    }
    None
}

/// Reads records until `max_rows` rows (at least one record), or up to record `cut`.
/// `Ok(None)` at the end.
fn read_chunk(
    reader: &mut SegmentReader,
    max_rows: usize,
    cut: Option<u32>,
) -> Result<Option<ChunkParts>, String> {
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut first = None;
    let mut last = 0;
    loop {
        if first.is_some() && cut == Some(reader.next_index()) {
            break;
        }
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
