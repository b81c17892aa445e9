//! Segment files: names, a streaming record reader, and the recovery scan.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{
    RecordHeader, RecordKind, SegmentHeader, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};

/// File name suffix of the segment being written.
pub const OPEN_EXT: &str = "open";
/// File name suffix of a sealed segment (ready to load).
pub const SEALED_EXT: &str = "seg";
/// File name suffix of a sealed segment's cut: the loader's lasting decision to load
/// it as two halves (`<id>.cut`, the first record of the second half, in decimal).
pub const CUT_EXT: &str = "cut";

/// The path of segment `id` in `dir`, open or sealed.
pub fn segment_path(dir: &Path, id: u64, sealed: bool) -> PathBuf {
    dir.join(format!(
        "{id:020}.{}",
        if sealed { SEALED_EXT } else { OPEN_EXT }
    ))
}

/// Parses a segment file name: `(id, sealed)`.
pub fn parse_name(name: &str) -> Option<(u64, bool)> {
    let (stem, ext) = name.split_once('.')?;
    let sealed = match ext {
        SEALED_EXT => true,
        OPEN_EXT => false,
        _ => return None,
    };
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, sealed))
}

/// One record read back from a segment.
#[derive(Debug, Clone)]
pub struct Record {
    /// Zero-based position of the record in its segment.
    pub index: u32,
    /// What it holds.
    pub kind: RecordKind,
    /// Rows it holds.
    pub rows: u32,
    /// The ids of the posted batches in it ([`RecordKind::Batch`],
    /// [`RecordKind::RoundWithIds`]).
    pub batch_ids: Vec<Vec<u8>>,
    body: Vec<u8>,
    ipc_start: usize,
}

impl Record {
    /// The Arrow IPC stream of the record.
    pub fn ipc(&self) -> &[u8] {
        &self.body[self.ipc_start..]
    }

    /// Bytes the record takes on disk.
    pub fn disk_len(&self) -> u64 {
        (RECORD_HEADER_LEN + self.body.len()) as u64
    }
}

