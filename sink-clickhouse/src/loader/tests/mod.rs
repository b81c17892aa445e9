//! The loader's unit tests, against stores that fail, reject or take their time: the
//! test stores and spools, retries, concurrency and the drain here; the end-of-burst
//! cut in `cut`, rejected chunks and panics in `failures`, replays after a restart and
//! at the shutdown deadline in `replay`.

use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use arrow_array::{Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use super::*;
use crate::spool::SpoolConfig;

/// Fails the first `fail` writes (retryable or not), then records what it got.
struct Flaky {
    fail: usize,
    retryable: bool,
    calls: AtomicUsize,
    got: Mutex<Vec<(String, usize)>>,
}

impl Store for Flaky {
    fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
                return Err(StoreError {
                    retryable: self.retryable,
                    code: "27".into(),
                    message: "nope".into(),
                });
            }
            self.got
                .lock()
                .unwrap()
                .push((chunk.token.clone(), chunk.rows));
            Ok(())
        })
    }
}

async fn spool_with(dir: &std::path::Path, records: i32) -> Spool {
    let (spool, _) = Spool::open(spool_cfg(dir)).unwrap();
    append_segment(&spool, records).await;
    spool
}

fn spool_cfg(dir: &std::path::Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.join("spool"),
        quarantine_dir: dir.join("quarantine"),
        max_bytes: 1 << 30,
        segment_max_bytes: 1 << 30,
        segment_max_rows: 1 << 30,
        segment_max_age: Duration::from_secs(3600),
        segment_idle: Duration::ZERO,
        segment_idle_min_rows: 0,
        batch_ids_keep: 10,
        compress_above_bytes: 1 << 30,
        recycle: 2,
    }
}

/// Appends `records` records of 10 rows each and seals them as one segment.
async fn append_segment(spool: &Spool, records: i32) {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
    for i in 0..records {
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int32Array::from(vec![i; 10]))],
        )
        .unwrap();
        spool.append_events(b).await.unwrap();
    }
    spool.seal().await.unwrap();
}

fn loader(spool: &Spool, store: Arc<Flaky>, max_rows: usize) -> Loader {
    loader_of(spool, store, max_rows, 1)
}

fn loader_of(spool: &Spool, store: Arc<dyn Store>, max_rows: usize, concurrency: usize) -> Loader {
    Loader::new(
        spool.clone(),
        store,
        Arc::new(Metrics::new()),
        Arc::new(Health::default()),
        LoaderConfig {
            max_rows,
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            concurrency,
        },
    )
}

#[tokio::test]
async fn retries_then_deletes_with_stable_tokens_per_record_range() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 5).await;
    let store = Arc::new(Flaky {
        fail: 3,
        retryable: true,
        calls: 0.into(),
        got: Mutex::new(Vec::new()),
    });
    let l = loader(&spool, store.clone(), 20);
    assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
    let got = store.got.lock().unwrap().clone();
    let id = spool.spool_id().to_owned();
    // 5 records of 10 rows, chunks of >= 20 rows: records 0-1, 2-3, 4.
    assert_eq!(
        got,
        vec![
            (format!("{id}-1-0-1"), 20),
            (format!("{id}-1-2-3"), 20),
            (format!("{id}-1-4-4"), 10)
        ]
    );
    assert!(spool.sealed().unwrap().is_empty());
    assert!(l.health.failing_since_ms.load(Ordering::Relaxed) == 0);
}

/// Counts writes in flight; each takes a while.
struct Slow {
    now: AtomicUsize,
    most: AtomicUsize,
    got: Mutex<Vec<String>>,
}

fn slow() -> Slow {
    Slow {
        now: 0.into(),
        most: 0.into(),
        got: Mutex::new(Vec::new()),
    }
}

/// Drains `spool` into a [`Slow`] store: the most writes in flight at once, and the
/// tokens written, sorted.
async fn drained_by_slow(
    spool: &Spool,
    max_rows: usize,
    concurrency: usize,
) -> (usize, Vec<String>) {
    let store = Arc::new(slow());
    let l = loader_of(spool, store.clone(), max_rows, concurrency);
    assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
    let mut got = store.got.lock().unwrap().clone();
    got.sort();
    (store.most.load(Ordering::SeqCst), got)
}

