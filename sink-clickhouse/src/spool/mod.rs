//! The write-ahead spool: every acknowledged event is on disk before its 2xx.
//!
//! Layout of `<data-dir>/spool/`: `spool-id` (random id of this spool, part of every
//! dedup token), `batch-ids` (see [`batch_ids`]), `next-segment` (segment ids reserved),
//! `insert-rows` (the chunk size each segment is cut with, see [`insert_rows`]), and
//! segment files `<20-digit id>.open` (the one being written) / `.seg` (sealed, ready
//! to load), with a `.cut` beside a sealed one the loader cuts in halves, and
//! `<id>.free`: the files of loaded segments kept to be written over by the next ones
//! (at most `--spool-recycle`, [`Spool::delete`]).
//! Damaged sealed segments move to `<data-dir>/quarantine/`.
//!
//! The rules (DESIGN.md, "The spool, precisely") and where they are kept:
//! - a record is one group-commit round (posted batches and their ids included),
//!   framed with length + CRC32C ([`record`]);
//! - one writer thread, one `fdatasync` per round, replies after it (module `writer`);
//! - creating or renaming a segment is followed by an fsync of the directory;
//! - sealed by size, rows or age; only sealed segments are listed for loading;
//! - recovery cuts a torn tail of the newest segment and quarantines anything else
//!   that is damaged ([`Spool::open`]);
//! - readers stream a segment one record at a time ([`segment::SegmentReader`]).

pub mod batch_ids;
pub mod insert_rows;
pub mod ipc;
mod open;
pub mod record;
mod recover;
pub mod segment;
mod writer;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::RecordBatch;
use ingest_core::{BatchConfig, Batcher};
use tokio::sync::{mpsc, oneshot, Notify};

use self::batch_ids::BatchIds;
pub use self::insert_rows::InsertRows;
use self::segment::parse_name;
pub use self::segment::{Next, Record, SegmentReader};

/// Spool settings (from the CLI).
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// The spool directory (`<data-dir>/spool`).
    pub dir: PathBuf,
    /// Where damaged segments and rejected batches go (`<data-dir>/quarantine`).
    pub quarantine_dir: PathBuf,
    /// Refuse new data (503) when the segments on disk reach this many bytes.
    pub max_bytes: u64,
    /// Seal the open segment once it holds this many bytes.
    pub segment_max_bytes: u64,
    /// Seal the open segment once it holds this many rows.
    pub segment_max_rows: u64,
    /// Seal the open segment once it is this old (and not empty).
    pub segment_max_age: Duration,
    /// Seal the open segment once nothing was written to it for this long, if it holds
    /// at least [`SpoolConfig::segment_idle_min_rows`] rows (`ZERO`: never by idleness).
    /// The end of a burst is then loaded at once instead of at the segment's age.
    pub segment_idle: Duration,
    /// The rows an idle segment must hold to be sealed for idleness: below it, the
    /// age seal waits to make the insert larger (ClickHouse prefers few, large inserts).
    pub segment_idle_min_rows: u64,
    /// How many recent `/v1/batches` ids are remembered for deduplication.
    pub batch_ids_keep: usize,
    /// Records are LZ4-compressed once the segments on disk hold this many bytes (a
    /// backlog: the destination down or slower than the traffic), and written as they
    /// are below it (`0`: always compressed). See [`Spool::compress_records`].
    pub compress_above_bytes: u64,
    /// The files of loaded segments kept to be written over by the next segments, at
    /// most this many (`0`: deleted). Their bytes are not the spool's
    /// ([`Spool::bytes`]): they are disk in use beside it, up to this many segments and
    /// the old bytes of the file the open segment is written over, until its seal.
    pub recycle: usize,
}

/// Why an append failed. The HTTP layer answers 503 for all of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The spool holds `--spool-max-bytes`.
    #[error("spool is full")]
    Full,
    /// The writer has stopped (shutdown).
    #[error("spool is closed")]
    Closed,
    /// Writing or syncing failed.
    #[error("spool write failed: {0}")]
    Io(String),
}

/// What happened to a posted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Durably stored now.
    Stored,
    /// A batch with the same id was stored before; nothing was written.
    AlreadyStored,
}

/// One posted record batch (or several) under one batch id, for [`Spool::append_batches`].
#[derive(Debug, Clone)]
pub struct BatchPart {
    /// Its batch id; `None`: not deduplicated.
    pub id: Option<Vec<u8>>,
    /// Its rows, conformed to the event schema.
    pub batches: Vec<RecordBatch>,
}

