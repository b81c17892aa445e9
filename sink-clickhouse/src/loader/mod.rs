//! The loader: sealed spool segments → ClickHouse inserts (or Parquet files).
//!
//! A segment is streamed one record at a time; records are grouped into chunks of up
//! to `--insert-rows` rows; each chunk is one insert whose deduplication token is
//! derived from the spool id, the segment id and the record range (the same after a
//! replay: the cut depends only on the segment and the setting it is cut with, which
//! the spool records per run, so a restart with another `--insert-rows` replays a
//! segment as it was cut — `Spool::insert_rows`). Up to
//! `--load-concurrency` inserts are in flight, across segments and within one. The
//! segment sealed last, at the end of a burst, is cut in two halves inserted at once
//! (`cut`). A failed insert is retried with exponential backoff and jitter (the client
//! fails over between URLs); a chunk the server rejects as invalid goes to the
//! quarantine folder as an Arrow IPC file, with a metric and a log line. The segment
//! is deleted only after every chunk is acknowledged or quarantined.
//!
//! Here: the loop over segments, retries and quarantine; `segment`: one segment into
//! its chunks; `cut`: the end-of-burst halves; `store`: what a chunk is and where it
//! goes.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::watch;

use crate::metrics::{CodeLabel, Metrics};
use crate::server::{now_ms, Health};
use crate::spool::{ipc, InsertRows, Sealed, Spool};

mod cut;
mod segment;
mod store;

pub use self::cut::{QUIET, SPLIT_MIN_ROWS};
pub use self::store::{BoxFuture, Chunk, Store, StoreError};

/// How often an idle loader probes the destination.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Loader settings.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Most rows per insert / Parquet file: a segment is cut into chunks of this many
    /// rows (at record boundaries), the same cut on every pass. Segments left in the
    /// spool by a run with another value keep that run's ([`Spool::insert_rows`]).
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
    /// The rows per chunk of each segment, settled before the first chunk is read.
    insert_rows: tokio::sync::OnceCell<InsertRows>,
}

/// How a segment ended.
pub(crate) enum SegmentEnd {
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
            insert_rows: tokio::sync::OnceCell::new(),
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
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return SegmentEnd::Stopped;
            }
            let t0 = Instant::now();
            // A panic while preparing or encoding the insert is this chunk's failure,
            // not the loader's end (which would leave the spool filling unloaded).
            let write = AssertUnwindSafe(self.store.write(chunk)).catch_unwind();
            // At the drain's deadline an insert in flight is dropped, not awaited (it
            // could run to the client's timeout, once per URL): its segment stays in
            // the spool and the chunk goes again, with the same token, at the next
            // start. (A Parquet write on its blocking thread still finishes; its file
            // is the one the replay writes over.)
            let res = match deadline {
                None => write.await,
                Some(d) => match tokio::time::timeout_at(d.into(), write).await {
                    Ok(res) => res,
                    Err(_) => {
                        tracing::warn!(
                            segment = chunk.segment,
                            first = chunk.first,
                            last = chunk.last,
                            "insert abandoned at the shutdown deadline; the segment stays in the spool (replayed at the next start with the same token: stored twice where the table does not deduplicate, if the server completed this one)"
                        );
                        return SegmentEnd::Stopped;
                    }
                },
            };
            let res = match res {
                Ok(res) => res,
                Err(_) => {
                    self.metrics.panics.inc();
                    Err(StoreError {
                        retryable: false,
                        code: "panic".into(),
                        message: "writing the chunk panicked".into(),
                    })
                }
            };
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
                    // A chunk the store refuses for good is kept in quarantine; while
                    // that cannot be written, the segment stays in the spool and the
                    // chunk is tried again after the backoff, like a retryable error.
                    if !e.retryable && self.quarantine_chunk(chunk, &e) {
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
    /// silent drop; false if the file could not be written (the segment must stay).
    fn quarantine_chunk(&self, chunk: &Chunk, e: &StoreError) -> bool {
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
                self.metrics.quarantined.inc();
                tracing::error!(file = %dir.join(&name).display(), rows = chunk.rows, code = %e.code, error = %e.message, "ClickHouse rejected a batch as invalid; moved to quarantine");
                true
            }
            Err(io) => {
                tracing::error!(error = %io, rows = chunk.rows, code = %e.code, "ClickHouse rejected a batch and writing it to quarantine failed; the segment stays in the spool");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests;