/// What the reader found next.
#[derive(Debug)]
pub enum Next {
    /// A complete, checksummed record.
    Record(Record),
    /// Clean end of file.
    End,
    /// A short or mismatching record starts at `offset`.
    Bad {
        /// File offset of the bad record.
        offset: u64,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Reads a segment one record at a time: memory holds one record, never the segment.
pub struct SegmentReader {
    file: BufReader<File>,
    offset: u64,
    index: u32,
    /// The segment header.
    pub header: SegmentHeader,
}

impl SegmentReader {
    /// Opens `path` and reads its header. `Ok(Err(reason))` when the header is bad.
    pub fn open(path: &Path) -> io::Result<Result<Self, &'static str>> {
        let mut file = BufReader::with_capacity(256 * 1024, File::open(path)?);
        let mut h = [0u8; SEGMENT_HEADER_LEN];
        match read_full(&mut file, &mut h)? {
            n if n < SEGMENT_HEADER_LEN => return Ok(Err("short segment header")),
            _ => {}
        }
        let Some(header) = SegmentHeader::decode(&h) else {
            return Ok(Err("bad segment header"));
        };
        Ok(Ok(SegmentReader {
            file,
            offset: SEGMENT_HEADER_LEN as u64,
            index: 0,
            header,
        }))
    }

    /// Offset just past the last good record read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Index of the record [`SegmentReader::next_record`] reads next.
    pub fn next_index(&self) -> u32 {
        self.index
    }

    /// Reads the next record.
    pub fn next_record(&mut self) -> io::Result<Next> {
        let offset = self.offset;
        let bad = |reason| Ok(Next::Bad { offset, reason });
        let mut h = [0u8; RECORD_HEADER_LEN];
        match read_full(&mut self.file, &mut h)? {
            0 => return Ok(Next::End),
            n if n < RECORD_HEADER_LEN => return bad("short record header"),
            _ => {}
        }
        let Some(header) = RecordHeader::decode(&h) else {
            return bad("bad record magic or length");
        };
        let mut body = vec![0u8; header.body_len as usize];
        if read_full(&mut self.file, &mut body)? < body.len() {
            return bad("short record body");
        }
        let Some((kind, ids, ipc)) = header.verify(self.header.record_seed(), &body) else {
            return bad("record checksum mismatch or bad framing");
        };
        let batch_ids = ids.into_iter().map(<[u8]>::to_vec).collect();
        let ipc_start = body.len() - ipc.len();
        let rec = Record {
            index: self.index,
            kind,
            rows: header.rows,
            batch_ids,
            body,
            ipc_start,
        };
        self.index += 1;
        self.offset += rec.disk_len();
        Ok(Next::Record(rec))
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The result of checking a whole segment.
#[derive(Debug, Default)]
pub struct Scan {
    /// The header, if it was readable.
    pub header: Option<SegmentHeader>,
    /// Length of the valid prefix (header + complete records).
    pub valid_len: u64,
    /// Complete records.
    pub records: u32,
    /// Rows in them.
    pub rows: u64,
    /// Batch ids of the posted batches in them.
    pub batch_ids: Vec<Vec<u8>>,
    /// The first problem, if any: (offset, reason).
    pub bad: Option<(u64, &'static str)>,
    /// File length.
    pub file_len: u64,
}

/// Reads every record of `path` (one at a time) and reports where it stops being valid.
pub fn scan(path: &Path) -> io::Result<Scan> {
    let file_len = std::fs::metadata(path)?.len();
    let mut s = Scan {
        file_len,
        ..Scan::default()
    };
    let mut r = match SegmentReader::open(path)? {
        Ok(r) => r,
        Err(reason) => {
            s.bad = Some((0, reason));
            return Ok(s);
        }
    };
    s.header = Some(r.header);
    loop {
        match r.next_record()? {
            Next::Record(rec) => {
                s.records += 1;
                s.rows += u64::from(rec.rows);
                s.batch_ids.extend(rec.batch_ids);
            }
            Next::End => break,
            Next::Bad { offset, reason } => {
                s.bad = Some((offset, reason));
                break;
            }
        }
    }
    s.valid_len = r.offset();
    Ok(s)
}

/// The row counts of the records of `path`, in order, from their headers alone (each
/// body skipped, not checked): what the loader needs to cut a segment in halves.
/// Stops at the first header that does not decode or at a short file; reading the
/// segment for the load checks every record.
pub fn record_rows(path: &Path) -> io::Result<Vec<u32>> {
    // A segment has a few hundred records: a seek and a header read each.
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut at = SEGMENT_HEADER_LEN as u64;
    let mut rows = Vec::new();
    let mut h = [0u8; RECORD_HEADER_LEN];
    while at + RECORD_HEADER_LEN as u64 <= len {
        f.seek(SeekFrom::Start(at))?;
        if read_full(&mut f, &mut h)? < RECORD_HEADER_LEN {
            break;
        }
        let Some(header) = RecordHeader::decode(&h) else {
            break;
        };
        at += RECORD_HEADER_LEN as u64 + u64::from(header.body_len);
        if at > len {
            break;
        }
        rows.push(header.rows);
    }
    Ok(rows)
}

/// The records that verify after damage at `offset`, found by [`records_after`].
#[derive(Debug, Default)]
pub struct AfterDamage {
    /// Records found that verify.
    pub records: u32,
    /// Rows in them.
    pub rows: u64,
    /// Batch ids of the posted batches in them.
    pub batch_ids: Vec<Vec<u8>>,
    /// The bytes after the damage could not be read (recovery then quarantines the
    /// segment whole, never cuts it as a torn tail).
    pub unreadable: bool,
}

/// The complete, checksummed records after damage at `offset`: every offset past it is
/// tried until one verifies, then the records are followed by their lengths, and
/// past a further bad spot the search goes on byte by byte. The bytes of a record that
/// verifies are not searched (a payload holding bytes that frame a record is not read
/// as one); those of damaged ones are. A record verifies with `seed`, the segment's
/// [`SegmentHeader::record_seed`](super::record::SegmentHeader::record_seed): in a
/// reused file, the records of its earlier segment do not. None found in the newest
/// `.open` segment: the damage is a torn tail.
pub fn records_after(path: &Path, offset: u64, seed: u32) -> io::Result<AfterDamage> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset + 1))?;
    let mut rest = Vec::new();
    // Bounded: segments are sealed at the configured size; only run at recovery.
    f.read_to_end(&mut rest)?;
    let magic = super::record::RECORD_MAGIC.to_le_bytes();
    let mut found = AfterDamage::default();
    let mut i = 0;
    while i + RECORD_HEADER_LEN <= rest.len() {
        if rest[i..i + 4] == magic {
            let h: &[u8; RECORD_HEADER_LEN] = rest[i..i + RECORD_HEADER_LEN].try_into().unwrap();
            if let Some(h) = RecordHeader::decode(h) {
                let end = i + RECORD_HEADER_LEN + h.body_len as usize;
                if let Some((_, ids, _)) = rest
                    .get(i + RECORD_HEADER_LEN..end)
                    .and_then(|body| h.verify(seed, body))
                {
                    found.records += 1;
                    found.rows += u64::from(h.rows);
                    found.batch_ids.extend(ids.into_iter().map(<[u8]>::to_vec));
                    i = end;
                    continue;
                }
            }
        }
        i += 1;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = segment_path(Path::new("/x"), 17, true);
        let n = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(n, "00000000000000000017.seg");
        assert_eq!(parse_name(n), Some((17, true)));
        assert_eq!(parse_name("00000000000000000017.open"), Some((17, false)));
        assert_eq!(parse_name("17.seg"), None);
        assert_eq!(parse_name("batch-ids"), None);
    }
}
