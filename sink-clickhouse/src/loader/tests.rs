//! The loader's unit tests, against stores that fail, reject or take their time.

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

/// Appends one segment of `records` records of `rows` rows each.
async fn append_rows(spool: &Spool, records: usize, rows: usize) {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
    for _ in 0..records {
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int32Array::from(vec![7; rows]))],
        )
        .unwrap();
        spool.append_events(b).await.unwrap();
    }
    spool.seal().await.unwrap();
}

fn cut_file(spool: &Spool, seg: u64) -> std::path::PathBuf {
    spool.config().dir.join(format!("{seg:020}.cut"))
}

/// The end of a burst: a segment alone in a quiet spool is cut where half its rows
/// are behind, both halves inserted at once; the cut is on disk during the load and
/// gone with the segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_segment_is_cut_in_halves_loaded_at_once() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 0).await;
    let half = usize::try_from(SPLIT_MIN_ROWS).unwrap() / 4;
    append_rows(&spool, 8, half).await;
    let seg = spool.sealed().unwrap()[0].id;
    /// Records whether the cut file exists while writing.
    struct Seen {
        slow: Slow,
        cut: std::path::PathBuf,
        cut_seen: AtomicUsize,
    }
    impl Store for Seen {
        fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
            if self.cut.exists() {
                self.cut_seen.fetch_add(1, Ordering::SeqCst);
            }
            self.slow.write(chunk)
        }
    }
    let store = Arc::new(Seen {
        slow: slow(),
        cut: cut_file(&spool, seg),
        cut_seen: 0.into(),
    });
    let l = loader_of(&spool, store.clone(), 1_000_000, 2);
    assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
    assert_eq!(store.slow.most.load(Ordering::SeqCst), 2);
    assert_eq!(store.cut_seen.load(Ordering::SeqCst), 2);
    let mut got = store.slow.got.lock().unwrap().clone();
    got.sort();
    let id = spool.spool_id().to_owned();
    assert_eq!(
        got,
        vec![format!("{id}-{seg}-0-3"), format!("{id}-{seg}-4-7")]
    );
    assert!(spool.sealed().unwrap().is_empty());
    assert!(!cut_file(&spool, seg).exists());
}

/// Too small to be worth a second insert, or loaded with one insert at a time: whole.
#[tokio::test]
async fn small_segments_and_single_inserts_are_not_cut() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 0).await;
    let min = usize::try_from(SPLIT_MIN_ROWS).unwrap();
    // Halves one row short of the minimum; then big enough, but one insert at a time.
    for (rows, concurrency) in [(min - 1, 2), (min, 1)] {
        append_rows(&spool, 2, rows).await;
        let seg = spool.sealed().unwrap()[0].id;
        let store = Arc::new(Flaky {
            fail: 0,
            retryable: true,
            calls: 0.into(),
            got: Mutex::new(Vec::new()),
        });
        let l = loader_of(&spool, store.clone(), 1_000_000, concurrency);
        assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
        let id = spool.spool_id().to_owned();
        assert_eq!(
            store.got.lock().unwrap().clone(),
            vec![(format!("{id}-{seg}-0-1"), 2 * rows)]
        );
    }
}

/// A cut recorded on an earlier pass is kept whatever this pass would decide: the
/// replay after a crash gets the tokens the first pass used.
#[tokio::test]
async fn a_recorded_cut_is_kept_on_a_replay() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 6).await;
    append_segment(&spool, 1).await;
    let segs = spool.sealed().unwrap();
    spool.write_cut(&segs[0], 2).unwrap();
    assert_eq!(spool.read_cut(&segs[0]).unwrap(), Some(2));
    let store = Arc::new(Flaky {
        fail: 0,
        retryable: true,
        calls: 0.into(),
        got: Mutex::new(Vec::new()),
    });
    // Not alone, one insert at a time: no new cut, but the recorded one holds.
    let l = loader_of(&spool, store.clone(), 1_000_000, 1);
    assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
    let id = spool.spool_id().to_owned();
    let s = segs[0].id;
    assert_eq!(
        store.got.lock().unwrap().clone(),
        vec![
            (format!("{id}-{s}-0-1"), 20),
            (format!("{id}-{s}-2-5"), 40),
            (format!("{id}-{}-0-0", s + 1), 10)
        ]
    );
    assert!(!cut_file(&spool, s).exists());
}

