//! Loaded segments' files written over by the next segments (`--spool-recycle`), and
//! the records of the segment a file held before never read as the new one's.

use std::os::unix::fs::MetadataExt;

use super::*;

/// The files of `dir` with extension `ext`.
fn with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// One segment of three one-row records (`vals`), sealed; returns it.
async fn three_records(spool: &Spool, vals: [i32; 3]) -> Sealed {
    for v in vals {
        spool.append_events(batch(&[v])).await.unwrap();
    }
    spool.seal().await.unwrap();
    let segs = spool.sealed().unwrap();
    assert_eq!(segs.len(), 1);
    segs.into_iter().next().unwrap()
}

/// A spool in `d` whose one segment, three one-row records [1, 2, 3], was loaded:
/// its file kept for reuse, and returned with the spool and its config.
async fn one_segment_loaded(d: &Path) -> (Spool, SpoolConfig, PathBuf) {
    let c = cfg(d);
    let (spool, _) = Spool::open(c.clone()).unwrap();
    let a = three_records(&spool, [1, 2, 3]).await;
    let a_len = fs::metadata(&a.path).unwrap().len();
    spool.delete(&a).unwrap();
    assert!(!a.path.exists());
    let kept = with_ext(&c.dir, RECYCLED_EXT);
    assert_eq!(kept.len(), 1);
    assert_eq!(spool.bytes(), 0);
    assert_eq!(spool.recycled_bytes(), a_len);
    let kept = kept.into_iter().next().unwrap();
    (spool, c, kept)
}

#[tokio::test]
async fn a_loaded_segment_s_file_is_written_over_by_the_next() {
    let d = tempfile::tempdir().unwrap();
    let (spool, c, kept) = one_segment_loaded(d.path()).await;
    let (a_len, a_inode) = {
        let m = fs::metadata(&kept).unwrap();
        (m.len(), m.ino())
    };

    spool.append_events(batch(&[4])).await.unwrap();
    spool.seal().await.unwrap();
    let b = spool.sealed().unwrap().into_iter().next().unwrap();
    let m = fs::metadata(&b.path).unwrap();
    // The same file, taken from the kept ones and cut where its one record ends.
    assert_eq!(m.ino(), a_inode);
    assert!(with_ext(&c.dir, RECYCLED_EXT).is_empty());
    assert_eq!(spool.recycled_bytes(), 0);
    assert!(m.len() < a_len, "{} < {a_len}", m.len());
    assert_eq!(spool.bytes(), m.len());
    assert_eq!(read_all(&spool), vec![4]);
    let mut r = SegmentReader::open(&b.path).unwrap().unwrap();
    assert_eq!(r.header.id, b.id);
    assert!(matches!(r.next_record().unwrap(), Next::Record(_)));
    assert!(matches!(r.next_record().unwrap(), Next::End));
    spool.close().await;
}

/// The crash this format change is for: a reused file holds the new segment's first
/// record over the old one's first, then the old one's other records, whole and at
/// record boundaries. They are a torn tail, cut at recovery — not records, which
/// would load rows already loaded (in version 1 their checksums would match).
#[tokio::test]
async fn a_crash_in_a_reused_file_cuts_what_the_file_held_before() {
    let d = tempfile::tempdir().unwrap();
    let (spool, c, kept) = one_segment_loaded(d.path()).await;
    let a_len = fs::metadata(&kept).unwrap().len();
    spool.append_events(batch(&[4])).await.unwrap();
    let b_len = spool.bytes();
    // The crash: the open segment as it is on disk now, before the seal cuts it.
    let open = with_ext(&c.dir, "open").pop().unwrap();
    let crashed = fs::read(&open).unwrap();
    assert_eq!(crashed.len() as u64, a_len);
    spool.close().await;
    for s in spool.sealed().unwrap() {
        fs::remove_file(s.path).unwrap();
    }
    fs::write(&open, crashed).unwrap();

    let (spool, rec) = Spool::open(c.clone()).unwrap();
    assert!(rec.quarantined.is_empty(), "{:?}", rec.quarantined);
    assert_eq!((rec.segments, rec.rows), (1, 1));
    assert_eq!(rec.cut_bytes, a_len - b_len);
    assert_eq!(read_all(&spool), vec![4]);
    spool.close().await;
}

