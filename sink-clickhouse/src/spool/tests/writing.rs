//! Writing: group commit, staged rows, records and their headers, compression, batch
//! ids, a full spool.

use super::*;

/// Waits for every request's task; the writer's rounds so far, which must be fewer
/// than the requests (group commit).
async fn rounds_after<E: std::fmt::Debug>(
    spool: &Spool,
    tasks: Vec<tokio::task::JoinHandle<Result<(), E>>>,
) -> u64 {
    let n = tasks.len() as u64;
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let (_, rounds) = spool.written();
    assert!(rounds < n, "group commit: {rounds} rounds for {n} requests");
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_rounds_and_all_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    let (spool, rec) = Spool::open(cfg(d.path())).unwrap();
    assert_eq!(rec.segments, 0);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = spool.clone();
        tasks.push(tokio::spawn(async move {
            s.append_events(batch(&[i, i])).await
        }));
    }
    rounds_after(&spool, tasks).await;
    spool.close().await;
    let (spool, rec) = Spool::open(cfg(d.path())).unwrap();
    assert_eq!(rec.rows, 400);
    let mut v = read_all(&spool);
    v.sort();
    assert_eq!(v, (0..200).flat_map(|i| [i, i]).collect::<Vec<_>>());
}

#[tokio::test]
async fn batch_ids_deduplicate_across_restarts() {
    let d = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    let post = |id: &[u8], v: i32| spool.append_batch(Some(id.to_vec()), vec![batch(&[v])]);
    let a = post(b"id-1", 7).await;
    let b = post(b"id-1", 8).await;
    assert_eq!((a, b), (Ok(Appended::Stored), Ok(Appended::AlreadyStored)));
    spool.close().await;
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    let post = |id: &[u8], v: i32| spool.append_batch(Some(id.to_vec()), vec![batch(&[v])]);
    assert_eq!(post(b"id-1", 9).await, Ok(Appended::AlreadyStored));
    // Even with the batch-ids file gone, the id is recovered from the unloaded segment.
    spool.close().await;
    fs::remove_file(d.path().join("spool").join(batch_ids::FILE_NAME)).unwrap();
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    let post = |id: &[u8], v: i32| spool.append_batch(Some(id.to_vec()), vec![batch(&[v])]);
    assert_eq!(post(b"id-1", 10).await, Ok(Appended::AlreadyStored));
    assert_eq!(post(b"id-2", 11).await, Ok(Appended::Stored));
    spool.close().await;
    assert_eq!(read_all(&spool), vec![7, 11]);
    // ... and written back to the file, so it outlives the segment.
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    for seg in spool.sealed().unwrap() {
        spool.delete(&seg).unwrap();
    }
    spool.close().await;
    let (spool, rec) = Spool::open(cfg(d.path())).unwrap();
    assert_eq!(rec.rows, 0);
    let post = |id: &[u8], v: i32| spool.append_batch(Some(id.to_vec()), vec![batch(&[v])]);
    assert_eq!(post(b"id-1", 12).await, Ok(Appended::AlreadyStored));
    assert_eq!(post(b"id-2", 13).await, Ok(Appended::AlreadyStored));
    spool.close().await;
}

/// The ids in `spool/batch-ids`, in file order.
fn ids_in_file(dir: &Path) -> Vec<Vec<u8>> {
    let bytes = fs::read(dir.join("spool").join(batch_ids::FILE_NAME)).unwrap();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < bytes.len() {
        let n = bytes[i] as usize;
        out.push(bytes[i + 1..i + 1 + n].to_vec());
        i += 1 + n;
    }
    out
}

/// A crash leaves the open segment unsealed and the batch-ids file without the ids
/// appended since the last seal (not fsynced): the restart writes them back to the
/// file from the segment, so they outlive the segment's deletion after its load. The
/// crash is a copy of the running spool's files into a fresh folder, with the
/// batch-ids file emptied.
#[tokio::test]
async fn ids_of_the_segment_open_at_a_crash_outlive_it() {
    let (d, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    let post = |id: &[u8], v: i32| spool.append_batch(Some(id.to_vec()), vec![batch(&[v])]);
    assert_eq!(post(b"id-1", 1).await, Ok(Appended::Stored));
    assert_eq!(
        ids_in_file(d.path()),
        vec![b"id-1".to_vec()],
        "appended with its round"
    );
    let from = d.path().join("spool");
    let to = crashed.path().join("spool");
    fs::create_dir_all(&to).unwrap();
    for e in fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    fs::write(to.join(batch_ids::FILE_NAME), b"").unwrap();
    spool.close().await;
    let unsealed = fs::read_dir(&to).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".open")
    });
    assert_eq!(unsealed.count(), 1, "the copy holds the open segment");

    let (spool, rec) = Spool::open(cfg(crashed.path())).unwrap();
    assert_eq!(rec.rows, 1);
    assert_eq!(
        ids_in_file(crashed.path()),
        vec![b"id-1".to_vec()],
        "written back"
    );
    for seg in spool.sealed().unwrap() {
        spool.delete(&seg).unwrap();
    }
    spool.close().await;
    let (spool, rec) = Spool::open(cfg(crashed.path())).unwrap();
    assert_eq!(rec.rows, 0, "the segment is gone");
    let again = spool.append_batch(Some(b"id-1".to_vec()), vec![batch(&[2])]);
    assert_eq!(again.await, Ok(Appended::AlreadyStored));
    spool.close().await;
}

