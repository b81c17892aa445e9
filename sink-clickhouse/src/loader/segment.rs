//! One sealed segment → its chunks: read in order off a blocking thread, written with
//! up to `--load-concurrency` inserts in flight, the segment deleted (or quarantined)
//! once every chunk is in.

use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use tokio::sync::watch;

use super::{Chunk, Loader, SegmentEnd};
use crate::spool::{ipc, Next, Sealed, SegmentReader};

/// The next chunk of a segment, as the loader reads it.
enum Read {
    Chunk(Chunk),
    /// A damaged record: the segment goes to quarantine.
    Bad(String),
    /// Reading panicked: the segment is kept and tried again.
    Failed,
}

impl Loader {
    /// Loads one segment: its chunks are read in order, each as soon as an insert of
    /// this segment may start, and written with up to `concurrency` inserts in flight
    /// across the whole loader (the last segment of a burst, cut in halves, uses two).
    /// The segment is deleted once every chunk is in or quarantined.
    pub(super) async fn load_segment(
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
                let pause = Instant::now() + Duration::from_secs(1);
                tokio::time::sleep_until(deadline.map_or(pause, |d| d.min(pause)).into()).await;
                return SegmentEnd::Done;
            }
        };
        let created = reader.header.created_at_ms;
        let Some(max_rows) = self.max_rows_of(seg).await else {
            // The segment stays in the spool and is tried again on the next pass.
            let pause = Instant::now() + Duration::from_secs(1);
            tokio::time::sleep_until(deadline.map_or(pause, |d| d.min(pause)).into()).await;
            return SegmentEnd::Done;
        };
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
                let mut read =
                    std::pin::pin!(self.next_chunk(seg, created, max_rows, cut, reader.take()));
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

    /// The rows per chunk of `seg`: `--insert-rows`, or for a segment an earlier run
    /// wrote, that run's (`Spool::insert_rows`: recorded per run, not per segment, so
    /// that a segment loaded without a crash costs no fsync for it). Settled once, off
    /// the async threads, before this loader reads its first chunk. `None` while the
    /// record cannot be read (nothing is cut then: a guess could cut a segment loaded in
    /// part differently, and store its rows twice).
    async fn max_rows_of(&self, seg: &Sealed) -> Option<usize> {
        let rows = self.cfg.max_rows;
        let settled = self
            .insert_rows
            .get_or_try_init(|| async {
                let spool = self.spool.clone();
                match tokio::task::spawn_blocking(move || spool.insert_rows(rows)).await {
                    Ok(Ok(settled)) => Ok(settled),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "reading the spool's insert-rows file failed; will retry");
                        Err(())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "settling --insert-rows panicked; will retry");
                        Err(())
                    }
                }
            })
            .await
            .ok()?;
        Some(settled.of(seg.id))
    }

    /// The next chunk of `seg` from `reader` (`None`: the stream has ended).
    async fn next_chunk(
        &self,
        seg: &Sealed,
        created: i64,
        max_rows: usize,
        cut: Option<u32>,
        reader: Option<SegmentReader>,
    ) -> Option<(Read, Option<SegmentReader>)> {
        let mut reader = reader?;
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
}

type ChunkParts = (u32, u32, Vec<RecordBatch>, usize);

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
