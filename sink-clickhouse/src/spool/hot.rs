//! Segments still in memory: the loader's shortcut past reading back what the writer
//! has just written.
//!
//! The writer encodes each group-commit round as Arrow IPC, writes and fsyncs it, and
//! the loader later reads the segment back and decodes it again — on a busy sink,
//! seconds later, the same rows it had in memory. So the writer also keeps each
//! record's batch (the arrays are shared, nothing is copied) while there is room
//! under `--spool-memory-bytes`, and at sealing hands a segment whose every record it
//! kept to this map; the loader takes it from here instead of decoding the file.
//!
//! Nothing about durability changes: a record is on disk before its requests are
//! answered whether or not it is also kept here, and the file is deleted only after
//! the load, as before. A segment missing here for any reason — posted `/v1/batches`
//! records (kept as their client's IPC bytes, never decoded by the writer), no room,
//! a restart — is read from its file. The loader cuts both into the same chunks with
//! the same dedup tokens ([`crate::loader`]), so a load that stops half-way and is
//! replayed from the file is deduplicated as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use arrow_array::RecordBatch;

/// A sealed segment's records, one batch per record, in record order.
#[derive(Debug)]
pub struct HotSegment {
    /// When the segment was created (Unix ms), as in its file header.
    pub created_at_ms: i64,
    /// The batch of every record, in order.
    pub batches: Vec<RecordBatch>,
}

/// The sealed segments kept in memory, and the bytes held (also by the writer's open
/// segment), never more than the cap.
#[derive(Debug, Default)]
pub(crate) struct Hot {
    segs: Mutex<HashMap<u64, HotSegment>>,
    bytes: AtomicUsize,
}

impl Hot {
    /// Counts `n` more bytes held if that stays within `cap`; false (nothing counted)
    /// otherwise.
    pub(crate) fn reserve(&self, n: usize, cap: usize) -> bool {
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                b.checked_add(n).filter(|&t| t <= cap)
            })
            .is_ok()
    }

    /// Stops counting `n` bytes.
    pub(crate) fn release(&self, n: usize) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Makes segment `id` available to [`Hot::take`] (its bytes stay counted).
    pub(crate) fn publish(&self, id: u64, seg: HotSegment) {
        self.segs.lock().expect("hot lock").insert(id, seg);
    }

    /// Takes segment `id` out, if kept, and stops counting its bytes: from here the
    /// caller holds it, as it would hold the batches decoded from the file.
    pub(crate) fn take(&self, id: u64) -> Option<HotSegment> {
        let seg = self.segs.lock().expect("hot lock").remove(&id)?;
        self.release(batches_bytes(&seg.batches));
        Some(seg)
    }

    /// Segments kept.
    pub(crate) fn len(&self) -> usize {
        self.segs.lock().expect("hot lock").len()
    }
}

/// The memory a record's batch is counted for.
pub(crate) fn batch_bytes(b: &RecordBatch) -> usize {
    b.get_array_memory_size()
}

fn batches_bytes(b: &[RecordBatch]) -> usize {
    b.iter().map(batch_bytes).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_stops_at_the_cap_and_take_releases() {
        let hot = Hot::default();
        assert!(hot.reserve(60, 100));
        assert!(!hot.reserve(41, 100), "past the cap");
        assert_eq!(hot.bytes(), 60);
        assert!(hot.reserve(40, 100));
        hot.release(40);
        let b = ingest_core::events_to_batch(&[ingest_core::Event::default()]);
        let n = batch_bytes(&b);
        assert!(hot.reserve(n, usize::MAX));
        hot.publish(
            7,
            HotSegment {
                created_at_ms: 1,
                batches: vec![b],
            },
        );
        assert_eq!(hot.len(), 1);
        assert!(hot.take(8).is_none());
        let seg = hot.take(7).expect("kept");
        assert_eq!((seg.created_at_ms, seg.batches.len()), (1, 1));
        assert_eq!(hot.bytes(), 60, "the taken segment's bytes are released");
        assert!(hot.take(7).is_none() && hot.len() == 0);
    }
}