/// A spool in `d` whose sealed segment holds batch id "old", and whose batch-ids file
/// holds "new-1" and "new-2" only (as if "old" had been pushed out of a window of 2
/// while its segment waited for ClickHouse).
async fn old_id_in_a_sealed_segment_only(d: &Path) {
    let (spool, _) = Spool::open(cfg(d)).unwrap();
    let old = spool.append_batch(Some(b"old".to_vec()), vec![batch(&[1])]);
    assert_eq!(old.await, Ok(Appended::Stored));
    spool.seal().await.unwrap();
    spool.close().await;
    let file = d.join("spool").join(batch_ids::FILE_NAME);
    fs::write(file, b"\x05new-1\x05new-2").unwrap();
}

/// The ids of sealed segments are in the file already and are not written again; where
/// the file lacks them they are remembered as the oldest — never pushing out an id
/// the file holds — and the file is rewritten with them first.
#[tokio::test]
async fn ids_of_sealed_segments_are_remembered_as_the_oldest() {
    let new = |s: &str| s.as_bytes().to_vec();
    // A full window (2): "old" is not remembered, "new-1" and "new-2" stay.
    let d = tempfile::tempdir().unwrap();
    old_id_in_a_sealed_segment_only(d.path()).await;
    let mut c = cfg(d.path());
    c.batch_ids_keep = 2;
    let (spool, _) = Spool::open(c).unwrap();
    assert_eq!(ids_in_file(d.path()), vec![new("new-1"), new("new-2")]);
    for (id, known) in [(&b"new-1"[..], true), (b"new-2", true), (b"old", false)] {
        let again = spool
            .append_batch(Some(id.to_vec()), vec![batch(&[9])])
            .await;
        let want = if known {
            Appended::AlreadyStored
        } else {
            Appended::Stored
        };
        assert_eq!(again, Ok(want), "{}", String::from_utf8_lossy(id));
    }
    spool.close().await;
    // Room in the window (10): "old" is remembered, first in the rewritten file.
    let d = tempfile::tempdir().unwrap();
    old_id_in_a_sealed_segment_only(d.path()).await;
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    let want = vec![new("old"), new("new-1"), new("new-2")];
    assert_eq!(ids_in_file(d.path()), want);
    let again = spool.append_batch(Some(b"old".to_vec()), vec![batch(&[9])]);
    assert_eq!(again.await, Ok(Appended::AlreadyStored));
    spool.close().await;
}

#[tokio::test]
async fn full_spool_refuses_then_recovers_after_delete() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.max_bytes = 1;
    c.segment_max_rows = 1;
    let (spool, _) = Spool::open(c).unwrap();
    // Empty spool: 0 bytes < 1, one write passes and fills it.
    spool.append_events(batch(&[1])).await.unwrap();
    assert_eq!(
        spool.append_events(batch(&[2])).await,
        Err(AppendError::Full)
    );
    spool.seal().await.unwrap();
    for s in spool.sealed().unwrap() {
        spool.delete(&s).unwrap();
    }
    assert_eq!(spool.bytes(), 0);
    spool.append_events(batch(&[3])).await.unwrap();
}

/// `(site_id, pathname)` of every row of every record in `dir`'s segments, and the
/// number of batches each record decodes to.
fn v1_rows(dir: &Path) -> (Vec<(String, String)>, Vec<usize>) {
    use arrow_array::cast::AsArray;
    let (mut rows, mut batches) = (Vec::new(), Vec::new());
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg" || e == "open"))
        .collect();
    paths.sort();
    for p in paths {
        let mut r = SegmentReader::open(&p).unwrap().unwrap();
        while let Next::Record(rec) = r.next_record().unwrap() {
            let bs = ipc::decode_compact(rec.ipc()).unwrap();
            batches.push(bs.len());
            for b in bs {
                let site = b.column_by_name("site_id").unwrap().as_string::<i32>();
                let path = b.column_by_name("pathname").unwrap().as_string::<i32>();
                for i in 0..b.num_rows() {
                    rows.push((site.value(i).to_owned(), path.value(i).to_owned()));
                }
            }
        }
    }
    (rows, batches)
}

