//! The on-disk framing of a spool segment: one header, then records.
//!
//! ```text
//! segment header (32 bytes):
//!   magic  b"PVSPOOL1"
//!   u32 LE format version (2; 1 still read) | u32 LE reserved (0)
//!   u64 LE segment id                       | i64 LE created at (Unix ms)
//! record:
//!   u32 LE magic 0x3152_5650 ("PVR1")
//!   u32 LE body length (bytes after this 20-byte header)
//!   u32 LE CRC32C of the segment id (u64 LE; version 2 only), kind, reserved, rows
//!          and body
//!   u8 kind (1 = events of one group-commit round, 2 = one posted batch,
//!            3 = one round holding posted batches with ids)
//!   3 bytes reserved (0)
//!   u32 LE rows
//!   body: kind 2 starts with u8 id length + batch id bytes (0 = no id);
//!         kind 3 with u16 LE id count, then per id u8 length + id bytes;
//!         the rest is a spool payload (`ipc::encode_payload`: a tag byte, then an
//!         Arrow IPC stream or, for schema v1, its body as it is or, once the spool
//!         holds a backlog, in one LZ4 block)
//! ```
//!
//! Since session 20 the writer writes kinds 1 and 3 only: a posted batch joins its
//! round's record (one IPC encode and decode per round, not per 100-row batch), and
//! its id goes in the same checksummed record, so recovery finds the id exactly when
//! it finds the rows. Kind 2 is still read (segments written before). A sink older
//! than that quarantines a segment holding a kind-3 record (nothing is lost; move the
//! segment back after upgrading).
//!
//! Version 2 (session 26) binds every record to its segment: the segment id goes under
//! the checksum first. The writer reuses the files of loaded segments
//! (`--spool-recycle`, `Spool::delete`) and writes over what they held; the
//! records of a file's earlier segment then never verify as this one's, so a torn
//! tail over them is still found (and cut) as a torn tail, never read as records.
//! A version-1 segment (written before) reads as it always did: its records' CRC has
//! no segment id.
//!
//! Hand-written rather than a crate: the format must be exactly what the recovery
//! rules in DESIGN.md talk about (length + checksum + payload, torn tail detection),
//! and it is a few dozen lines.

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"PVSPOOL1";
/// Segment format version written in the header.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest segment format version still read (records not bound to the segment).
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Size of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Magic at the start of every record.
pub const RECORD_MAGIC: u32 = 0x3152_5650;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 20;
/// A body longer than this is treated as corruption (no legitimate record is that big:
/// request bodies and group-commit rounds are capped far below it).
pub const MAX_RECORD_BODY: u32 = 1 << 30;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// The accepted events of all requests of one group-commit round.
    Events = 1,
    /// One batch posted to `/v1/batches` (with its batch id, if any). Read, no longer
    /// written.
    Batch = 2,
    /// The events of one group-commit round, posted batches among them, with the ids
    /// of those batches.
    RoundWithIds = 3,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Events),
            2 => Some(RecordKind::Batch),
            3 => Some(RecordKind::RoundWithIds),
            _ => None,
        }
    }
}

/// The segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Monotonic id of the segment within its spool.
    pub id: u64,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
    /// Format version ([`FORMAT_VERSION`] for a segment written now).
    pub version: u32,
}

impl SegmentHeader {
    /// The header of a segment written now (the current format version).
    pub fn new(id: u64, created_at_ms: i64) -> Self {
        SegmentHeader {
            id,
            created_at_ms,
            version: FORMAT_VERSION,
        }
    }

    /// What this segment's record checksums start from ([`record_head`],
    /// [`RecordHeader::verify`]): the CRC32C of the segment id from version 2, nothing
    /// (0) in version 1.
    pub fn record_seed(&self) -> u32 {
        if self.version >= 2 {
            record_seed(self.id)
        } else {
            0
        }
    }