/// What recovery found at start-up.
#[derive(Debug, Default, Clone)]
pub struct Recovered {
    /// Segments kept for loading.
    pub segments: usize,
    /// Rows in them.
    pub rows: u64,
    /// Bytes cut from a torn tail.
    pub cut_bytes: u64,
    /// Segments moved to quarantine, with the reason.
    pub quarantined: Vec<(PathBuf, String)>,
}

/// A sealed segment waiting to be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Segment id.
    pub id: u64,
    /// Its file.
    pub path: PathBuf,
}

pub(crate) struct Shared {
    pub(crate) cfg: SpoolConfig,
    pub(crate) spool_id: String,
    pub(crate) bytes: AtomicU64,
    pub(crate) sealed: Notify,
    pub(crate) broken: AtomicBool,
    pub(crate) written_bytes: AtomicU64,
    pub(crate) rounds: AtomicU64,
    /// When the spool was opened, and when (µs after that) the writer last wrote a
    /// round: [`Spool::quiet_for`].
    pub(crate) opened: std::time::Instant,
    pub(crate) last_round_us: AtomicU64,
    /// Rows requests moved in ([`Spool::stage`]) since the writer's last round.
    pub(crate) staged: Mutex<Staged>,
    /// The first segment id this run may use: the segments below it are earlier runs'.
    pub(crate) first_segment: u64,
    /// The chunk size of each segment, settled by the first loader ([`Spool::insert_rows`]).
    pub(crate) insert_rows: std::sync::OnceLock<InsertRows>,
    /// Loaded segments' files kept for the writer to reuse (`<id>.free`, at most
    /// [`SpoolConfig::recycle`]).
    pub(crate) recycled: Mutex<Recycled>,
}

/// The kept files ([`Shared::recycled`]).
#[derive(Default)]
pub(crate) struct Recycled {
    /// Ready for the writer: renamed, the rename durable.
    pub(crate) free: Vec<PathBuf>,
    /// Being renamed by [`Spool::delete`] (counted against the bound until ready).
    pub(crate) pending: usize,
}

impl Shared {
    /// A kept file for the next segment, if there is one.
    pub(crate) fn take_recycled(&self) -> Option<PathBuf> {
        self.recycled.lock().expect("recycled files").free.pop()
    }

    /// [`Spool::quiet_for`], for the writer's ticks and the handles alike.
    pub(crate) fn quiet_for(&self) -> Duration {
        let last = Duration::from_micros(self.last_round_us.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }

    /// [`Spool::compress_records`], for the writer and the handles alike.
    pub(crate) fn compress_records(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) >= self.cfg.compress_above_bytes
    }
}

/// The rows of the round being gathered, and who waits for them. The writer takes
/// rows and waiters together under the lock, so every waiter it answers had its rows
/// in the record it fsynced.
pub(crate) struct Staged {
    pub(crate) rows: Batcher,
    pub(crate) waiters: Vec<oneshot::Sender<Result<(), AppendError>>>,
    /// Set by the writer's last round (shutdown): nothing is staged after it.
    pub(crate) closed: bool,
}

/// A staged round holds at most this many bytes of rows (the estimate of
/// [`Batcher::bytes`]); past it requests send their rows as a batch of their own, which
/// waits for room in the writer's queue. Far below what Arrow's `i32` offsets allow.
pub(crate) const STAGED_MAX_BYTES: usize = 32 << 20;

/// A batcher for a staged round: its own limits are never applied (rows are moved in
/// with [`Batcher::drain_into`], and the writer flushes it whole).
pub(crate) fn round_batcher() -> Batcher {
    Batcher::new(BatchConfig {
        max_rows: usize::MAX,
        max_bytes: usize::MAX,
        max_age_ms: i64::MAX,
    })
}

/// Rows staged in the spool's next round ([`Spool::stage`]).
#[must_use = "the rows are acknowledged only when `stored` resolves"]
pub struct StagedRows(oneshot::Receiver<Result<(), AppendError>>);

impl StagedRows {
    /// Resolves once the round holding the rows is fsynced (or failed).
    pub async fn stored(self) -> Result<(), AppendError> {
        self.0.await.map_err(|_| AppendError::Closed)?
    }
}