#[tokio::test]
async fn a_rejected_chunk_goes_to_quarantine_and_the_rest_is_loaded() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 2).await;
    let store = Arc::new(Flaky {
        fail: 1,
        retryable: false,
        calls: 0.into(),
        got: Mutex::new(Vec::new()),
    });
    let l = loader(&spool, store.clone(), 10);
    assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
    assert_eq!(store.got.lock().unwrap().len(), 1);
    let q: Vec<_> = std::fs::read_dir(d.path().join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let arrows = q
        .iter()
        .find(|n| n.ends_with(".arrows"))
        .expect("quarantined chunk");
    let bytes = std::fs::read(d.path().join("quarantine").join(arrows)).unwrap();
    assert_eq!(
        ipc::decode(&bytes)
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        10
    );
    assert_eq!(l.metrics.quarantined.get(), 1);
}

/// A rejected chunk that cannot be written to quarantine (here the quarantine folder
/// is a file) is not dropped: its segment stays, and once quarantine can be written
/// the chunk goes there and the segment is deleted.
#[tokio::test]
async fn a_rejected_chunk_that_cannot_be_quarantined_keeps_its_segment() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 1).await;
    let q = d.path().join("quarantine");
    std::fs::remove_dir(&q).unwrap();
    std::fs::write(&q, b"not a folder").unwrap();
    let store = Arc::new(Flaky {
        fail: usize::MAX,
        retryable: false,
        calls: 0.into(),
        got: Mutex::new(Vec::new()),
    });
    let l = loader(&spool, store.clone(), 10);
    assert!(!l.drain(Instant::now() + Duration::from_millis(300)).await);
    assert_eq!(spool.sealed().unwrap().len(), 1, "the segment stays");
    assert!(store.calls.load(Ordering::SeqCst) > 1, "tried again");
    assert_eq!(l.metrics.quarantined.get(), 0);
    std::fs::remove_file(&q).unwrap();
    std::fs::create_dir(&q).unwrap();
    assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
    assert!(spool.sealed().unwrap().is_empty());
    assert_eq!(l.metrics.quarantined.get(), 1);
    let kept = std::fs::read_dir(&q).unwrap().count();
    assert_eq!(kept, 2, "the chunk and its reason");
}

/// A store that panics: the chunk is quarantined and counted, and the loader goes on.
#[tokio::test]
async fn a_panic_writing_a_chunk_quarantines_it_and_the_loader_goes_on() {
    struct Panics;
    impl Store for Panics {
        fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(async move {
                if chunk.first == 0 {
                    panic!("an encoder bug");
                }
                Ok(())
            })
        }
    }
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 2).await;
    let l = loader_of(&spool, Arc::new(Panics), 10, 1);
    assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
    assert_eq!(l.metrics.panics.get(), 1);
    assert_eq!(l.metrics.quarantined.get(), 1);
    assert_eq!(
        l.metrics.loaded_rows.get(),
        10,
        "the second chunk is loaded"
    );
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

/// Records the record range of every write as it starts; the first `ok` succeed, the
/// rest fail (retryably).
struct Ranges {
    ok: usize,
    got: Mutex<Vec<(u64, u32, u32)>>,
}

fn ranges(ok: usize) -> Arc<Ranges> {
    Arc::new(Ranges {
        ok,
        got: Mutex::new(Vec::new()),
    })
}

impl Store for Ranges {
    fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut got = self.got.lock().unwrap();
            got.push((chunk.segment, chunk.first, chunk.last));
            if got.len() <= self.ok {
                return Ok(());
            }
            Err(StoreError {
                retryable: true,
                code: "209".into(),
                message: "timeout".into(),
            })
        })
    }
}