    /// The 32 header bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[..8].copy_from_slice(SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[16..24].copy_from_slice(&self.id.to_le_bytes());
        b[24..32].copy_from_slice(&self.created_at_ms.to_le_bytes());
        b
    }

    /// Parses a header; `None` if the magic or version is wrong.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < SEGMENT_HEADER_LEN || &b[..8] != SEGMENT_MAGIC {
            return None;
        }
        let version = u32::from_le_bytes(b[8..12].try_into().ok()?);
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return None;
        }
        Some(SegmentHeader {
            id: u64::from_le_bytes(b[16..24].try_into().ok()?),
            created_at_ms: i64::from_le_bytes(b[24..32].try_into().ok()?),
            version,
        })
    }
}

/// Where the checksums of segment `id`'s records start in the current format: the
/// CRC32C of the id (u64 LE).
pub fn record_seed(id: u64) -> u32 {
    crc32c::crc32c(&id.to_le_bytes())
}

/// Most batch ids one [`RecordKind::RoundWithIds`] record holds (the writer starts a
/// new round past it).
pub const MAX_IDS_PER_RECORD: usize = u16::MAX as usize;

/// Appends one framed record to `out`, its checksum started from `seed` (the segment's
/// [`SegmentHeader::record_seed`]). Ids (each at most 255 bytes, at most
/// [`MAX_IDS_PER_RECORD`]) are written for [`RecordKind::Batch`] (at most one) and
/// [`RecordKind::RoundWithIds`]; ignored for [`RecordKind::Events`].
pub fn encode_record(
    out: &mut Vec<u8>,
    seed: u32,
    kind: RecordKind,
    rows: u32,
    ids: &[&[u8]],
    ipc: &[u8],
) {
    out.extend_from_slice(&record_head(seed, kind, rows, ids, ipc));
    out.extend_from_slice(ipc);
}

/// The bytes of the record [`encode_record`] frames, up to its payload `ipc` (header and
/// ids; the length and CRC cover the payload too): written before the payload, the two
/// are the record, without copying the payload into one buffer with its header.
pub fn record_head(seed: u32, kind: RecordKind, rows: u32, ids: &[&[u8]], ipc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + 8);
    out.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    out.extend_from_slice(&[0u8; 8]); // length and crc, patched below
    out.push(kind as u8);
    out.extend_from_slice(&[0u8; 3]);
    out.extend_from_slice(&rows.to_le_bytes());
    let put = |out: &mut Vec<u8>, id: &[u8]| {
        debug_assert!(id.len() <= 255);
        out.push(id.len() as u8);
        out.extend_from_slice(id);
    };
    match kind {
        RecordKind::Events => {}
        RecordKind::Batch => {
            debug_assert!(ids.len() <= 1);
            put(&mut out, ids.first().copied().unwrap_or(&[]));
        }
        RecordKind::RoundWithIds => {
            debug_assert!(ids.len() <= MAX_IDS_PER_RECORD);
            out.extend_from_slice(&(ids.len() as u16).to_le_bytes());
            for id in ids {
                put(&mut out, id);
            }
        }
    }
    let body_len = (out.len() + ipc.len() - RECORD_HEADER_LEN) as u32;
    let crc = crc32c::crc32c_append(crc32c::crc32c_append(seed, &out[12..]), ipc);
    out[4..8].copy_from_slice(&body_len.to_le_bytes());
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A verified record body: its kind, its batch ids (kinds 2 and 3), and the spool
/// payload.
pub type Verified<'b> = (RecordKind, Vec<&'b [u8]>, &'b [u8]);

/// The fixed part of a record, as read from disk before the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Body length.
    pub body_len: u32,
    /// Expected CRC32C.
    pub crc: u32,
    /// Kind byte (validated against the CRC later).
    pub kind: u8,
    /// Rows in the record.
    pub rows: u32,
    /// The bytes the CRC covers that precede the body.
    pub crc_prefix: [u8; 8],
}

impl RecordHeader {
    /// Parses the 20 header bytes; `None` for a bad magic or an absurd length.
    pub fn decode(b: &[u8; RECORD_HEADER_LEN]) -> Option<Self> {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if word(0) != RECORD_MAGIC || word(4) > MAX_RECORD_BODY {
            return None;
        }
        let mut crc_prefix = [0u8; 8];
        crc_prefix.copy_from_slice(&b[12..20]);
        Some(RecordHeader {
            body_len: word(4),
            crc: word(8),
            kind: b[12],
            rows: word(16),
            crc_prefix,
        })
    }

