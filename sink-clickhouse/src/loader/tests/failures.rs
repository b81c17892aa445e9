//! Chunks the store rejects for good, or whose write panics.

use super::*;

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
