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
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use ingest_core::Batcher;
use tokio::sync::{mpsc, oneshot};

use super::batch_ids::BatchIds;
use super::batch_ids::MAX_IDS_PER_REQUEST;
use super::open::{Open, RoundRecord};
use super::record::{RecordKind, MAX_IDS_PER_RECORD, SEGMENT_HEADER_LEN};
use super::{ipc, AppendError, Appended, BatchPart, Shared};

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
            let res = self.write_round(&RoundRecord {
                kind: *kind,
                ids: &refs,
                payload: payload.as_bytes(),
                rows,
                records,
            });
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

    /// Appends a round's record (its header, then its payload) to the open segment and
    /// fsyncs it.
    fn write_round(&mut self, record: &RoundRecord<'_>) -> io::Result<()> {
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
        let len = match o.append(record) {
            Ok(len) => len,
            Err(e) => {
                tracing::error!(error = %e, segment = o.id, "spool write failed; cutting the round and sealing");
                // Never appended to again: cut back to the last acknowledged record.
                if o.undo().is_err() {
                    // The failed round may be on disk whole, its requests answered with
                    // an error and its batch ids not remembered: the segment is left
                    // unsealed (not loaded), for the recovery at the next start to cut
                    // or keep the round and write its ids back.
                    self.shared.broken.store(true, Ordering::Relaxed);
                    self.open = None;
                } else {
                    self.seal_logged();
                }
                return Err(e);
            }
        };
        self.shared.bytes.fetch_add(len, Ordering::Relaxed);
        self.shared.written_bytes.fetch_add(len, Ordering::Relaxed);
        self.shared.rounds.fetch_add(1, Ordering::Relaxed);
        let since_open = self.shared.opened.elapsed().as_micros();
        self.shared.last_round_us.store(
            u64::try_from(since_open).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// Opens the next segment ([`Open::create`]), its id reserved on disk first.
    fn create(&mut self) -> io::Result<Open> {
        let id = self.next_id;
        if id >= self.reserved {
            let reserve = id + RESERVE_IDS;
            super::recover::write_next_segment(&self.shared.cfg.dir, reserve)?;
            self.reserved = reserve;
        }
        self.next_id += 1;
        let after_busy = self
            .last_busy
            .is_some_and(|t| t.elapsed() < self.shared.cfg.segment_max_age);
        let o = Open::create(&self.shared, id, after_busy)?;
        self.shared
            .bytes
            .fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
        Ok(o)
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
        o.cut_reused_tail()?;
        // The segment's batch ids durable in the batch-ids file before it can be
        // loaded and deleted (`batch_ids`).
        self.ids.sync()?;
        o.seal_file(&self.shared.cfg.dir)?;
        if o.records == 0 {
            self.shared.bytes.fetch_sub(o.len, Ordering::Relaxed);
        }
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