    /// Checks the body against the CRC, started from `seed` (the segment's
    /// [`SegmentHeader::record_seed`]), and splits it into (kind, batch ids, payload).
    /// `None` for a mismatch (a record of another segment among them), an unknown kind
    /// or an id list running past the body.
    pub fn verify<'b>(&self, seed: u32, body: &'b [u8]) -> Option<Verified<'b>> {
        let crc = crc32c::crc32c_append(crc32c::crc32c_append(seed, &self.crc_prefix), body);
        if crc != self.crc {
            return None;
        }
        // One `u8 length + bytes` id at `at`: (id, the offset after it).
        let id_at = |at: usize| -> Option<(&'b [u8], usize)> {
            let n = *body.get(at)? as usize;
            Some((body.get(at + 1..at + 1 + n)?, at + 1 + n))
        };
        let kind = RecordKind::from_u8(self.kind)?;
        let (ids, at) = match kind {
            RecordKind::Events => (Vec::new(), 0),
            RecordKind::Batch => {
                let (id, at) = id_at(0)?;
                (if id.is_empty() { vec![] } else { vec![id] }, at)
            }
            RecordKind::RoundWithIds => {
                let count = u16::from_le_bytes(body.get(..2)?.try_into().ok()?);
                let mut ids = Vec::with_capacity(usize::from(count));
                let mut at = 2;
                for _ in 0..count {
                    let (id, next) = id_at(at)?;
                    ids.push(id);
                    at = next;
                }
                (ids, at)
            }
        };
        Some((kind, ids, &body[at..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a record, pinned in both formats (the CRC-32Cs computed apart from
    /// this crate, a bitwise CRC-32C in Python): the encoder and the verifier are
    /// tested together below, and a change to both would pass there while older spools
    /// stopped reading. In version 2 (segment 42 here) the checksum is that of the
    /// id's eight bytes, then of the same bytes as in version 1: only those four bytes
    /// differ.
    #[test]
    fn a_record_s_bytes_are_pinned() {
        let v1 = SegmentHeader {
            version: 1,
            ..SegmentHeader::new(42, 0)
        };
        let v2 = SegmentHeader::new(42, 0);
        for (header, crc) in [(v1, [148, 129, 39, 58]), (v2, [100, 231, 220, 183])] {
            let seed = header.record_seed();
            let mut out = Vec::new();
            encode_record(
                &mut out,
                seed,
                RecordKind::RoundWithIds,
                9,
                &[b"ab", b"c"],
                b"xyz",
            );
            let mut want: Vec<u8> = vec![
                80, 86, 82, 49, // magic
                10, 0, 0, 0, // body length
            ];
            want.extend(crc); // CRC-32C of (the segment id and) what follows
            want.extend([
                3, 0, 0, 0, // kind, reserved
                9, 0, 0, 0, // rows
                2, 0, 2, 97, 98, 1, 99, // two ids: "ab", "c"
                120, 121, 122, // payload
            ]);
            assert_eq!(out, want, "version {}", header.version);
            assert_eq!(
                record_head(seed, RecordKind::RoundWithIds, 9, &[b"ab", b"c"], b"xyz"),
                want[..27]
            );
            let h = RecordHeader::decode(want[..RECORD_HEADER_LEN].try_into().unwrap()).unwrap();
            assert!(h.verify(seed, &want[RECORD_HEADER_LEN..]).is_some());
        }
    }

    /// A record verifies only in its own segment: a file reused for another segment
    /// holds the records of the one before, and those must read as damage.
    #[test]
    fn a_record_verifies_in_its_segment_only() {
        let (mine, other) = (SegmentHeader::new(7, 0), SegmentHeader::new(8, 0));
        let mut out = Vec::new();
        encode_record(
            &mut out,
            mine.record_seed(),
            RecordKind::Events,
            5,
            &[],
            b"p",
        );
        let h = RecordHeader::decode(out[..RECORD_HEADER_LEN].try_into().unwrap()).unwrap();
        let body = &out[RECORD_HEADER_LEN..];
        assert!(h.verify(mine.record_seed(), body).is_some());
        assert!(h.verify(other.record_seed(), body).is_none());
        // Nor as a version-1 record.
        assert!(h.verify(0, body).is_none());
    }

    #[test]
    fn record_round_trip() {
        let mut out = Vec::new();
        encode_record(&mut out, 3, RecordKind::Batch, 7, &[b"abc"], b"payload");
        let h = RecordHeader::decode(out[..RECORD_HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!(h.rows, 7);
        assert_eq!(h.body_len as usize, out.len() - RECORD_HEADER_LEN);
        let (k, ids, ipc) = h.verify(3, &out[RECORD_HEADER_LEN..]).unwrap();
        assert_eq!(
            (k, ids, ipc),
            (RecordKind::Batch, vec![&b"abc"[..]], &b"payload"[..])
        );
    }

    #[test]
    fn round_with_ids_round_trip() {
        let long = [b'x'; 255];
        for ids in [vec![], vec![&b"a"[..]], vec![&b"one"[..], &long[..], b"3"]] {
            let mut out = Vec::new();
            encode_record(&mut out, 0, RecordKind::RoundWithIds, 9, &ids, b"payload");
            let h = RecordHeader::decode(out[..RECORD_HEADER_LEN].try_into().unwrap()).unwrap();
            let (k, got, ipc) = h.verify(0, &out[RECORD_HEADER_LEN..]).unwrap();
            assert_eq!(
                (k, got, ipc),
                (RecordKind::RoundWithIds, ids, &b"payload"[..])
            );
        }
        // An id list claiming more than the body holds is refused, CRC or not.
        let mut out = Vec::new();
        encode_record(&mut out, 0, RecordKind::RoundWithIds, 1, &[b"abc"], b"");
        let body_len = out.len() - RECORD_HEADER_LEN;
        out.truncate(out.len() - 1);
        let crc = crc32c::crc32c(&out[12..]);
        out[4..8].copy_from_slice(&((body_len - 1) as u32).to_le_bytes());
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        let h = RecordHeader::decode(out[..RECORD_HEADER_LEN].try_into().unwrap()).unwrap();
        assert!(h.verify(0, &out[RECORD_HEADER_LEN..]).is_none());
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let mut out = Vec::new();
        let seed = record_seed(11);
        encode_record(
            &mut out,
            seed,
            RecordKind::RoundWithIds,
            3,
            &[b"id"],
            b"some ipc bytes",
        );
        for i in 0..out.len() * 8 {
            let mut c = out.clone();
            c[i / 8] ^= 1 << (i % 8);
            let ok = RecordHeader::decode(c[..RECORD_HEADER_LEN].try_into().unwrap())
                .filter(|h| h.body_len as usize == c.len() - RECORD_HEADER_LEN)
                .and_then(|h| h.verify(seed, &c[RECORD_HEADER_LEN..]).map(|_| ()));
            assert!(ok.is_none(), "flip of bit {i} not detected");
        }
    }

    #[test]
    fn segment_header_round_trip() {
        let h = SegmentHeader::new(42, 1_700_000_000_000);
        assert_eq!(h.version, FORMAT_VERSION);
        assert_eq!(SegmentHeader::decode(&h.encode()), Some(h));
        let mut b = h.encode();
        b[0] = b'X';
        assert_eq!(SegmentHeader::decode(&b), None);
        // Version 1 is still read, its records' checksums not seeded; others are not.
        let v1 = SegmentHeader { version: 1, ..h };
        assert_eq!(SegmentHeader::decode(&v1.encode()), Some(v1));
        assert_eq!(v1.record_seed(), 0);
        assert_eq!(h.record_seed(), record_seed(42));
        for version in [0, FORMAT_VERSION + 1] {
            assert_eq!(
                SegmentHeader::decode(&SegmentHeader { version, ..h }.encode()),
                None
            );
        }
    }
}