/// Staged rows of concurrent requests share rounds (one batch per record), and every
/// request answered had its rows in the segment file: a crash right after the answers
/// (the open segment copied aside before `close` could add to it) recovers them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_rows_share_rounds_and_are_on_disk_when_answered() {
    let d = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    let mut tasks = Vec::new();
    for t in 0..200 {
        let s = spool.clone();
        tasks.push(tokio::spawn(async move {
            let mut rows = request_rows(if t % 3 == 0 { "a.example" } else { "b.example" }, t, 3);
            let staged = s.stage(&mut rows).unwrap().expect("room to stage");
            assert!(rows.is_empty(), "the rows moved into the round");
            staged.stored().await
        }));
    }
    let rounds = rounds_after(&spool, tasks).await;
    let dir = d.path().join("spool");
    let open = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "open"))
        .expect("an open segment");
    let bytes = fs::read(&open).unwrap();
    spool.close().await;
    for s in spool.sealed().unwrap() {
        fs::remove_file(s.path).unwrap();
    }
    fs::write(&open, bytes).unwrap();
    let (spool, rec) = Spool::open(cfg(d.path())).unwrap();
    assert_eq!(rec.rows, 600);
    let (mut got, batches) = v1_rows(&dir);
    assert!(
        batches.iter().all(|&n| n == 1),
        "one batch per round: {batches:?}"
    );
    assert_eq!(batches.len() as u64, rounds);
    got.sort();
    let mut want: Vec<(String, String)> = (0..200)
        .flat_map(|t| {
            let site = if t % 3 == 0 { "a.example" } else { "b.example" };
            (0..3).map(move |i| (site.to_owned(), format!("/{t}/{i}")))
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    spool.close().await;
}

/// Rows the round cannot take stay with the caller, untouched, for `append_events`:
/// past the staged round's byte bound, and after `close` (then nothing is stored).
#[tokio::test]
async fn staging_leaves_the_rows_when_the_round_cannot_take_them() {
    let d = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    let mut big = round_batcher();
    let long = "x".repeat(STAGED_MAX_BYTES / 2);
    for _ in 0..3 {
        let ev = ingest_core::Event {
            pathname: long.as_str().into(),
            ..ingest_core::Event::default()
        };
        assert!(big.push(&ev, 0).is_none());
    }
    assert!(spool.stage(&mut big).unwrap().is_none());
    assert_eq!(big.len(), 3, "left as they were");
    spool.append_events(big.flush().unwrap()).await.unwrap();
    let mut small = request_rows("a.example", 0, 2);
    spool
        .stage(&mut small)
        .unwrap()
        .unwrap()
        .stored()
        .await
        .unwrap();
    spool.close().await;
    let mut late = request_rows("a.example", 1, 2);
    assert!(spool.stage(&mut late).unwrap().is_none());
    assert_eq!(late.len(), 2);
    let e = spool
        .append_events(late.flush().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, AppendError::Closed), "{e}");
    let (rows, _) = v1_rows(&d.path().join("spool"));
    assert_eq!(rows.len(), 5);
}