/// A segment loaded in part, then replayed after restarts with other `--insert-rows`,
/// is cut as its first attempt cut it: the chunk already written comes again with its
/// token (its Parquet file's name), not as part of other chunks. Segments written after
/// a restart are cut with that run's value.
#[tokio::test]
async fn a_restart_with_another_insert_rows_replays_a_segment_as_it_was_cut() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 6).await;
    append_segment(&spool, 1).await;
    let (s, one) = (spool.sealed().unwrap()[0].id, spool.sealed().unwrap()[1].id);
    // First run, chunks of 20 rows: records 0-1 written, 2-3 failing until the deadline.
    let first = ranges(1);
    let l = loader_of(&spool, first.clone(), 20, 1);
    assert!(!l.drain(Instant::now() + Duration::from_millis(300)).await);
    let mut tried = first.got.lock().unwrap().clone();
    tried.dedup();
    assert_eq!(tried, [(s, 0, 1), (s, 2, 3)]);
    drop(l);
    spool.close().await;
    drop(spool);
    // Second run, 30 rows: it only writes a segment (cut by 30 from now on).
    let (spool, _) = Spool::open(spool_cfg(d.path())).unwrap();
    assert_eq!(spool.insert_rows(30).unwrap().of(s), 20);
    append_segment(&spool, 6).await;
    let thirty = spool.sealed().unwrap()[2].id;
    spool.close().await;
    drop(spool);
    // Third run, a million rows: every segment as its run cuts it, its own whole.
    let (spool, _) = Spool::open(spool_cfg(d.path())).unwrap();
    append_segment(&spool, 6).await;
    let million = spool.sealed().unwrap()[3].id;
    let third = ranges(usize::MAX);
    let l = loader_of(&spool, third.clone(), 1_000_000, 1);
    assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
    assert_eq!(
        third.got.lock().unwrap().clone(),
        [
            (s, 0, 1),
            (s, 2, 3),
            (s, 4, 5),
            (one, 0, 0),
            (thirty, 0, 2),
            (thirty, 3, 5),
            (million, 0, 5)
        ]
    );
    // One line per run's value, in the order of the runs.
    let file = std::fs::read_to_string(spool.config().dir.join("insert-rows")).unwrap();
    let rows: Vec<&str> = file.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(rows, ["20", "30", "1000000"]);
}

/// At the drain's deadline an insert in flight is dropped, not awaited: the drain
/// returns on time, the segment stays, and the next start writes the chunk again with
/// the same token.
#[tokio::test]
async fn drain_abandons_an_insert_in_flight_at_the_deadline() {
    /// Every write takes 5 s.
    struct Stuck(Mutex<Vec<String>>);
    impl Store for Stuck {
        fn write<'a>(&'a self, chunk: &'a Chunk) -> BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(async move {
                self.0.lock().unwrap().push(chunk.token.clone());
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
        }
    }
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 2).await;
    let stuck = Arc::new(Stuck(Mutex::new(Vec::new())));
    let l = loader_of(&spool, stuck.clone(), 10, 1);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_millis(200);
    assert!(!l.drain(deadline).await);
    let late = Instant::now().saturating_duration_since(deadline);
    assert!(
        // Without the cut, the write's 5 s; with it, ≈ 0 (slack for a loaded machine).
        late < Duration::from_secs(2),
        "{late:?} past the deadline"
    );
    assert_eq!(spool.sealed().unwrap().len(), 1, "the segment stays");
    let abandoned = stuck.0.lock().unwrap().clone();
    assert_eq!(abandoned.len(), 1);
    let store = Arc::new(Flaky {
        fail: 0,
        retryable: true,
        calls: 0.into(),
        got: Mutex::new(Vec::new()),
    });
    assert!(
        loader(&spool, store.clone(), 10)
            .drain(Instant::now() + Duration::from_secs(10))
            .await
    );
    assert_eq!(store.got.lock().unwrap()[0], (abandoned[0].clone(), 10));
}

/// A record of `--insert-rows` that exists but cannot be read is not taken for absent:
/// nothing is loaded (a guessed cut could store a segment loaded in part twice) until
/// it can be read.
#[tokio::test]
async fn an_unreadable_insert_rows_record_loads_nothing_until_it_reads() {
    let d = tempfile::tempdir().unwrap();
    let spool = spool_with(d.path(), 2).await;
    // A folder where the file goes: reading it fails with something else than
    // "not found".
    let file = spool.config().dir.join("insert-rows");
    let _ = std::fs::remove_file(&file);
    std::fs::create_dir(&file).unwrap();
    let store = ranges(usize::MAX);
    let l = loader_of(&spool, store.clone(), 10, 1);
    assert!(!l.drain(Instant::now() + Duration::from_millis(300)).await);
    assert!(
        store.got.lock().unwrap().is_empty(),
        "nothing cut by a guess"
    );
    assert_eq!(spool.sealed().unwrap().len(), 1, "the segment stays");
    std::fs::remove_dir(&file).unwrap();
    assert!(l.drain(Instant::now() + Duration::from_secs(10)).await);
    assert!(!store.got.lock().unwrap().is_empty());
    assert!(spool.sealed().unwrap().is_empty());
}
