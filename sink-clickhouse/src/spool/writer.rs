//! The group-commit writer: one thread, many waiting requests, one fsync per round.
//!
//! A round is everything queued when the writer comes back from the previous fsync:
//! the events of all waiting requests, posted batches included, become ONE record (one
//! Arrow IPC batch, LZ4-compressed only when the spool holds a backlog, see
//! [`super::Spool::compress_records`]; the posted batches' ids in its header); the
//! round is written with one `write` and one `fdatasync`, and only then is every
//! request of the round answered.
//!
//! Most requests' events arrive staged ([`super::Spool::stage`]): already appended to
//! the shared round batcher, with their waiters beside them, and a `Staged` message
//! only wakes the writer. The writer swaps that batcher (and takes its waiters) under
//! the lock at the start of each round, so the rows it writes are exactly those of the
//! waiters it answers. Events sent as a batch (`Events`: a full queue, a quota filter;
//! `Batch`: a request to `/v1/batches`) join the same record. (Until session 20 each
//! posted batch was a record of its own: its IPC schema, encode, decode and framing
//! paid per 100-event batch, which cost the sink more per event on the edge's path
//! than on `/e`; BENCHMARKS.md.)

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use ingest_core::Batcher;
use tokio::sync::{mpsc, oneshot};

use super::batch_ids::BatchIds;
use super::batch_ids::MAX_IDS_PER_REQUEST;
use super::record::{
    record_head, RecordKind, SegmentHeader, MAX_IDS_PER_RECORD, SEGMENT_HEADER_LEN,
};
use super::segment::segment_path;
use super::{fsync_dir, ipc, AppendError, Appended, BatchPart, Shared};

/// Stop adding to a round past this many bytes of input (bounds the round's buffer).
const ROUND_MAX_BYTES: usize = 32 << 20;

pub(super) enum Msg {
    Events {
        batch: RecordBatch,
        done: oneshot::Sender<Result<(), AppendError>>,
    },
    /// One request to `/v1/batches`: one part per batch id (one for `X-Batch-Id`).
    Batch {
        parts: Vec<BatchPart>,
        done: oneshot::Sender<Result<Vec<Appended>, AppendError>>,
    },
    /// Rows were staged ([`super::Spool::stage`]): a round should take them.
    Staged,
    Seal {
        done: oneshot::Sender<()>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
    /// Sent periodically so an idle open segment is sealed by age.
    Tick,
}

struct Open {
    id: u64,
    /// What its records' checksums start from ([`SegmentHeader::record_seed`]).
    seed: u32,
    file: File,
    len: u64,
    /// The file's length when it was taken from the recycled ones (0 for a new file):
    /// past `len`, up to it, are the bytes of the segment it held before.
    reused_len: u64,
    rows: u64,
    records: u32,
    opened: Instant,
    /// When the last round was written (fsynced) to it.
    written: Instant,
    /// Opened less than `segment_max_age` after a busy segment was sealed (see
    /// [`Writer::last_busy`]): it continues a burst, and its idle seal needs no row
    /// floor.
    after_busy: bool,
}

impl Open {
    /// At its size limit, in rows or bytes.
    fn full(&self, cfg: &super::SpoolConfig) -> bool {
        self.len >= cfg.segment_max_bytes || self.rows >= cfg.segment_max_rows
    }

    /// Sealed now, it says the traffic is no trickle: it filled, or it reached the
    /// idle seal's row floor (single events at tens of thousands a second fill no
    /// segment before its age, yet are no trickle). See [`Writer::last_busy`].
    fn busy(&self, cfg: &super::SpoolConfig) -> bool {
        self.full(cfg) || self.rows >= cfg.segment_idle_min_rows
    }

