//! The on-disk framing of a spool segment: one header, then records.
//!
//! ```text
//! segment header (32 bytes):
//!   magic  b"PVSPOOL1"
//!   u32 LE format version (1) | u32 LE reserved (0)
//!   u64 LE segment id         | i64 LE created at (Unix ms)
//! record:
//!   u32 LE magic 0x3152_5650 ("PVR1")
//!   u32 LE body length (bytes after this 20-byte header)
//!   u32 LE CRC32C of kind, reserved, rows and body
//!   u8 kind (1 = events of one group-commit round, 2 = one posted batch)
//!   3 bytes reserved (0)
//!   u32 LE rows
//!   body: kind 2 starts with u8 id length + batch id bytes (0 = no id);
//!         the rest is a spool payload (`ipc::encode_payload`: a tag byte, then an
//!         Arrow IPC stream or, for schema v1, its body as it is or, once the spool
//!         holds a backlog, in one LZ4 block)
//! ```
//!
//! Hand-written rather than a crate: the format must be exactly what the recovery
//! rules in DESIGN.md talk about (length + checksum + payload, torn tail detection),
//! and it is a few dozen lines.

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"PVSPOOL1";
/// Segment format version written in the header.
pub const FORMAT_VERSION: u32 = 1;
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
    /// One batch posted to `/v1/batches` (with its batch id, if any).
    Batch = 2,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Events),
            2 => Some(RecordKind::Batch),
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
}

impl SegmentHeader {
    /// The 32 header bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[..8].copy_from_slice(SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.id.to_le_bytes());
        b[24..32].copy_from_slice(&self.created_at_ms.to_le_bytes());
        b
    }

    /// Parses a header; `None` if the magic or version is wrong.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < SEGMENT_HEADER_LEN || &b[..8] != SEGMENT_MAGIC {
            return None;
        }
        if u32::from_le_bytes(b[8..12].try_into().ok()?) != FORMAT_VERSION {
            return None;
        }
        Some(SegmentHeader {
            id: u64::from_le_bytes(b[16..24].try_into().ok()?),
            created_at_ms: i64::from_le_bytes(b[24..32].try_into().ok()?),
        })
    }
}

/// Appends one framed record to `out`. `batch_id` is only written for
/// [`RecordKind::Batch`] and must be at most 255 bytes.
pub fn encode_record(
    out: &mut Vec<u8>,
    kind: RecordKind,
    rows: u32,
    batch_id: Option<&[u8]>,
    ipc: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    out.extend_from_slice(&[0u8; 8]); // length and crc, patched below
    out.push(kind as u8);
    out.extend_from_slice(&[0u8; 3]);
    out.extend_from_slice(&rows.to_le_bytes());
    if kind == RecordKind::Batch {
        let id = batch_id.unwrap_or(&[]);
        debug_assert!(id.len() <= 255);
        out.push(id.len() as u8);
        out.extend_from_slice(id);
    }
    out.extend_from_slice(ipc);
    let body_len = (out.len() - start - RECORD_HEADER_LEN) as u32;
    let crc = crc32c::crc32c(&out[start + 12..]);
    out[start + 4..start + 8].copy_from_slice(&body_len.to_le_bytes());
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// A verified record body: its kind, the batch id (kind 2), and the Arrow IPC bytes.
pub type Verified<'b> = (RecordKind, Option<&'b [u8]>, &'b [u8]);

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

    /// Checks the body against the CRC and splits it into (kind, batch id, ipc).
    pub fn verify<'b>(&self, body: &'b [u8]) -> Option<Verified<'b>> {
        let crc = crc32c::crc32c_append(crc32c::crc32c(&self.crc_prefix), body);
        if crc != self.crc {
            return None;
        }
        match RecordKind::from_u8(self.kind)? {
            RecordKind::Events => Some((RecordKind::Events, None, body)),
            RecordKind::Batch => {
                let n = *body.first()? as usize;
                let id = body.get(1..1 + n)?;
                let ipc = &body[1 + n..];
                Some((RecordKind::Batch, (n > 0).then_some(id), ipc))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let mut out = Vec::new();
        encode_record(&mut out, RecordKind::Batch, 7, Some(b"abc"), b"payload");
        let h = RecordHeader::decode(out[..RECORD_HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!(h.rows, 7);
        assert_eq!(h.body_len as usize, out.len() - RECORD_HEADER_LEN);
        let (k, id, ipc) = h.verify(&out[RECORD_HEADER_LEN..]).unwrap();
        assert_eq!(
            (k, id, ipc),
            (RecordKind::Batch, Some(&b"abc"[..]), &b"payload"[..])
        );
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let mut out = Vec::new();
        encode_record(&mut out, RecordKind::Events, 3, None, b"some ipc bytes");
        for i in 0..out.len() * 8 {
            let mut c = out.clone();
            c[i / 8] ^= 1 << (i % 8);
            let ok = RecordHeader::decode(c[..RECORD_HEADER_LEN].try_into().unwrap())
                .filter(|h| h.body_len as usize == c.len() - RECORD_HEADER_LEN)
                .and_then(|h| h.verify(&c[RECORD_HEADER_LEN..]).map(|_| ()));
            assert!(ok.is_none(), "flip of bit {i} not detected");
        }
    }

    #[test]
    fn segment_header_round_trip() {
        let h = SegmentHeader {
            id: 42,
            created_at_ms: 1_700_000_000_000,
        };
        assert_eq!(SegmentHeader::decode(&h.encode()), Some(h));
        let mut b = h.encode();
        b[0] = b'X';
        assert_eq!(SegmentHeader::decode(&b), None);
    }
}
