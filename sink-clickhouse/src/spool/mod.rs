//! The write-ahead spool: every acknowledged event is on disk before its 2xx.
//!
//! Layout of `<data-dir>/spool/`: `spool-id` (random id of this spool, part of every
//! dedup token), `batch-ids` (see [`batch_ids`]), and segment files
//! `<20-digit id>.open` (the one being written) / `.seg` (sealed, ready to load).
//! Damaged sealed segments move to `<data-dir>/quarantine/`.
//!
//! The rules (DESIGN.md, "The spool, precisely") and where they are kept:
//! - a record is one group-commit round (posted batches and their ids included),
//!   framed with length + CRC32C ([`record`]);
//! - one writer thread, one `fdatasync` per round, replies after it ([`writer`]);
//! - creating or renaming a segment is followed by an fsync of the directory;
//! - sealed by size, rows or age; only sealed segments are listed for loading;
//! - recovery cuts a torn tail of the newest segment and quarantines anything else
//!   that is damaged ([`Spool::open`]);
//! - readers stream a segment one record at a time ([`segment::SegmentReader`]).

pub mod batch_ids;
pub mod ipc;
pub mod record;
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
use self::segment::{parse_name, scan, segment_path, valid_record_after};
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
}

impl Shared {
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
        let (rec, bytes, found_next) = recover(&cfg, &mut ids)?;
        // Segment ids (and with the spool id, every dedup token and Parquet file name)
        // are never used twice: they continue from the reserved high-water mark, which
        // the writer moves ahead durably before it uses an id past it. A spool without
        // that file (made by an older build) that holds no segment gets a new spool id,
        // since ids of segments loaded and deleted before cannot be known.
        let reserved = read_next_segment(&cfg.dir)?;
        let spool_id = if reserved.is_none() && rec.segments == 0 {
            create_id(&cfg.dir)?
        } else {
            load_or_create_id(&cfg.dir)?
        };
        let next_id = found_next.max(reserved.unwrap_or(0));
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
    /// round is at [`STAGED_MAX_BYTES`] or the spool is closing — and the caller sends
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
        self.check_room()?;
        let (done, rx) = oneshot::channel();
        self.send(writer::Msg::Batch { id, batches, done }).await?;
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

    /// Bytes of segment files on disk (open + sealed).
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
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
    /// directory.
    pub fn delete(&self, seg: &Sealed) -> io::Result<()> {
        let len = fs::metadata(&seg.path).map(|m| m.len()).unwrap_or(0);
        fs::remove_file(&seg.path)?;
        remove_if_there(&cut_path(&seg.path))?;
        fsync_dir(&self.shared.cfg.dir)?;
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
        let to = quarantine_file(&self.shared.cfg, &seg.path, reason)?;
        self.shared
            .bytes
            .fetch_sub(len.min(self.bytes()), Ordering::Relaxed);
        Ok(to)
    }
}

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

fn load_or_create_id(dir: &Path) -> io::Result<String> {
    let p = dir.join("spool-id");
    if let Ok(s) = fs::read_to_string(&p) {
        let s = s.trim();
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(s.to_owned());
        }
    }
    create_id(dir)
}

/// File (in the spool dir) holding the first segment id not yet reserved.
pub(crate) const NEXT_SEGMENT_FILE: &str = "next-segment";

/// The reserved high-water mark of segment ids, if the file is there (a damaged file is
/// an error: guessing could reuse an id).
fn read_next_segment(dir: &Path) -> io::Result<Option<u64>> {
    match fs::read_to_string(dir.join(NEXT_SEGMENT_FILE)) {
        Ok(s) => s.trim().parse().map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{NEXT_SEGMENT_FILE}: {e}: {s:?}"),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reserves segment ids below `next` (tmp + rename + dir fsync).
pub(crate) fn write_next_segment(dir: &Path, next: u64) -> io::Result<()> {
    write_durably(
        &dir.join(format!("{NEXT_SEGMENT_FILE}.tmp")),
        &dir.join(NEXT_SEGMENT_FILE),
        next.to_string().as_bytes(),
    )
}

/// A new random spool id, written durably.
fn create_id(dir: &Path) -> io::Result<String> {
    let p = dir.join("spool-id");
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| io::Error::other(e.to_string()))?;
    let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
    write_durably(&dir.join("spool-id.tmp"), &p, id.as_bytes())?;
    Ok(id)
}

fn quarantine_file(cfg: &SpoolConfig, path: &Path, reason: &str) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let mut to = cfg.quarantine_dir.join(&name);
    let mut n = 1;
    while to.exists() {
        to = cfg.quarantine_dir.join(format!("{name}.{n}"));
        n += 1;
    }
    let name = to
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    fs::rename(path, &to)?;
    // A quarantined segment is replayed by hand, whole: its cut has no use left.
    remove_if_there(&cut_path(path))?;
    fs::write(cfg.quarantine_dir.join(format!("{name}.reason")), reason)?;
    fsync_dir(&cfg.quarantine_dir)?;
    fsync_dir(&cfg.dir)?;
    tracing::error!(segment = %path.display(), to = %to.display(), reason, "spool segment quarantined");
    Ok(to)
}