    /// Old enough, or idle long enough with rows enough, to be sealed now. The row
    /// floor (`segment_idle_min_rows`) keeps a trickle of events in few, large inserts;
    /// the rest of a burst — after segments that filled, or that reached the floor
    /// before their age — is not a trickle, and is sealed at the idle time whatever its
    /// size rather than at its age (up to `segment_max_age` later: the end of a burst
    /// of 1,005,000 events landed ≈ 1 s after one of 1,000,000, BENCHMARKS.md sessions
    /// 17 and 18).
    fn seal_due(&self, cfg: &super::SpoolConfig) -> bool {
        self.opened.elapsed() >= cfg.segment_max_age
            || (!cfg.segment_idle.is_zero()
                && (self.rows >= cfg.segment_idle_min_rows || self.after_busy)
                && self.written.elapsed() >= cfg.segment_idle)
    }
}

/// Segment ids are reserved this many at a time ([`super::recover::write_next_segment`]).
const RESERVE_IDS: u64 = 1024;

struct Writer {
    shared: Arc<Shared>,
    ids: BatchIds,
    next_id: u64,
    /// Ids below this are reserved on disk; `next_id` may not pass it unreserved.
    reserved: u64,
    open: Option<Open>,
    /// Swapped with the staged rows' batcher at each round: the requests append into
    /// one while the writer flushes the other, and both keep their capacity.
    spare: Batcher,
    /// When a busy segment ([`Open::busy`]) was last sealed.
    last_busy: Option<Instant>,
}

pub(super) fn start(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Msg>,
    ids: BatchIds,
    next_id: u64,
    ticks: mpsc::Sender<Msg>,
) -> io::Result<()> {
    let mut every = shared.cfg.segment_max_age / 4;
    if !shared.cfg.segment_idle.is_zero() {
        every = every.min(shared.cfg.segment_idle / 2);
    }
    let every = every.clamp(Duration::from_millis(10), Duration::from_millis(250));
    let idle = shared.cfg.segment_idle;
    let clock = shared.clone();
    tokio::spawn(async move {
        loop {
            // A tick every `every`, or sooner: when the last round written turns
            // `segment_idle` old, so that the idle seal at the end of a burst comes on
            // time rather than up to a tick late (25–37.5 ms after the last write with
            // the defaults, where 25 ms is meant). Under load a round comes every few
            // ms and the ticks stay `every` apart.
            tokio::time::sleep(tick_wait(every, idle, clock.quiet_for())).await;
            if ticks.send(Msg::Tick).await.is_err() {
                return;
            }
        }
    });
    let mut w = Writer {
        shared,
        ids,
        next_id,
        reserved: 0,
        open: None,
        spare: super::round_batcher(),
        last_busy: None,
    };
    std::thread::Builder::new()
        .name("spool-writer".into())
        .spawn(move || {
            loop {
                let Some(first) = rx.blocking_recv() else {
                    w.seal_logged();
                    return;
                };
                if let Msg::Tick = first {
                    if w.open.as_ref().is_some_and(|o| o.seal_due(&w.shared.cfg)) {
                        w.seal_logged();
                    }
                    continue;
                }
                // The first message's ids count too: a record holds at most
                // `MAX_IDS_PER_RECORD`, and a request brings up to
                // `MAX_IDS_PER_REQUEST`, so the round stops taking requests that far
                // short of it.
                let mut ids = ids_of(&first);
                let mut round = vec![first];
                let mut size = 0usize;
                while size < ROUND_MAX_BYTES && ids + MAX_IDS_PER_REQUEST <= MAX_IDS_PER_RECORD {
                    match rx.try_recv() {
                        Ok(m) => {
                            ids += ids_of(&m);
                            size += match &m {
                                Msg::Events { batch, .. } => batch_bytes(batch),
                                Msg::Batch { parts, .. } => {
                                    parts.iter().flat_map(|p| &p.batches).map(batch_bytes).sum()
                                }
                                _ => 0,
                            };
                            round.push(m);
                        }
                        Err(_) => break,
                    }
                }
                if w.round(round) {
                    rx.close();
                    // Anything queued after Close is refused.
                    while let Ok(m) = rx.try_recv() {
                        drop(m);
                    }
                    return;
                }
            }
        })?;
    Ok(())
}

/// The batch ids a message brings to a round.
fn ids_of(m: &Msg) -> usize {
    match m {
        Msg::Batch { parts, .. } => parts.iter().filter(|p| p.id.is_some()).count(),
        _ => 0,
    }
}

/// How long the writer's clock waits before its next tick: `every`, or less when the
/// spool, quiet for `quiet`, would otherwise pass its idle seal time (`idle`) asleep.
fn tick_wait(every: Duration, idle: Duration, quiet: Duration) -> Duration {
    if idle.is_zero() || quiet >= idle {
        every
    } else {
        every.min(idle - quiet)
    }
}

impl Writer {
    /// Runs one round; returns true when a `Close` was processed.
    fn round(&mut self, round: Vec<Msg>) -> bool {
        let mut events = Vec::new();
        let mut event_waiters = Vec::new();
        // The round's record: its kind and payload (written with its header, not copied
        // into one buffer with it; the header is made once the segment it goes to is
        // known, its checksum bound to that segment).
        let mut record: Option<(RecordKind, ipc::Payload)> = None;
        // Posted requests with their outcome per part, answered after the round's fsync
        // (or with its error). A part whose id an earlier part of this round carries is
        // "already stored" only once that part is, so it waits for the fsync too.
        let mut batch_waiters = Vec::new();
        let mut new_ids: Vec<Vec<u8>> = Vec::new();
        let mut in_round: HashSet<Vec<u8>> = HashSet::new();
        let mut controls = Vec::new();
        for m in round {
            match m {
                Msg::Events { batch, done } => {
                    events.push(batch);
                    event_waiters.push(done);
                }
                Msg::Batch { parts, done } => {
                    let mut outcome = Vec::with_capacity(parts.len());
                    let mut waits = false;
                    for BatchPart { id, batches } in parts {
                        if id.as_deref().is_some_and(|id| self.ids.contains(id)) {
                            outcome.push(Appended::AlreadyStored);
                            continue;
                        }
                        waits = true;
                        if id.as_deref().is_some_and(|id| in_round.contains(id)) {
                            outcome.push(Appended::AlreadyStored);
                            continue;
                        }
                        events.extend(batches.into_iter().filter(|b| b.num_rows() > 0));
                        if let Some(id) = id {
                            in_round.insert(id.clone());
                            new_ids.push(id);
                        }
                        outcome.push(Appended::Stored);
                    }
                    if waits {
                        batch_waiters.push((done, outcome));
                    } else {
                        // Every part stored by an earlier round, already fsynced.
                        let _ = done.send(Ok(outcome));
                    }
                }
                Msg::Seal { done } => controls.push((done, false)),
                Msg::Close { done } => controls.push((done, true)),
                Msg::Staged | Msg::Tick => {}
            }
        }
        // The staged rows, taken with their waiters; when closing, nothing can be
        // staged after this (a request then sends a batch, which the closed queue
        // refuses).
        {
            let closing = controls.iter().any(|(_, close)| *close);
            let mut st = self.shared.staged.lock().expect("staged rows");
            st.closed |= closing;
            if !st.rows.is_empty() {
                std::mem::swap(&mut st.rows, &mut self.spare);
                event_waiters.append(&mut st.waiters);
            }
        }
        if let Some(batch) = self.spare.flush() {
            events.push(batch);
        }
        let rows: u64 = events.iter().map(|b| b.num_rows() as u64).sum();
        let mut records = 0u32;
        if !events.is_empty() {
            let joined = if events.len() == 1 {
                Ok(events.pop().expect("one"))
            } else {
                arrow_select::concat::concat_batches(&events[0].schema(), &events)
            };
            let compress = self.shared.compress_records();
            match joined.and_then(|b| ipc::encode_payload(&[b], compress)) {
                Ok(payload) => {
                    let kind = if new_ids.is_empty() {
                        RecordKind::Events
                    } else {
                        RecordKind::RoundWithIds
                    };
                    record = Some((kind, payload));
                    records += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, "encoding a group-commit round failed");
                    let e = AppendError::Io(e.to_string());
                    for d in event_waiters.drain(..) {
                        let _ = d.send(Err(e.clone()));
                    }
                    for (d, _) in batch_waiters.drain(..) {
                        let _ = d.send(Err(e.clone()));
                    }
                    new_ids.clear();
                }
            }
        } else {
            // Only posted batches without rows (the handler answers those itself, so
            // none reach here through `/v1/batches`): nothing is written, and their ids
            // are not remembered — a later batch with rows under the same id is stored.
            for (d, outcome) in batch_waiters.drain(..) {
                let _ = d.send(Ok(outcome));
            }
            new_ids.clear();
        }
        if let Some((kind, payload)) = &record {
            let refs: Vec<&[u8]> = new_ids.iter().map(Vec::as_slice).collect();
            let res = self.write_round(*kind, &refs, payload.as_bytes(), rows, records);
            if res.is_ok() {
                for id in &refs {
                    self.ids.remember(id);
                }
                // Durable already in the record's header; fsynced in the batch-ids file
                // at the seal. A failed append is not the requests' failure (their rows
                // are stored): the seal rewrites the file from memory, or leaves the
                // segment unsealed for the recovery to write the ids back.
                if let Err(e) = self.ids.append(&refs) {
                    tracing::error!(error = %e, "appending to the batch-ids file failed");
                }
            }
            let err = res.err().map(|e| AppendError::Io(e.to_string()));
            for d in event_waiters {
                let _ = d.send(err.clone().map_or(Ok(()), Err));
            }
            for (d, outcome) in batch_waiters {
                let _ = d.send(err.clone().map_or(Ok(outcome), Err));
            }
            // `seal_due` is asked here too: under a steady load the ticks arrive inside
            // rounds, where they are not looked at.
            let cfg = &self.shared.cfg;
            if self
                .open
                .as_ref()
                .is_some_and(|o| o.full(cfg) || o.seal_due(cfg))
            {
                self.seal_logged();
            }
        }
        let mut close = false;
        for (done, is_close) in controls {
            self.seal_logged();
            close |= is_close;
            let _ = done.send(());
        }
        close
    }