/// Handle to the spool; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    tx: mpsc::Sender<writer::Msg>,
    shared: Arc<Shared>,
}

impl Spool {
    /// Recovers the spool in `cfg.dir` and starts its writer thread. Must be called
    /// inside a tokio runtime.
    pub fn open(cfg: SpoolConfig) -> io::Result<(Spool, Recovered)> {
        fs::create_dir_all(&cfg.dir)?;
        fs::create_dir_all(&cfg.quarantine_dir)?;
        let mut ids = BatchIds::open(&cfg.dir, cfg.batch_ids_keep)?;
        let (rec, bytes, found_next) = recover::recover(&cfg, &mut ids)?;
        let (recycled, after_recycled) = recover::recycled(&cfg)?;
        let (spool_id, next_id) =
            recover::identity(&cfg.dir, &rec, found_next.max(after_recycled))?;
        remove_stale_cuts(&cfg.dir)?;
        let shared = Arc::new(Shared {
            cfg,
            spool_id,
            bytes: AtomicU64::new(bytes),
            sealed: Notify::new(),
            broken: AtomicBool::new(false),
            written_bytes: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            opened: std::time::Instant::now(),
            last_round_us: AtomicU64::new(0),
            staged: Mutex::new(Staged {
                rows: round_batcher(),
                waiters: Vec::new(),
                closed: false,
            }),
            first_segment: next_id,
            insert_rows: std::sync::OnceLock::new(),
            recycled: Mutex::new(Recycled {
                free: recycled,
                pending: 0,
            }),
        });
        let (tx, rx) = mpsc::channel(4096);
        writer::start(shared.clone(), rx, ids, next_id, tx.clone())?;
        Ok((Spool { tx, shared }, rec))
    }

    /// Appends the accepted events of one request; resolves once they are fsynced
    /// (in one record with the other requests of the same round).
    pub async fn append_events(&self, batch: RecordBatch) -> Result<(), AppendError> {
        self.check_room()?;
        let (done, rx) = oneshot::channel();
        self.send(writer::Msg::Events { batch, done }).await?;
        rx.await.map_err(|_| AppendError::Closed)?
    }

    /// Moves the rows of `rows` (one request's, checked) into the round the writer
    /// takes next, without waiting: `Ok(Some(_))` resolves once that round is fsynced.
    /// `Ok(None)` leaves `rows` as they were — the writer's queue is full, the staged
    /// round is at `STAGED_MAX_BYTES` or the spool is closing — and the caller sends
    /// them as a batch with [`Spool::append_events`] instead, which waits for room.
    ///
    /// This is the common path for `/e` and `/api/event`: a round's requests append
    /// into one set of builders, so no request builds, sends and frees a batch of its
    /// own, and the writer concatenates nothing (BENCHMARKS.md, session 16).
    pub fn stage(&self, rows: &mut Batcher) -> Result<Option<StagedRows>, AppendError> {
        self.check_room()?;
        if rows.is_empty() {
            return Ok(None);
        }
        // A slot in the queue first, so the wake-up below cannot fail or wait; the
        // queue's bound is what makes requests wait when the writer falls behind.
        let Ok(permit) = self.tx.try_reserve() else {
            return Ok(None);
        };
        let (done, rx) = oneshot::channel();
        {
            let mut st = self.shared.staged.lock().expect("staged rows");
            if st.closed || st.rows.bytes().saturating_add(rows.bytes()) > STAGED_MAX_BYTES {
                return Ok(None);
            }
            rows.drain_into(&mut st.rows);
            st.waiters.push(done);
        }
        permit.send(writer::Msg::Staged);
        Ok(Some(StagedRows(rx)))
    }

    /// Appends the batches of one posted request (`/v1/batches`), conformed to the
    /// event schema; resolves once they are fsynced. They join the round's record like
    /// any request's events, with `id` beside them in it. A batch whose `id` was stored
    /// before is not written again.
    pub async fn append_batch(
        &self,
        id: Option<Vec<u8>>,
        batches: Vec<RecordBatch>,
    ) -> Result<Appended, AppendError> {
        let part = BatchPart { id, batches };
        let mut outcome = self.append_batches(vec![part]).await?;
        Ok(outcome.pop().unwrap_or(Appended::Stored))
    }