/// Scans every segment: keeps good ones (sealing the newest), cuts a torn tail of the
/// newest, quarantines the rest. Returns (report, bytes on disk, next segment id).
fn recover(cfg: &SpoolConfig, ids: &mut BatchIds) -> io::Result<(Recovered, u64, u64)> {
    let mut segs = Vec::new();
    for e in fs::read_dir(&cfg.dir)? {
        let e = e?;
        if let Some((id, sealed)) = e.file_name().to_str().and_then(parse_name) {
            segs.push((id, sealed, e.path()));
        }
    }
    segs.sort_by_key(|s| s.0);
    let newest = segs.last().map(|s| s.0);
    let mut rec = Recovered::default();
    let mut bytes = 0u64;
    // Every segment is scanned before anything is cut, renamed or quarantined, so that
    // the batch ids are where `batch_ids` says first: those of segments found unsealed
    // (open at a crash), never fsynced in the batch-ids file, are written back to it;
    // those of sealed segments are in it, and where it lacks them (it was lost, or they
    // fell out of its window) they are remembered as the oldest, and the file rewritten.
    // Only the newest `batch_ids_keep` ids of sealed segments are held meanwhile, so
    // that memory does not grow with the spool.
    let mut scans = Vec::with_capacity(segs.len());
    let mut sealed_ids = std::collections::VecDeque::new();
    let mut unsealed_ids = Vec::new();
    for (_, sealed, path) in &segs {
        let mut s = scan(path)?;
        let found = std::mem::take(&mut s.batch_ids);
        if *sealed {
            for b in found {
                sealed_ids.push_back(b);
                if sealed_ids.len() > cfg.batch_ids_keep.max(1) {
                    sealed_ids.pop_front();
                }
            }
        } else {
            unsealed_ids.extend(found);
        }
        scans.push(s);
    }
    // Newest first, so that the oldest end up at the front.
    let mut lacked = false;
    for b in sealed_ids.iter().rev() {
        lacked |= ids.remember_oldest(b);
    }
    drop(sealed_ids);
    let missing: Vec<&[u8]> = unsealed_ids
        .iter()
        .map(Vec::as_slice)
        .filter(|b| ids.remember(b))
        .collect();
    let written_back = if lacked {
        ids.rewrite()
    } else {
        ids.persist(&missing)
    };
    // A full disk must not keep the sink from starting and draining the spool: the
    // segments found unsealed then stay so (not loaded) until a start that can write
    // their ids back; the ids are known in memory meanwhile.
    let keep_unsealed = match written_back {
        Ok(()) => false,
        Err(e) => {
            tracing::error!(error = %e, "writing batch ids back to the batch-ids file failed; segments found unsealed stay unsealed until a restart");
            true
        }
    };
    let quarantine = |rec: &mut Recovered, path: &Path, reason: String| -> io::Result<()> {
        quarantine_file(cfg, path, &reason)?;
        rec.quarantined.push((path.to_owned(), reason));
        Ok(())
    };
    for ((id, sealed, path), s) in segs.iter().cloned().zip(scans) {
        let is_newest_open = !sealed && Some(id) == newest;
        if let Some((off, reason)) = s.bad {
            let torn_tail = is_newest_open
                && (s.header.is_some() || s.file_len < record::SEGMENT_HEADER_LEN as u64)
                && !valid_record_after(&path, off)?;
            if !torn_tail {
                quarantine(&mut rec, &path, format!("{reason} at offset {off}"))?;
                continue;
            }
            tracing::warn!(segment = %path.display(), offset = off, cut = s.file_len - s.valid_len, reason, "cutting torn tail of the newest spool segment");
            rec.cut_bytes += s.file_len - s.valid_len;
            if s.header.is_some() {
                let f = fs::OpenOptions::new().write(true).open(&path)?;
                f.set_len(s.valid_len)?;
                f.sync_all()?;
            }
        }
        if s.records == 0 {
            fs::remove_file(&path)?;
            fsync_dir(&cfg.dir)?;
            continue;
        }
        if !sealed {
            if keep_unsealed {
                bytes += s.valid_len;
                continue;
            }
            fs::rename(&path, segment_path(&cfg.dir, id, true))?;
            fsync_dir(&cfg.dir)?;
        }
        rec.segments += 1;
        rec.rows += s.rows;
        bytes += s.valid_len;
    }
    // Ids of quarantined segments are never reused: their dedup tokens may be known to
    // the server already.
    let mut next = segs.iter().map(|s| s.0 + 1).max().unwrap_or(1);
    for e in fs::read_dir(&cfg.quarantine_dir)? {
        if let Some((id, _)) = e?.file_name().to_str().and_then(parse_name) {
            next = next.max(id + 1);
        }
    }
    Ok((rec, bytes, next))
}

#[cfg(test)]
mod tests;
