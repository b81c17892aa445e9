//! Replays: after a restart with another `--insert-rows`, at the shutdown deadline, and
//! with the record of `--insert-rows` unreadable.

use super::*;

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