    /// Appends the parts of one posted request (`/v1/batches` with `X-Batch-Ids`: one
    /// part per id), in ONE round, so one record and one fsync; resolves once they are
    /// fsynced. Each part is checked on its own: one whose id was stored before (or is
    /// stored by an earlier part of the same round) is not written again, and is
    /// answered [`Appended::AlreadyStored`] only once the round that stores it is
    /// fsynced. The answer holds one outcome per part, in order. At most
    /// [`batch_ids::MAX_IDS_PER_REQUEST`] parts.
    pub async fn append_batches(
        &self,
        parts: Vec<BatchPart>,
    ) -> Result<Vec<Appended>, AppendError> {
        if parts.len() > batch_ids::MAX_IDS_PER_REQUEST {
            return Err(AppendError::Io(format!(
                "{} batch ids in one request, at most {} are taken",
                parts.len(),
                batch_ids::MAX_IDS_PER_REQUEST
            )));
        }
        self.check_room()?;
        let (done, rx) = oneshot::channel();
        self.send(writer::Msg::Batch { parts, done }).await?;
        rx.await.map_err(|_| AppendError::Closed)?
    }

    /// Seals the open segment now (if it holds anything).
    pub async fn seal(&self) -> Result<(), AppendError> {
        let (done, rx) = oneshot::channel();
        self.send(writer::Msg::Seal { done }).await?;
        rx.await.map_err(|_| AppendError::Closed)
    }

    /// Seals the open segment and stops the writer: later appends fail with `Closed`.
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.send(writer::Msg::Close { done }).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn send(&self, m: writer::Msg) -> Result<(), AppendError> {
        self.tx.send(m).await.map_err(|_| AppendError::Closed)
    }

    fn check_room(&self) -> Result<(), AppendError> {
        if self.shared.broken.load(Ordering::Relaxed) {
            return Err(AppendError::Io("spool is in a failed state".into()));
        }
        if self.is_full() {
            return Err(AppendError::Full);
        }
        Ok(())
    }

    /// Whether a record written now is LZ4-compressed: once the segments on disk hold
    /// [`SpoolConfig::compress_above_bytes`]. While the loader keeps up, a segment is
    /// deleted within a second or two of being written, and compressing it would cost
    /// the sink about a fifth of its CPU for disk space it gives back at once; with a
    /// backlog the same disk holds ~3× more events compressed (BENCHMARKS.md, session
    /// 17).
    pub fn compress_records(&self) -> bool {
        self.shared.compress_records()
    }

    /// True when the segments on disk reach `--spool-max-bytes`.
    pub fn is_full(&self) -> bool {
        self.bytes() >= self.shared.cfg.max_bytes
    }

    /// True when a write failed and could not be undone (needs an operator).
    pub fn is_broken(&self) -> bool {
        self.shared.broken.load(Ordering::Relaxed)
    }