impl Store for Slow {
    fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            self.got.lock().unwrap().push(chunk.token.clone());
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_load_concurrently_with_the_tokens_they_have_alone() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 2).await;
    // Two more segments of 2 records each.
    append_segment(&spool, 2).await;
    append_segment(&spool, 2).await;
    let segs: Vec<u64> = spool.sealed().unwrap().iter().map(|s| s.id).collect();
    assert_eq!(segs.len(), 3);
    let (most, got) = drained_by_slow(&spool, 10, 2).await;
    assert_eq!(most, 2);
    let id = spool.spool_id().to_owned();
    // One chunk per record (10 rows each), tokens by segment and record range.
    let mut want: Vec<String> = segs
        .iter()
        .flat_map(|s| (0..2).map(move |r| (*s, r)))
        .map(|(s, r)| format!("{id}-{s}-{r}-{r}"))
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert!(spool.sealed().unwrap().is_empty());
    assert_eq!(spool.bytes(), 0);
}

/// A segment larger than `max_rows` gets `concurrency` inserts at once, with the
/// tokens of the same cut loaded serially.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_segment_is_loaded_by_concurrent_inserts_with_serial_tokens() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 6).await;
    // A second segment: the first is not the last sealed, so it is not cut in halves.
    append_segment(&spool, 1).await;
    let seg = spool.sealed().unwrap()[0].id;
    let (most, got) = drained_by_slow(&spool, 20, 3).await;
    assert_eq!(most, 3);
    let id = spool.spool_id().to_owned();
    // 6 records of 10 rows, chunks of >= 20 rows: records 0-1, 2-3, 4-5; then the
    // second segment's one record.
    let mut want: Vec<String> = [(0, 1), (2, 3), (4, 5)]
        .iter()
        .map(|(a, b)| format!("{id}-{seg}-{a}-{b}"))
        .collect();
    want.push(format!("{id}-{}-0-0", seg + 1));
    want.sort();
    assert_eq!(got, want);
    assert!(spool.sealed().unwrap().is_empty());
}

#[tokio::test]
async fn drain_gives_up_at_the_deadline_and_keeps_the_segment() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 1).await;
    let store = Arc::new(Flaky {
        fail: usize::MAX,
        retryable: true,
        calls: 0.into(),
        got: Mutex::new(Vec::new()),
    });
    let l = loader(&spool, store, 10);
    assert!(!l.drain(Instant::now() + Duration::from_millis(200)).await);
    assert_eq!(spool.sealed().unwrap().len(), 1);
    assert!(l.health.failing_since_ms.load(Ordering::Relaxed) > 0);
}

/// A segment sealed while another loads starts as soon as a slot is free, not after
/// the pass that was under way (which would leave the second slot idle).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_sealed_during_a_load_starts_at_once() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 1).await;
    /// Each write takes 300 ms; counts writes in flight.
    struct Slower(Slow);
    impl Store for Slower {
        fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(async move {
                let n = self.0.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.0.most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                self.0.now.fetch_sub(1, Ordering::SeqCst);
                self.0.got.lock().unwrap().push(chunk.token.clone());
                Ok(())
            })
        }
    }
    let store = Arc::new(Slower(slow()));
    let l = Arc::new(loader_of(&spool, store.clone(), 10, 2));
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn({
        let l = l.clone();
        async move { l.run(stop_rx).await }
    });
    // The first segment's write is under way; seal a second one.
    for _ in 0..100 {
        if store.0.now.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        store.0.now.load(Ordering::SeqCst),
        1,
        "the first write started"
    );
    append_segment(&spool, 1).await;
    for _ in 0..200 {
        if spool.sealed().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send(true).unwrap();
    run.await.unwrap();
    assert_eq!(store.0.got.lock().unwrap().len(), 2);
    assert_eq!(
        store.0.most.load(Ordering::SeqCst),
        2,
        "both segments' writes overlapped"
    );
}

mod cut;
mod failures;
mod replay;
