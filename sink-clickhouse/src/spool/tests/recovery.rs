//! Recovery at open: torn tails, corruption, quarantine, stale cuts.

use super::*;

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

/// A spool in `to` as a power loss leaves it: a `.open` segment holding three
/// records, one posted batch each (ids "id-1" to "id-3", values 1 to 3), after a sealed
/// segment holding batch "old" when `sealed_first`, and the batch-ids file empty (the
/// writer's appends to it were not yet fsynced). Returns the open segment's path and
/// where each of its records ends.
async fn three_records_left_open(
    from: &Path,
    to: &Path,
    sealed_first: bool,
) -> (PathBuf, [u64; 3]) {
    let (spool, _) = Spool::open(cfg(from)).unwrap();
    let post = |id: &[u8], v: i32| spool.append_batch(Some(id.to_vec()), vec![batch(&[v])]);
    if sealed_first {
        assert_eq!(post(b"old", 0).await, Ok(Appended::Stored));
        spool.seal().await.unwrap();
    }
    let open_segment = || {
        fs::read_dir(from.join("spool"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == segment::OPEN_EXT))
            .unwrap()
    };
    let mut ends = [0; 3];
    for (i, id) in [&b"id-1"[..], b"id-2", b"id-3"].into_iter().enumerate() {
        // One round each, awaited: one record each.
        assert_eq!(post(id, i as i32 + 1).await, Ok(Appended::Stored));
        ends[i] = fs::metadata(open_segment()).unwrap().len();
    }
    let open = to.join("spool").join(open_segment().file_name().unwrap());
    fs::create_dir_all(to.join("spool")).unwrap();
    for e in fs::read_dir(from.join("spool")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join("spool").join(e.file_name())).unwrap();
    }
    fs::write(to.join("spool").join(batch_ids::FILE_NAME), b"").unwrap();
    spool.close().await;
    (open, ends)
}

/// Damage in the middle of the segment open at a crash (a lost sector, not a torn
/// tail): the segment is quarantined whole and untouched, and the id of the record
/// after the damage, fsynced and acknowledged, is remembered, so a retry of its batch
/// is not stored a second time. (Before, recovery remembered only the ids before the
/// damage, and "id-3" was stored again.)
#[tokio::test]
async fn ids_after_damage_in_the_middle_of_an_open_segment_are_remembered() {
    let (d, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (open, ends) = three_records_left_open(d.path(), crashed.path(), false).await;
    let mut bytes = fs::read(&open).unwrap();
    bytes[ends[1] as usize - 3] ^= 0xff; // inside record 2's body; record 3 is fine
    fs::write(&open, &bytes).unwrap();
    let c = cfg(crashed.path());
    let (spool, rec) = Spool::open(c.clone()).unwrap();
    let post = |id: &[u8], v: i32| spool.append_batch(Some(id.to_vec()), vec![batch(&[v])]);
    assert_eq!(post(b"id-3", 30).await, Ok(Appended::AlreadyStored));
    assert_eq!(post(b"id-1", 10).await, Ok(Appended::AlreadyStored));
    assert_eq!(rec.quarantined.len(), 1);
    let reason = &rec.quarantined[0].1;
    assert!(
        reason.contains("after it 1 record(s) (1 rows) verify"),
        "{reason}"
    );
    // Nothing cut or dropped: record 3's event is in quarantine, byte for byte.
    let q = c.quarantine_dir.join(open.file_name().unwrap());
    assert_eq!(fs::read(&q).unwrap(), bytes);
    assert!(!open.exists() && read_all(&spool).is_empty());
    // The damaged record's id cannot be trusted: its batch, retried, is stored (the
    // quarantined copy of it is damaged).
    assert_eq!(post(b"id-2", 20).await, Ok(Appended::Stored));
    spool.close().await;
    // Written back to the batch-ids file, not only known in memory.
    let (spool, _) = Spool::open(c).unwrap();
    let again = spool.append_batch(Some(b"id-3".to_vec()), vec![batch(&[31])]);
    assert_eq!(again.await, Ok(Appended::AlreadyStored));
    spool.close().await;
}

/// When the ids cannot be written back at start-up (a full disk, stood in for by a
/// directory where the batch-ids file's temporary goes), a damaged segment found
/// unsealed is not quarantined yet: its ids would leave the next start's sight with it.
/// The next start that can write them back quarantines it.
#[tokio::test]
async fn a_damaged_open_segment_waits_until_its_ids_can_be_written_back() {
    let (d, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (open, ends) = three_records_left_open(d.path(), crashed.path(), true).await;
    let mut bytes = fs::read(&open).unwrap();
    bytes[ends[1] as usize - 3] ^= 0xff;
    fs::write(&open, &bytes).unwrap();
    let c = cfg(crashed.path());
    let blocker = c.dir.join(format!("{}.tmp", batch_ids::FILE_NAME));
    fs::create_dir(&blocker).unwrap();
    let (spool, rec) = Spool::open(c.clone()).unwrap();
    assert!(rec.quarantined.is_empty() && open.exists());
    assert_eq!(read_all(&spool), vec![0], "the sealed segment is loaded");
    spool.close().await;
    fs::remove_dir(&blocker).unwrap();
    let (spool, rec) = Spool::open(c).unwrap();
    assert_eq!(rec.quarantined.len(), 1);
    assert!(!open.exists());
    let again = spool.append_batch(Some(b"id-3".to_vec()), vec![batch(&[30])]);
    assert_eq!(again.await, Ok(Appended::AlreadyStored));
    spool.close().await;
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
    fs::write(&p, &record::SegmentHeader::new(5, 0).encode()[..10]).unwrap();
    let (spool, rec) = Spool::open(c).unwrap();
    assert!(rec.quarantined.is_empty() && !p.exists());
    assert_eq!(spool.bytes(), 0);
}

#[test]
fn arbitrary_bytes_never_panic_and_keep_only_a_valid_prefix() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.seg");
    let mut rng = fastrand::Rng::with_seed(7);
    let header = record::SegmentHeader::new(1, 0);
    let mut good = header.encode().to_vec();
    record::encode_record(
        &mut good,
        header.record_seed(),
        record::RecordKind::Events,
        1,
        &[],
        b"abc",
    );
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

/// Segment ids, and so dedup tokens (spool id, segment, records), are never used twice:
/// after every segment was loaded and deleted, a restart goes on past the ids used,
/// not from 1 again (ClickHouse would drop the new rows as duplicates of the old).
/// A spool of an older build (no `next-segment` file) found empty gets a new spool id.
#[tokio::test]
async fn segment_ids_and_dedup_tokens_are_never_reused_across_restarts() {
    let d = tempfile::tempdir().unwrap();
    let write_and_drain = |spool: Spool| async move {
        spool.append_events(batch(&[1])).await.unwrap();
        spool.seal().await.unwrap();
        let segs = spool.sealed().unwrap();
        assert_eq!(segs.len(), 1);
        let token = spool.dedup_token(segs[0].id, 0, 0);
        spool.delete(&segs[0]).unwrap();
        spool.close().await;
        token
    };
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (spool, rec) = Spool::open(cfg(d.path())).unwrap();
        assert_eq!(rec.segments, 0);
        tokens.push(write_and_drain(spool).await);
    }
    // As an older build left it: no high-water mark.
    fs::remove_file(d.path().join("spool").join(recover::NEXT_SEGMENT_FILE)).unwrap();
    let (spool, _) = Spool::open(cfg(d.path())).unwrap();
    tokens.push(write_and_drain(spool).await);
    let mut unique = tokens.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), tokens.len(), "{tokens:?}");
}