    /// Appends a round's record (its header, then `payload`) to the open segment and
    /// fsyncs it.
    fn write_round(
        &mut self,
        kind: RecordKind,
        ids: &[&[u8]],
        payload: &[u8],
        rows: u64,
        records: u32,
    ) -> io::Result<()> {
        if self.open.is_none() {
            // A failed state left a segment unsealed (its ids, or for a reused file
            // the bytes past its records, for the recovery at the next start): no
            // segment is opened after it, which that recovery would find newer and
            // take the unsealed one for damage in the middle of the spool.
            if self.shared.broken.load(Ordering::Relaxed) {
                return Err(io::Error::other("the spool is in a failed state"));
            }
            self.open = Some(self.create()?);
        }
        let o = self.open.as_mut().expect("just opened");
        let head = record_head(o.seed, kind, rows_u32(rows), ids, payload);
        let parts = [&head[..], payload];
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let res = write_all_vectored(&mut o.file, &parts).and_then(|()| o.file.sync_data());
        if let Err(e) = res {
            tracing::error!(error = %e, segment = o.id, "spool write failed; cutting the round and sealing");
            // After a failed fsync the page cache state is unknown: cut back to the last
            // acknowledged length and never append to this file again.
            let undo = o.file.set_len(o.len).and_then(|()| o.file.sync_all());
            if undo.is_err() {
                // The failed round may be on disk whole, its requests answered with an
                // error and its batch ids not remembered: the segment is left unsealed
                // (not loaded), for the recovery at the next start to cut or keep the
                // round and write its ids back.
                self.shared.broken.store(true, Ordering::Relaxed);
                self.open = None;
            } else {
                self.seal_logged();
            }
            return Err(e);
        }
        o.len += len as u64;
        o.rows += rows;
        o.records += records;
        o.written = Instant::now();
        self.shared.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.shared
            .written_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        self.shared.rounds.fetch_add(1, Ordering::Relaxed);
        let since_open = self.shared.opened.elapsed().as_micros();
        self.shared.last_round_us.store(
            u64::try_from(since_open).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        Ok(())
    }

    fn create(&mut self) -> io::Result<Open> {
        let id = self.next_id;
        if id >= self.reserved {
            let reserve = id + RESERVE_IDS;
            super::recover::write_next_segment(&self.shared.cfg.dir, reserve)?;
            self.reserved = reserve;
        }
        self.next_id += 1;
        let dir = &self.shared.cfg.dir;
        let path = segment_path(dir, id, false);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as i64;
        let header = SegmentHeader::new(id, now_ms);
        // A loaded segment's file, when one is kept (`Spool::delete`): written over,
        // its pages already in the page cache and its blocks allocated, it costs about
        // half the CPU of a new file (BENCHMARKS.md, session 26). Its header is
        // rewritten and made durable before it takes the new name, so an `.open` file
        // always names the segment its header does; the records it held do not verify
        // as this segment's (`record`), and the seal cuts them off. Should reusing it
        // fail, it is removed (under either name) and a new file made instead.
        let reused = self.shared.take_recycled().and_then(|free| {
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
        self.shared
            .bytes
            .fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
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
            after_busy: self
                .last_busy
                .is_some_and(|t| t.elapsed() < self.shared.cfg.segment_max_age),
        })
    }

    fn seal_logged(&mut self) {
        if let Err(e) = self.seal() {
            tracing::error!(error = %e, "sealing a spool segment failed");
            self.shared.broken.store(true, Ordering::Relaxed);
        }
    }

    /// Renames the open segment to sealed (or removes it when empty), fsyncs the dir.
    /// When the batch-ids file cannot be made durable, the segment is left as it is
    /// (`.open`: not loaded; the recovery at the next start writes its ids back) and
    /// the next round opens a new one.
    fn seal(&mut self) -> io::Result<()> {
        let Some(o) = self.open.take() else {
            return Ok(());
        };
        // A reused file ends where its last record does: what the segment it held
        // before left past that is cut off (and the cut made durable) before the
        // segment can be loaded, whose reader reads to the end of the file.
        if o.reused_len > o.len {
            o.file.set_len(o.len)?;
            o.file.sync_data()?;
        }
        // The segment's batch ids durable in the batch-ids file before it can be
        // loaded and deleted (`batch_ids`).
        self.ids.sync()?;
        let dir = &self.shared.cfg.dir;
        let from = segment_path(dir, o.id, false);
        if o.records == 0 {
            fs::remove_file(&from)?;
            self.shared.bytes.fetch_sub(o.len, Ordering::Relaxed);
        } else {
            fs::rename(&from, segment_path(dir, o.id, true))?;
        }
        fsync_dir(dir)?;
        if o.busy(&self.shared.cfg) {
            self.last_busy = Some(Instant::now());
        }
        if o.records > 0 {
            tracing::debug!(
                segment = o.id,
                rows = o.rows,
                bytes = o.len,
                "spool segment sealed"
            );
            self.shared.sealed.notify_one();
        }
        Ok(())
    }
}

/// The bytes of `b`'s rows. Not `get_array_memory_size`: a batch decoded from a posted
/// IPC stream has every column sliced from one body buffer, and that counts the whole
/// buffer's capacity for each of them (≈ 80 times the batch), which would end a round
/// after its first large posted batch.
fn batch_bytes(b: &RecordBatch) -> usize {
    b.columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock ticks every `every`, but wakes the writer when the segment turns idle
    /// rather than up to a tick after.
    #[test]
    fn the_clock_wakes_the_writer_when_the_idle_time_is_up() {
        let ms = Duration::from_millis;
        let (every, idle) = (ms(12), ms(25));
        assert_eq!(tick_wait(every, idle, ms(0)), every, "a round just written");
        assert_eq!(
            tick_wait(every, idle, ms(20)),
            ms(5),
            "5 ms before the idle seal"
        );
        assert_eq!(
            tick_wait(every, idle, ms(25)),
            every,
            "idle already: sealed"
        );
        assert_eq!(
            tick_wait(every, idle, ms(900)),
            every,
            "nothing written for long"
        );
        assert_eq!(
            tick_wait(every, Duration::ZERO, ms(3)),
            every,
            "no idle seal"
        );
    }

    /// A posted batch's size counts its rows once, not its shared body per column.
    #[test]
    fn a_decoded_batch_counts_its_rows_not_its_shared_body() {
        let events: Vec<ingest_core::Event> = (0..1_000)
            .map(|i| ingest_core::Event {
                site_id: format!("s{}.example", i % 7).into(),
                pathname: format!("/p/{i}").into(),
                ..Default::default()
            })
            .collect();
        let built = ingest_core::events_to_batch(&events);
        let stream = ingest_core::write_ipc(std::slice::from_ref(&built)).unwrap();
        let decoded = ingest_core::read_ipc(&stream, 1_000).unwrap().remove(0);
        let (own, shared) = (batch_bytes(&built), batch_bytes(&decoded));
        assert!(shared <= own * 2 && own <= shared * 2, "{own} vs {shared}");
        // What `get_array_memory_size` says of the decoded batch: its body per column.
        assert!(decoded.get_array_memory_size() > shared * 10);
    }
}