#[tokio::test]
async fn kept_files_are_bounded_and_their_ids_never_name_a_new_segment() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let (spool, _) = Spool::open(c.clone()).unwrap();
    // Three segments on disk at once (a backlog), then all loaded: two files kept.
    for v in [1, 2, 3] {
        spool.append_events(batch(&[v])).await.unwrap();
        spool.seal().await.unwrap();
    }
    let segs = spool.sealed().unwrap();
    assert_eq!(segs.len(), 3);
    for s in &segs {
        spool.delete(s).unwrap();
    }
    assert_eq!(with_ext(&c.dir, RECYCLED_EXT).len(), 2);
    spool.close().await;

    // Fewer kept at the next start: the others are deleted.
    let one = SpoolConfig {
        recycle: 1,
        ..c.clone()
    };
    let (spool, _) = Spool::open(one.clone()).unwrap();
    spool.close().await;
    let kept = with_ext(&c.dir, RECYCLED_EXT);
    assert_eq!(kept.len(), 1);
    let kept_id: u64 = kept[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    // Even with the ids' high-water mark lost, the next segment's id is past the kept
    // file's: the file's records must never verify as a new segment's.
    fs::remove_file(c.dir.join(recover::NEXT_SEGMENT_FILE)).unwrap();
    let (spool, _) = Spool::open(one).unwrap();
    spool.append_events(batch(&[9])).await.unwrap();
    spool.seal().await.unwrap();
    let segs = spool.sealed().unwrap();
    assert_eq!(segs.len(), 1);
    assert!(segs[0].id > kept_id, "{} > {kept_id}", segs[0].id);
    assert_eq!(read_all(&spool), vec![9]);
    spool.close().await;

    // And none kept with `--spool-recycle 0`.
    let none = SpoolConfig {
        recycle: 0,
        ..c.clone()
    };
    let (spool, _) = Spool::open(none).unwrap();
    assert!(with_ext(&c.dir, RECYCLED_EXT).is_empty());
    let s = spool.sealed().unwrap().pop().unwrap();
    spool.delete(&s).unwrap();
    assert!(with_ext(&c.dir, RECYCLED_EXT).is_empty() && !s.path.exists());
    spool.close().await;
}

/// A segment of format version 1 (records not bound to their segment), as a build
/// before session 26 left it, is recovered and read.
#[tokio::test]
async fn a_version_1_segment_is_still_read() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    fs::create_dir_all(&c.dir).unwrap();
    let header = record::SegmentHeader {
        version: 1,
        ..record::SegmentHeader::new(3, 0)
    };
    assert_eq!(header.record_seed(), 0);
    let mut bytes = header.encode().to_vec();
    for v in [7, 8] {
        let payload = ipc::encode_payload(&[batch(&[v])], false).unwrap();
        record::encode_record(
            &mut bytes,
            0,
            record::RecordKind::Events,
            1,
            &[],
            payload.as_bytes(),
        );
    }
    fs::write(segment::segment_path(&c.dir, 3, true), &bytes).unwrap();
    let (spool, rec) = Spool::open(c).unwrap();
    assert!(rec.quarantined.is_empty(), "{:?}", rec.quarantined);
    assert_eq!((rec.segments, rec.rows), (1, 2));
    assert_eq!(read_all(&spool), vec![7, 8]);
    spool.close().await;
}

/// A kept file that cannot be written over (here: something else took its name) is
/// dropped, and the segment goes to a new file: the round is not failed for it.
#[tokio::test]
async fn a_kept_file_that_cannot_be_reused_gives_way_to_a_new_one() {
    let d = tempfile::tempdir().unwrap();
    let (spool, _, kept) = one_segment_loaded(d.path()).await;
    fs::remove_file(&kept).unwrap();
    fs::create_dir(&kept).unwrap();
    spool.append_events(batch(&[4])).await.unwrap();
    spool.seal().await.unwrap();
    assert_eq!(read_all(&spool), vec![4]);
    assert!(spool.shared.recycled.lock().unwrap().free.is_empty());
    spool.close().await;
}