/// A round holding staged rows and posted batches writes ONE record: its header counts
/// all its rows and carries the posted batches' ids (not a duplicate's), and
/// recovery finds both ids in it with the batch-ids file gone.
#[tokio::test]
async fn posted_batches_join_the_rounds_record_with_their_ids() {
    let d = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    // Staged without the wake-up message: the round the batches start takes them.
    let (done, staged) = oneshot::channel();
    {
        let mut st = spool.shared.staged.lock().unwrap();
        request_rows("a.example", 0, 3).drain_into(&mut st.rows);
        st.waiters.push(done);
    }
    let posted = |tag, n| vec![request_rows("b.example", tag, n).flush().unwrap()];
    let (a, b, c, e) = tokio::join!(
        spool.append_batch(Some(b"edge-1".to_vec()), posted(1, 2)),
        spool.append_batch(Some(b"edge-1".to_vec()), posted(2, 4)),
        spool.append_batch(None, posted(3, 5)),
        spool.append_batch(Some(b"edge-2".to_vec()), posted(4, 1)),
    );
    assert_eq!(StagedRows(staged).stored().await, Ok(()));
    assert_eq!(
        [a, b, c, e],
        [
            Ok(Appended::Stored),
            Ok(Appended::AlreadyStored),
            Ok(Appended::Stored),
            Ok(Appended::Stored)
        ]
    );
    spool.close().await;
    let mut records = Vec::new();
    for s in spool.sealed().unwrap() {
        let mut r = SegmentReader::open(&s.path).unwrap().unwrap();
        while let Next::Record(rec) = r.next_record().unwrap() {
            let decoded: usize = ipc::decode_compact(rec.ipc())
                .unwrap()
                .iter()
                .map(RecordBatch::num_rows)
                .sum();
            records.push((rec.kind, rec.rows, decoded, rec.batch_ids));
        }
    }
    let rounds = records.len();
    let rows: u32 = records.iter().map(|r| r.1).sum();
    let mut ids: Vec<Vec<u8>> = records.iter().flat_map(|r| r.3.clone()).collect();
    ids.sort();
    assert_eq!(rows, 3 + 2 + 5 + 1, "{records:?}");
    assert!(records.iter().all(|r| r.1 as usize == r.2), "{records:?}");
    assert_eq!(ids, vec![b"edge-1".to_vec(), b"edge-2".to_vec()]);
    assert!(records.iter().all(|r| {
        let want = if r.3.is_empty() {
            record::RecordKind::Events
        } else {
            record::RecordKind::RoundWithIds
        };
        r.0 == want
    }));
    // One record per round, whichever requests each round took.
    assert_eq!(rounds as u64, spool.written().1, "{records:?}");
    fs::remove_file(d.path().join("spool").join(batch_ids::FILE_NAME)).unwrap();
    let (spool, rec) = Spool::open(cfg(d.path())).unwrap();
    assert_eq!(rec.rows, 11);
    for id in [&b"edge-1"[..], b"edge-2"] {
        let again = spool.append_batch(Some(id.to_vec()), posted(9, 1)).await;
        assert_eq!(again, Ok(Appended::AlreadyStored));
    }
}

/// Records go uncompressed while the spool holds less than `compress_above_bytes`, LZ4
/// past it, and uncompressed again once loaded segments are deleted; both read back.
#[tokio::test]
async fn records_are_compressed_only_while_the_spool_holds_a_backlog() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.compress_above_bytes = 1;
    let (spool, _) = Spool::open(c).unwrap();
    let rows = |tag| request_rows("a.example", tag, 50).flush().unwrap();
    // Nothing on disk yet: the first record is written as it is, the second, with a
    // segment on disk, compressed.
    spool.append_events(rows(0)).await.unwrap();
    assert!(spool.compress_records());
    spool.append_events(rows(1)).await.unwrap();
    spool.seal().await.unwrap();
    let first = spool.sealed().unwrap();
    let tags = |s: &Sealed| {
        let mut r = SegmentReader::open(&s.path).unwrap().unwrap();
        let mut out = Vec::new();
        while let Next::Record(rec) = r.next_record().unwrap() {
            let rows = ipc::decode_compact(rec.ipc()).unwrap()[0].num_rows();
            out.push((rec.ipc()[0], rows));
        }
        out
    };
    assert_eq!(
        tags(&first[0]),
        vec![(ipc::V1_BODY, 50), (ipc::V1_BODY_LZ4, 50)]
    );
    spool.delete(&first[0]).unwrap();
    assert!(!spool.compress_records());
    spool.append_events(rows(2)).await.unwrap();
    spool.seal().await.unwrap();
    let second = spool.sealed().unwrap();
    assert_eq!(tags(&second[0]), vec![(ipc::V1_BODY, 50)]);
    spool.close().await;
}

/// `quiet_for` counts from the last round written: short right after one, and at
/// least as long as the writer has had nothing since (what the loader's end-of-burst
/// cut waits for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_for_counts_from_the_last_round_written() {
    let d = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    let t0 = std::time::Instant::now();
    spool.append_events(batch(&[1, 2])).await.unwrap();
    assert!(spool.quiet_for() <= t0.elapsed(), "the round came after t0");
    std::thread::sleep(Duration::from_millis(30));
    assert!(spool.quiet_for() >= Duration::from_millis(30));
    let t1 = std::time::Instant::now();
    spool.append_events(batch(&[3])).await.unwrap();
    assert!(spool.quiet_for() <= t1.elapsed(), "a new round restarts it");
    spool.close().await;
}