    /// Bytes of the segments on disk (open + sealed): their headers and records. Not
    /// counted: the kept files (`--spool-recycle`), and what the open segment's file
    /// held before, past its records, until the seal cuts it off.
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// Bytes on disk of the loaded segments' files kept for the next segments
    /// (`--spool-recycle`): disk in use beside [`Spool::bytes`].
    pub fn recycled_bytes(&self) -> u64 {
        let free = self
            .shared
            .recycled
            .lock()
            .expect("recycled files")
            .free
            .clone();
        free.iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Total bytes written since start, and group-commit rounds (fsyncs).
    pub fn written(&self) -> (u64, u64) {
        (
            self.shared.written_bytes.load(Ordering::Relaxed),
            self.shared.rounds.load(Ordering::Relaxed),
        )
    }

    /// How long since the writer last wrote a round (since the spool opened, if it has
    /// written none): how long no event has reached the spool.
    pub fn quiet_for(&self) -> Duration {
        self.shared.quiet_for()
    }

    /// The random id of this spool (part of every dedup token).
    pub fn spool_id(&self) -> &str {
        &self.shared.spool_id
    }

    /// The configuration.
    pub fn config(&self) -> &SpoolConfig {
        &self.shared.cfg
    }

    /// Woken whenever a segment is sealed.
    pub fn sealed_notify(&self) -> &Notify {
        &self.shared.sealed
    }

    /// The sealed segments, oldest first.
    pub fn sealed(&self) -> io::Result<Vec<Sealed>> {
        let mut v = Vec::new();
        for e in fs::read_dir(&self.shared.cfg.dir)? {
            let e = e?;
            if let Some((id, true)) = e.file_name().to_str().and_then(parse_name) {
                v.push(Sealed { id, path: e.path() });
            }
        }
        v.sort_by_key(|s| s.id);
        Ok(v)
    }

    /// The insert deduplication token of records `first..=last` of segment `id`:
    /// the same after any replay of the same segment.
    pub fn dedup_token(&self, id: u64, first: u32, last: u32) -> String {
        format!("{}-{id}-{first}-{last}", self.shared.spool_id)
    }

    /// The cut the loader recorded for `seg` (see [`Spool::write_cut`]), if any.
    pub fn read_cut(&self, seg: &Sealed) -> io::Result<Option<u32>> {
        match fs::read_to_string(cut_path(&seg.path)) {
            Ok(s) => s.trim().parse().map(Some).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad cut file: {e}"))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records, durably, that `seg` is loaded in two parts, records `..record` and
    /// `record..`: written before the first insert of it, so that a replay after a
    /// crash cuts it the same way and gets the same dedup tokens. Removed with the
    /// segment.
    pub fn write_cut(&self, seg: &Sealed, record: u32) -> io::Result<()> {
        let path = cut_path(&seg.path);
        write_durably(
            &path.with_extension("cut.tmp"),
            &path,
            record.to_string().as_bytes(),
        )
    }

    /// Deletes a fully loaded segment, then its cut if it has one (that order: a
    /// segment without its cut would be loaded whole on a replay), and fsyncs the
    /// directory. While fewer than `--spool-recycle` files are kept, the segment's file
    /// is kept (renamed `<id>.free`) for the writer to write the next segment over —
    /// handed to it only once the rename is durable: a file written over while a crash
    /// could still bring back its `.seg` name would come back as a damaged segment
    /// holding rows already loaded.
    pub fn delete(&self, seg: &Sealed) -> io::Result<()> {
        let len = fs::metadata(&seg.path).map(|m| m.len()).unwrap_or(0);
        let keep = {
            let mut r = self.shared.recycled.lock().expect("recycled files");
            let room = r.free.len() + r.pending < self.shared.cfg.recycle;
            r.pending += usize::from(room);
            room
        };
        let kept = seg.path.with_extension(RECYCLED_EXT);
        let removed = if keep {
            fs::rename(&seg.path, &kept)
        } else {
            fs::remove_file(&seg.path)
        }
        .and_then(|()| remove_if_there(&cut_path(&seg.path)))
        .and_then(|()| fsync_dir(&self.shared.cfg.dir));
        if keep {
            let mut r = self.shared.recycled.lock().expect("recycled files");
            r.pending -= 1;
            if removed.is_ok() {
                r.free.push(kept);
            }
        }
        removed?;
        // Saturating: the loader deletes segments concurrently.
        let _ = self
            .shared
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(len))
            });
        Ok(())
    }

    /// Moves a segment to the quarantine folder with a note saying why.
    pub fn quarantine(&self, seg: &Sealed, reason: &str) -> io::Result<PathBuf> {
        let len = fs::metadata(&seg.path).map(|m| m.len()).unwrap_or(0);
        let to = recover::quarantine_file(&self.shared.cfg, &seg.path, reason)?;
        self.shared
            .bytes
            .fetch_sub(len.min(self.bytes()), Ordering::Relaxed);
        Ok(to)
    }
}

/// File name suffix of a loaded segment's file kept for reuse.
pub const RECYCLED_EXT: &str = "free";

/// Where the cut of the segment at `seg_path` is recorded.
fn cut_path(seg_path: &Path) -> PathBuf {
    seg_path.with_extension(segment::CUT_EXT)
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes the cuts (and unfinished cut files) of segments that are gone: left when
/// the sink stopped between deleting a segment and deleting its cut.
fn remove_stale_cuts(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some(stem) = name
            .strip_suffix(".cut")
            .or_else(|| name.strip_suffix(".cut.tmp"))
        else {
            continue;
        };
        let seg = path.with_file_name(format!("{stem}.{}", segment::SEALED_EXT));
        if name.ends_with(".tmp") || !seg.exists() {
            tracing::info!(file = %path.display(), "removing a stale segment cut");
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one
/// whole: written to `tmp` (same directory) and fsynced, renamed over `path`, the
/// directory fsynced.
pub(crate) fn write_durably(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(tmp, path)?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Fsyncs a directory, so a created, renamed or removed entry survives a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
