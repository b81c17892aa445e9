//! Spool unit tests: group commit, sealing, recovery from torn and corrupted files.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use super::*;

fn cfg(dir: &Path) -> SpoolConfig {
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
    }
}

/// Sealing happens right after the replies of a round: poll briefly.
async fn sealed_soon(spool: &Spool, n: usize) -> usize {
    for _ in 0..100 {
        if spool.sealed().unwrap().len() == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    spool.sealed().unwrap().len()
}

fn batch(vals: &[i32]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vals.to_vec()))]).unwrap()
}

/// All values in all sealed segments, in order.
fn read_all(spool: &Spool) -> Vec<i32> {
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
async fn seals_by_rows_and_by_age() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_max_rows = 3;
    c.segment_max_age = Duration::from_millis(200);
    let (spool, _) = Spool::open(c).unwrap();
    spool.append_events(batch(&[1, 2, 3])).await.unwrap();
    assert_eq!(sealed_soon(&spool, 1).await, 1, "sealed at 3 rows");
    spool.append_events(batch(&[4])).await.unwrap();
    assert_eq!(spool.sealed().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(spool.sealed().unwrap().len(), 2, "sealed by age");
    assert_eq!(read_all(&spool), vec![1, 2, 3, 4]);
}

/// An idle segment is sealed once it holds `segment_idle_min_rows` rows and nothing
/// was written for `segment_idle`; below those rows, or while writes keep coming
/// faster than that, it stays open (the age seal is an hour away here).
#[tokio::test]
async fn seals_when_idle_with_rows_enough_and_not_while_written_to() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_idle = Duration::from_millis(200);
    c.segment_idle_min_rows = 3;
    let (spool, _) = Spool::open(c).unwrap();
    spool.append_events(batch(&[1, 2])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(spool.sealed().unwrap().len(), 0, "2 rows < 3: not sealed");
    // Writes every 20 ms (far under the 200 ms idle) for 400 ms: the segment stays open.
    for i in 3..23 {
        spool.append_events(batch(&[i])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(spool.sealed().unwrap().len(), 0, "sealed while written to");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(spool.sealed().unwrap().len(), 1, "sealed when idle");
    assert_eq!(read_all(&spool), (1..23).collect::<Vec<_>>());
}

/// The rest of a burst that filled a segment is sealed at the idle time whatever its
/// size; the same few rows without a full segment before them wait (a trickle).
#[tokio::test]
async fn the_rest_of_a_burst_is_sealed_when_idle_however_small() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_idle = Duration::from_millis(100);
    c.segment_idle_min_rows = 1000;
    c.segment_max_rows = 5;
    let (spool, _) = Spool::open(c).unwrap();
    spool.append_events(batch(&[1, 2])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        spool.sealed().unwrap().len(),
        0,
        "a trickle waits for rows or age"
    );
    spool.append_events(batch(&[3, 4, 5])).await.unwrap();
    assert_eq!(sealed_soon(&spool, 1).await, 1, "sealed full at 5 rows");
    spool.append_events(batch(&[6, 7])).await.unwrap();
    assert_eq!(
        sealed_soon(&spool, 2).await,
        2,
        "the burst's 2 last rows, when idle"
    );
    assert_eq!(read_all(&spool), (1..8).collect::<Vec<_>>());
}

/// Traffic over the row floor that fills no segment (single events at tens of
/// thousands a second: segments sealed by age) is no trickle either: its last rows are
/// sealed when idle, not at their segment's age.
#[tokio::test]
async fn the_rest_of_traffic_over_the_floor_is_sealed_when_idle() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_idle = Duration::from_millis(100);
    c.segment_idle_min_rows = 5;
    c.segment_max_age = Duration::from_millis(1500);
    let (spool, _) = Spool::open(c).unwrap();
    spool.append_events(batch(&[0])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(spool.sealed().unwrap().len(), 0, "a trickle waits");
    // A row every 20 ms, never idle, until the segment's age seals it.
    let mut next = 1;
    while spool.sealed().unwrap().is_empty() {
        assert!(next < 200, "never sealed by age");
        spool.append_events(batch(&[next])).await.unwrap();
        next += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(next > 5, "sealed by age with {next} rows: over the floor");
    spool.append_events(batch(&[next])).await.unwrap();
    // `sealed_soon` gives up after 1 s, before this segment's 1.5 s age.
    assert_eq!(sealed_soon(&spool, 2).await, 2, "the last row, when idle");
    assert_eq!(read_all(&spool), (0..=next).collect::<Vec<_>>());
}

#[tokio::test]
async fn batch_ids_deduplicate_across_restarts() {
    let d = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    let ipc = ipc::encode_payload(&[batch(&[7])], true).unwrap();
    let a = spool
        .append_batch(Some(b"id-1".to_vec()), 1, ipc.clone())
        .await;
    let b = spool
        .append_batch(Some(b"id-1".to_vec()), 1, ipc.clone())
        .await;
    assert_eq!((a, b), (Ok(Appended::Stored), Ok(Appended::AlreadyStored)));
    spool.close().await;
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    let c = spool
        .append_batch(Some(b"id-1".to_vec()), 1, ipc.clone())
        .await;
    assert_eq!(c, Ok(Appended::AlreadyStored));
    // Even with the batch-ids file gone, the id is recovered from the unloaded segment.
    spool.close().await;
    fs::remove_file(d.path().join("spool").join(batch_ids::FILE_NAME)).unwrap();
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    let c = spool.append_batch(Some(b"id-1".to_vec()), 1, ipc).await;
    assert_eq!(c, Ok(Appended::AlreadyStored));
    assert_eq!(read_all(&spool), vec![7]);
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

/// Writes two sealed-able records in one segment left open (as after a crash), returns
/// the path of the open segment and the offset where the second record starts.
async fn crashed_spool(d: &Path) -> (PathBuf, u64) {
    let (spool, _) = Spool::open(cfg(d)).unwrap();
    spool.append_events(batch(&[1])).await.unwrap();
    let first_end = spool.bytes();
    spool.append_events(batch(&[2])).await.unwrap();
    // Simulate a crash: copy the open segment aside before close seals it.
    let open = fs::read_dir(d.join("spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "open"))
        .unwrap();
    let bytes = fs::read(&open).unwrap();
    spool.close().await;
    for s in spool.sealed().unwrap() {
        fs::remove_file(s.path).unwrap();
    }
    fs::write(&open, bytes).unwrap();
    (open, first_end)
}

#[tokio::test]
async fn torn_tail_of_the_newest_segment_is_cut() {
    let d = tempfile::tempdir().unwrap();
    let (open, first_end) = crashed_spool(d.path()).await;
    let len = fs::metadata(&open).unwrap().len();
    for cut_at in [first_end + 1, first_end + 19, len - 1] {
        let bytes = fs::read(&open).unwrap();
        let d2 = tempfile::tempdir().unwrap();
        fs::create_dir_all(d2.path().join("spool")).unwrap();
        let p2 = d2.path().join("spool").join(open.file_name().unwrap());
        fs::write(&p2, &bytes[..cut_at as usize]).unwrap();
        let (spool, rec) = Spool::open(cfg(d2.path())).unwrap();
        assert_eq!(rec.cut_bytes, cut_at - first_end, "cut at {cut_at}");
        assert!(rec.quarantined.is_empty());
        assert_eq!(read_all(&spool), vec![1]);
    }
    // The intact file replays both records.
    let (spool, rec) = Spool::open(cfg(d.path())).unwrap();
    assert_eq!((rec.rows, rec.cut_bytes), (2, 0));
    assert_eq!(read_all(&spool), vec![1, 2]);
}

#[tokio::test]
async fn corruption_before_a_valid_record_quarantines_even_the_newest() {
    let d = tempfile::tempdir().unwrap();
    let (open, first_end) = crashed_spool(d.path()).await;
    let mut bytes = fs::read(&open).unwrap();
    bytes[first_end as usize - 3] ^= 0xff; // inside record 1's body; record 2 is fine
    fs::write(&open, bytes).unwrap();
    let (spool, rec) = Spool::open(cfg(d.path())).unwrap();
    assert_eq!(rec.quarantined.len(), 1);
    assert!(read_all(&spool).is_empty());
    assert!(d
        .path()
        .join("quarantine")
        .join(open.file_name().unwrap())
        .exists());
}

#[tokio::test]
async fn a_bad_sealed_segment_is_quarantined_and_others_kept() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_max_rows = 1;
    let (spool, _) = Spool::open(c.clone()).unwrap();
    for i in 0..3 {
        spool.append_events(batch(&[i])).await.unwrap();
    }
    spool.close().await;
    let segs = spool.sealed().unwrap();
    assert_eq!(segs.len(), 3);
    // Truncate the middle sealed one: sealed segments never have a torn tail.
    let len = fs::metadata(&segs[1].path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&segs[1].path)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    // And garbage in the header of the last.
    let mut b = fs::read(&segs[2].path).unwrap();
    b[0] = b'X';
    fs::write(&segs[2].path, b).unwrap();
    let (spool, rec) = Spool::open(c).unwrap();
    assert_eq!(rec.quarantined.len(), 2);
    assert_eq!(read_all(&spool), vec![0]);
    // New segments never reuse a quarantined id.
    spool.append_events(batch(&[9])).await.unwrap();
    spool.seal().await.unwrap();
    assert!(spool.sealed().unwrap().last().unwrap().id > segs[2].id);
}

#[tokio::test]
async fn an_open_segment_torn_inside_its_header_is_removed() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    fs::create_dir_all(&c.dir).unwrap();
    let p = segment::segment_path(&c.dir, 5, false);
    fs::write(
        &p,
        &record::SegmentHeader {
            id: 5,
            created_at_ms: 0,
        }
        .encode()[..10],
    )
    .unwrap();
    let (spool, rec) = Spool::open(c).unwrap();
    assert!(rec.quarantined.is_empty() && !p.exists());
    assert_eq!(spool.bytes(), 0);
}

#[test]
fn arbitrary_bytes_never_panic_and_keep_only_a_valid_prefix() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.seg");
    let mut rng = fastrand::Rng::with_seed(7);
    let mut good = record::SegmentHeader {
        id: 1,
        created_at_ms: 0,
    }
    .encode()
    .to_vec();
    record::encode_record(&mut good, record::RecordKind::Events, 1, None, b"abc");
    for _ in 0..2000 {
        let mut b = good.clone();
        match rng.u8(0..3) {
            0 => b.truncate(rng.usize(0..=b.len())),
            1 => {
                let i = rng.usize(0..b.len());
                b[i] = rng.u8(..);
            }
            _ => b.extend((0..rng.usize(0..64)).map(|_| rng.u8(..))),
        }
        fs::write(&p, &b).unwrap();
        let s = segment::scan(&p).unwrap();
        assert!(s.valid_len <= b.len() as u64);
        assert!(s.records <= 1);
    }
}

/// A cut outlives its segment only if the sink stopped between the two deletes (or
/// while writing it): the next start removes it; a sealed segment's cut is kept, and
/// a quarantined segment's goes with it.
#[tokio::test]
async fn stale_cuts_are_removed_at_open_and_live_ones_kept() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let (spool, _) = Spool::open(c.clone()).unwrap();
    spool.append_events(batch(&[1, 2])).await.unwrap();
    spool.seal().await.unwrap();
    spool.append_events(batch(&[3])).await.unwrap();
    spool.seal().await.unwrap();
    let segs = spool.sealed().unwrap();
    spool.write_cut(&segs[0], 1).unwrap();
    spool.write_cut(&segs[1], 1).unwrap();
    spool.close().await;
    let stale = c.dir.join(format!("{:020}.cut", 999));
    let torn = c.dir.join(format!("{:020}.cut.tmp", segs[0].id));
    std::fs::write(&stale, "3").unwrap();
    std::fs::write(&torn, "").unwrap();
    let (spool, _) = Spool::open(c.clone()).unwrap();
    assert!(!stale.exists() && !torn.exists());
    assert_eq!(spool.read_cut(&segs[0]).unwrap(), Some(1));
    spool.quarantine(&segs[1], "test").unwrap();
    assert_eq!(spool.read_cut(&segs[1]).unwrap(), None);
    spool.delete(&segs[0]).unwrap();
    assert_eq!(spool.read_cut(&segs[0]).unwrap(), None);
    assert!(spool.sealed().unwrap().is_empty());
}

/// One request's checked rows, as the tracker routes hold them: `n` events of `site`.
fn request_rows(site: &str, tag: usize, n: usize) -> Batcher {
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

/// A round holding a posted batch and staged rows writes two records, and each record's
/// header counts its own rows (the events record once counted the batch's too, which
/// moved the loader's cut of a segment and recovery's row count).
#[tokio::test]
async fn each_record_header_counts_its_own_rows() {
    let d = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    // Staged without the wake-up message: the round the batch starts takes them.
    let (done, staged) = oneshot::channel();
    {
        let mut st = spool.shared.staged.lock().unwrap();
        request_rows("a.example", 0, 3).drain_into(&mut st.rows);
        st.waiters.push(done);
    }
    let posted = request_rows("b.example", 1, 2).flush().unwrap();
    let ipc = ipc::encode_payload(std::slice::from_ref(&posted), true).unwrap();
    let stored = spool.append_batch(None, 2, ipc).await;
    assert_eq!(stored, Ok(Appended::Stored));
    assert_eq!(StagedRows(staged).stored().await, Ok(()));
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
            records.push((rec.kind, rec.rows, decoded));
        }
    }
    assert_eq!(
        records,
        vec![
            (record::RecordKind::Batch, 2, 2),
            (record::RecordKind::Events, 3, 3)
        ]
    );
    let (_, rec) = Spool::open(cfg(d.path())).unwrap();
    assert_eq!(rec.rows, 5);
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
