//! The segment being written: its file — a new one, or a loaded segment's file written
//! over — the appends of its records, and the file's side of its seal. When to seal,
//! what a failure means for the spool, and the counters are the writer's
//! ([`super::writer`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::record::{record_head, RecordKind, SegmentHeader, SEGMENT_HEADER_LEN};
use super::segment::segment_path;
use super::{fsync_dir, Shared, SpoolConfig};

/// One group-commit round's record as the writer hands it to the open segment.
#[derive(Clone, Copy)]
pub(super) struct RoundRecord<'a> {
    pub kind: RecordKind,
    /// The posted batches' ids it makes durable (in the record's header).
    pub ids: &'a [&'a [u8]],
    /// The encoded rows ([`super::ipc::encode_payload`]).
    pub payload: &'a [u8],
    /// Rows in the payload.
    pub rows: u64,
    /// Spool records the round counts as (what the segment's record count grows by).
    pub records: u32,
}

pub(super) struct Open {
    pub(super) id: u64,
    /// What its records' checksums start from ([`SegmentHeader::record_seed`]).
    seed: u32,
    file: File,
    pub(super) len: u64,
    /// The file's length when it was taken from the recycled ones (0 for a new file):
    /// past `len`, up to it, are the bytes of the segment it held before.
    reused_len: u64,
    pub(super) rows: u64,
    pub(super) records: u32,
    opened: Instant,
    /// When the last round was written (fsynced) to it.
    written: Instant,
    /// Opened less than `segment_max_age` after a busy segment was sealed (see the
    /// writer's `last_busy`): it continues a burst, and its idle seal needs no row
    /// floor.
    after_busy: bool,
}

impl Open {
    /// Opens segment `id` as `<id>.open`, its header durable and the directory
    /// fsynced.
    ///
    /// On a loaded segment's file when one is kept (`Spool::delete`): written over,
    /// its pages already in the page cache and its blocks allocated, it costs about
    /// half the CPU of a new file (BENCHMARKS.md, session 26). Its header is rewritten
    /// and made durable before it takes the new name, so an `.open` file always names
    /// the segment its header does; the records it held do not verify as this
    /// segment's (`record`), and [`Open::cut_reused_tail`] cuts them off. Should
    /// reusing it fail, it is removed (under either name) and a new file made instead.
    pub(super) fn create(shared: &Shared, id: u64, after_busy: bool) -> io::Result<Open> {
        let dir = &shared.cfg.dir;
        let path = segment_path(dir, id, false);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as i64;
        let header = SegmentHeader::new(id, now_ms);
        let reused = shared.take_recycled().and_then(|free| {
            let reuse = || -> io::Result<(File, u64)> {
                let mut file = OpenOptions::new().write(true).open(&free)?;
                let len = file.metadata()?.len();
                file.write_all(&header.encode())?;
                file.sync_data()?;
                fs::rename(&free, &path)?;
                fsync_dir(dir)?;
                Ok((file, len))
            };
            reuse()
                .inspect_err(|e| {
                    tracing::warn!(error = %e, file = %free.display(), "reusing a loaded segment's file failed; making a new one");
                    let _ = fs::remove_file(&free);
                    let _ = fs::remove_file(&path);
                })
                .ok()
        });
        let (file, reused_len) = match reused {
            Some(r) => r,
            None => {
                let mut file = OpenOptions::new()
                    .create_new(true)
                    .write(true)
                    .open(&path)?;
                file.write_all(&header.encode())?;
                file.sync_all()?;
                fsync_dir(dir)?;
                (file, 0)
            }
        };
        Ok(Open {
            id,
            seed: header.record_seed(),
            file,
            len: SEGMENT_HEADER_LEN as u64,
            reused_len,
            rows: 0,
            records: 0,
            opened: Instant::now(),
            written: Instant::now(),
            after_busy,
        })
    }

    /// Appends one record (its header, then its payload, one `writev`) and fsyncs it;
    /// returns the bytes it took. On an error nothing is counted, and the file may
    /// hold part of the record or all of it ([`Open::undo`]).
    pub(super) fn append(&mut self, r: &RoundRecord<'_>) -> io::Result<u64> {
        let RoundRecord {
            kind,
            ids,
            payload,
            rows,
            records,
        } = *r;
        let head = record_head(self.seed, kind, rows_u32(rows), ids, payload);
        let parts = [&head[..], payload];
        write_all_vectored(&mut self.file, &parts)?;
        self.file.sync_data()?;
        let len = (head.len() + payload.len()) as u64;
        self.len += len;
        self.rows += rows;
        self.records += records;
        self.written = Instant::now();
        Ok(len)
    }

    /// Cuts the file back to its last acknowledged record after a failed append (the
    /// page cache's state is then unknown), durably.
    pub(super) fn undo(&self) -> io::Result<()> {
        self.file.set_len(self.len)?;
        self.file.sync_all()
    }

    /// A reused file ends where its last record does: what the segment it held before
    /// left past that is cut off (and the cut made durable) before the segment can be
    /// loaded, whose reader reads to the end of the file. Nothing to do for a new file.
    pub(super) fn cut_reused_tail(&self) -> io::Result<()> {
        if self.reused_len > self.len {
            self.file.set_len(self.len)?;
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Renames the file to sealed (`<id>.seg`), or removes it when it holds no record,
    /// and fsyncs the directory.
    pub(super) fn seal_file(&self, dir: &std::path::Path) -> io::Result<()> {
        let from = segment_path(dir, self.id, false);
        if self.records == 0 {
            fs::remove_file(&from)?;
        } else {
            fs::rename(&from, segment_path(dir, self.id, true))?;
        }
        fsync_dir(dir)
    }

    /// At its size limit, in rows or bytes.
    pub(super) fn full(&self, cfg: &SpoolConfig) -> bool {
        self.len >= cfg.segment_max_bytes || self.rows >= cfg.segment_max_rows
    }

    /// Sealed now, it says the traffic is no trickle: it filled, or it reached the
    /// idle seal's row floor (single events at tens of thousands a second fill no
    /// segment before its age, yet are no trickle). See the writer's `last_busy`.
    pub(super) fn busy(&self, cfg: &SpoolConfig) -> bool {
        self.full(cfg) || self.rows >= cfg.segment_idle_min_rows
    }

    /// Old enough, or idle long enough with rows enough, to be sealed now. The row
    /// floor (`segment_idle_min_rows`) keeps a trickle of events in few, large inserts;
    /// the rest of a burst — after segments that filled, or that reached the floor
    /// before their age — is not a trickle, and is sealed at the idle time whatever its
    /// size rather than at its age (up to `segment_max_age` later: the end of a burst
    /// of 1,005,000 events landed ≈ 1 s after one of 1,000,000, BENCHMARKS.md sessions
    /// 17 and 18).
    pub(super) fn seal_due(&self, cfg: &SpoolConfig) -> bool {
        self.opened.elapsed() >= cfg.segment_max_age
            || (!cfg.segment_idle.is_zero()
                && (self.rows >= cfg.segment_idle_min_rows || self.after_busy)
                && self.written.elapsed() >= cfg.segment_idle)
    }
}

/// `Write::write_all` of `parts` in order, with vectored writes (one `writev` for the
/// whole round, unless the kernel takes less). `write_all_vectored` is not stable.
fn write_all_vectored(file: &mut File, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn rows_u32(rows: u64) -> u32 {
    u32::try_from(rows).unwrap_or(u32::MAX)
}
