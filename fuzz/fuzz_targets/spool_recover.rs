//! Spool segment recovery from arbitrary bytes: a valid segment (header + records made
//! by the sink's own record encoder) is damaged — truncated, overwritten, bytes inserted
//! or appended — or replaced by arbitrary bytes, written to a file, and scanned by the
//! sink's recovery code (`segment::scan`, `SegmentReader`, `records_after`).
//!
//! Checked against an oracle written here from the format description in
//! `sink-clickhouse/src/spool/record.rs` (not from its code): recovery never panics,
//! keeps exactly the valid prefix — the longest run of well-framed, checksummed records
//! after a good header, with the same offsets, rows, batch ids and payloads — and every
//! original record whose bytes are still all in place before the first damage is kept.
//!
//! The sink's spool framing is compiled into this target from its source files
//! (`#[path]`): they use only std and crc32c, so the fuzz build does not pull in the
//! sink's server stack.
#![no_main]

use std::path::PathBuf;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../sink-clickhouse/src/spool/record.rs"]
mod record;
#[allow(dead_code)]
#[path = "../../sink-clickhouse/src/spool/segment.rs"]
mod segment;

use record::{encode_record, RecordKind, SegmentHeader};
use segment::{Next, SegmentReader};

#[derive(Arbitrary, Debug)]
struct Rec {
    /// 0 = events, 1 = one posted batch, else a round with batch ids.
    kind: u8,
    rows: u32,
    batch_ids: Vec<Vec<u8>>,
    payload: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Damage {
    Truncate(u16),
    Overwrite { at: u16, bytes: Vec<u8> },
    Insert { at: u16, bytes: Vec<u8> },
    Append(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// A valid segment, then damage.
    Damaged {
        id: u64,
        created_at_ms: i64,
        /// Written in format version 1 (records not bound to the segment), as before
        /// session 26; else the current version.
        version_1: bool,
        records: Vec<Rec>,
        damage: Vec<Damage>,
    },
    /// Anything at all.
    Raw(Vec<u8>),
}

/// One record as the format description defines it.
#[derive(Debug, PartialEq, Eq)]
struct OracleRec {
    start: usize,
    end: usize,
    kind: u8,
    rows: u32,
    batch_ids: Vec<Vec<u8>>,
    ipc: Vec<u8>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// A record starting at `at` in `b`, if it is complete and its checksum holds; `bound`
/// is what the checksum covers before the record's bytes (the segment id's eight
/// bytes in format version 2, nothing in version 1).
fn oracle_record(b: &[u8], at: usize, bound: &[u8]) -> Option<OracleRec> {
    // magic "PVR1", body length, CRC32C(bound, kind, reserved, rows, body), kind,
    // 3 reserved, rows
    if b.len() < at + 20 || le32(b, at) != 0x3152_5650 {
        return None;
    }
    let len = le32(b, at + 4);
    if len > 1 << 30 {
        return None;
    }
    let end = at.checked_add(20)?.checked_add(len as usize)?;
    if end > b.len() {
        return None;
    }
    let covered: Vec<u8> = bound.iter().chain(&b[at + 12..end]).copied().collect();
    if crc32c::crc32c(&covered) != le32(b, at + 8) {
        return None;
    }
    let kind = b[at + 12];
    let body = &b[at + 20..end];
    // An id is a u8 length and its bytes; kind 2 holds one (empty: none), kind 3 a
    // u16 LE count of them.
    let id_at = |at: usize| -> Option<(Vec<u8>, usize)> {
        let n = *body.get(at)? as usize;
        Some((body.get(at + 1..at + 1 + n)?.to_vec(), at + 1 + n))
    };
    let (batch_ids, ipc) = match kind {
        1 => (Vec::new(), body),
        2 => {
            let (id, at) = id_at(0)?;
            let ids = if id.is_empty() { vec![] } else { vec![id] };
            (ids, &body[at..])
        }
        3 => {
            let count = u16::from_le_bytes([*body.first()?, *body.get(1)?]);
            let mut ids = Vec::new();
            let mut at = 2;
            for _ in 0..count {
                let (id, next) = id_at(at)?;
                ids.push(id);
                at = next;
            }
            (ids, &body[at..])
        }
        _ => return None,
    };
    Some(OracleRec {
        start: at,
        end,
        kind,
        rows: le32(b, at + 16),
        batch_ids,
        ipc: ipc.to_vec(),
    })
}

/// What a segment's record checksums cover before each record: the segment id's bytes
/// (header bytes 16..24) in format version 2, nothing in version 1.
fn bound(b: &[u8]) -> &[u8] {
    if le32(b, 8) == 2 {
        &b[16..24]
    } else {
        &[]
    }
}

/// The valid prefix by the format description: header, then records until the first
/// that is not a complete checksummed record. `None` when the header is bad.
fn oracle(b: &[u8]) -> Option<Vec<OracleRec>> {
    if b.len() < 32 || &b[..8] != b"PVSPOOL1" || !matches!(le32(b, 8), 1 | 2) {
        return None;
    }
    let mut out = Vec::new();
    let mut at = 32;
    while let Some(r) = oracle_record(b, at, bound(b)) {
        at = r.end;
        out.push(r);
    }
    Some(out)
}

fn scratch_file() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pageview-fuzz-spool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join("00000000000000000001.open")
}

fuzz_target!(|input: Input| {
    // The valid segment and where each original record lies in it.
    let (bytes, original) = match input {
        Input::Raw(b) => (b, Vec::new()),
        Input::Damaged {
            id,
            created_at_ms,
            version_1,
            records,
            damage,
        } => {
            let mut header = SegmentHeader::new(id, created_at_ms);
            if version_1 {
                header.version = 1;
            }
            let mut seg = header.encode().to_vec();
            let mut spans = Vec::new();
            for r in records.iter().take(16) {
                let start = seg.len();
                let (kind, most) = match r.kind {
                    0 => (RecordKind::Events, 0),
                    1 => (RecordKind::Batch, 1),
                    _ => (RecordKind::RoundWithIds, 64),
                };
                let ids: Vec<&[u8]> = (r.batch_ids.iter().take(most))
                    .map(|i| &i[..i.len().min(255)])
                    .collect();
                encode_record(
                    &mut seg,
                    header.record_seed(),
                    kind,
                    r.rows,
                    &ids,
                    &r.payload,
                );
                spans.push(start..seg.len());
            }
            let clean = seg.clone();
            for d in damage.iter().take(4) {
                match d {
                    Damage::Truncate(at) => seg.truncate(*at as usize),
                    Damage::Overwrite { at, bytes } => {
                        for (i, &x) in bytes.iter().enumerate() {
                            if let Some(c) = seg.get_mut(*at as usize + i) {
                                *c = x;
                            }
                        }
                    }
                    Damage::Insert { at, bytes } => {
                        let at = (*at as usize).min(seg.len());
                        seg.splice(at..at, bytes.iter().copied());
                    }
                    Damage::Append(bytes) => seg.extend_from_slice(bytes),
                }
            }
            // Original records still intact, in order from the first: the header and
            // every byte up to the end of the record unchanged.
            let intact = |end: usize| end <= seg.len() && seg[..end] == clean[..end];
            let kept: Vec<_> = spans.into_iter().take_while(|s| intact(s.end)).collect();
            (seg, kept)
        }
    };

    let path = scratch_file();
    std::fs::write(&path, &bytes).expect("writing the scratch segment");
    let scan = segment::scan(&path).expect("scan reads a readable file");
    let expect = oracle(&bytes);

    match &expect {
        None => {
            assert!(scan.header.is_none(), "bad header accepted");
            assert_eq!(scan.records, 0);
            assert!(scan.bad.is_some());
            assert!(original.is_empty(), "intact records behind a bad header");
        }
        Some(recs) => {
            let valid_len = recs.last().map_or(32, |r| r.end);
            assert!(scan.header.is_some(), "good header refused");
            assert_eq!(scan.valid_len as usize, valid_len, "valid prefix length");
            assert_eq!(scan.records as usize, recs.len(), "records kept");
            assert_eq!(
                scan.rows,
                recs.iter().map(|r| u64::from(r.rows)).sum::<u64>()
            );
            let ids: Vec<Vec<u8>> = recs.iter().flat_map(|r| r.batch_ids.clone()).collect();
            assert_eq!(scan.batch_ids, ids);
            assert_eq!(scan.file_len as usize, bytes.len());
            // Damage is reported exactly when bytes follow the valid prefix.
            assert_eq!(scan.bad.is_some(), valid_len < bytes.len());
            if let Some((offset, _)) = scan.bad {
                assert_eq!(offset as usize, valid_len);
                // "Is there a good record after the damage?" (mid-file damage vs torn
                // tail), answered by brute force over every later offset.
                let later = (valid_len + 1..bytes.len())
                    .any(|at| oracle_record(&bytes, at, bound(&bytes)).is_some());
                let seed = scan.header.expect("good header").record_seed();
                let after = segment::records_after(&path, offset, seed).expect("rescan");
                assert_eq!(after.records > 0, later, "valid record after the damage");
            }
            // Every intact original record is kept, at its own place.
            assert!(recs.len() >= original.len(), "an intact record was dropped");
            for (r, span) in recs.iter().zip(&original) {
                assert_eq!((r.start, r.end), (span.start, span.end));
            }
            // The streaming reader yields exactly these records.
            let mut rd = SegmentReader::open(&path)
                .expect("open")
                .expect("good header");
            for r in recs {
                match rd.next_record().expect("read") {
                    Next::Record(got) => {
                        assert_eq!(got.kind as u8, r.kind);
                        assert_eq!(got.rows, r.rows);
                        assert_eq!(got.batch_ids, r.batch_ids);
                        assert_eq!(got.ipc(), &r.ipc[..]);
                        assert_eq!(got.disk_len() as usize, r.end - r.start);
                    }
                    other => panic!("record at {} not read: {other:?}", r.start),
                }
            }
            match rd.next_record().expect("read") {
                Next::End => assert_eq!(valid_len, bytes.len()),
                Next::Bad { offset, .. } => assert_eq!(offset as usize, valid_len),
                Next::Record(r) => panic!("a record past the valid prefix: {r:?}"),
            }
        }
    }
});
