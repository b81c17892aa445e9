//! Spool unit tests: group commit, sealing, recovery from torn and corrupted files,
//! recycled segment files.
//! Shared here: the test config, and helpers to write and read rows; the tests by
//! concern in `writing`, `sealing`, `recovery` and `recycling`.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use super::*;

mod recovery;
mod recycling;
mod sealing;
mod writing;

pub(super) fn cfg(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.join("spool"),
        quarantine_dir: dir.join("quarantine"),
        max_bytes: 1 << 30,
        segment_max_bytes: 1 << 30,
        segment_max_rows: 1 << 40,
        segment_max_age: Duration::from_secs(3600),
        segment_idle: Duration::ZERO,
        segment_idle_min_rows: 0,
        batch_ids_keep: 1000,
        compress_above_bytes: 0,
        recycle: 2,
    }
}

/// Sealing happens right after the replies of a round: poll briefly.
pub(super) async fn sealed_soon(spool: &Spool, n: usize) -> usize {
    for _ in 0..100 {
        if spool.sealed().unwrap().len() == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    spool.sealed().unwrap().len()
}

pub(super) fn batch(vals: &[i32]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vals.to_vec()))]).unwrap()
}

/// All values in all sealed segments, in order.
pub(super) fn read_all(spool: &Spool) -> Vec<i32> {
    let mut out = Vec::new();
    for s in spool.sealed().unwrap() {
        let mut r = SegmentReader::open(&s.path).unwrap().unwrap();
        while let Next::Record(rec) = r.next_record().unwrap() {
            for b in ipc::decode_compact(rec.ipc()).unwrap() {
                let a = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
                out.extend(a.values().iter().copied());
            }
        }
    }
    out
}

/// One request's checked rows, as the tracker routes hold them: `n` events of `site`.
pub(super) fn request_rows(site: &str, tag: usize, n: usize) -> Batcher {
    let mut b = round_batcher();
    for i in 0..n {
        let ev = ingest_core::Event {
            site_id: site.to_owned().into(),
            pathname: format!("/{tag}/{i}").into(),
            ..ingest_core::Event::default()
        };
        assert!(b.push(&ev, 0).is_none());
    }
    b
}
