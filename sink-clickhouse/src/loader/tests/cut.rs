//! The end-of-burst cut: the last sealed segment in halves, recorded for replays.

use super::*;

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
