//! Arrow IPC stream encoding of spool payloads (the IPC body as it is, or in one LZ4 block
//! once the spool holds a backlog), and of quarantined chunks (plain streams any Arrow
//! reader opens).

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use std::sync::OnceLock;

use arrow_schema::ArrowError;

/// Encodes `batches` (same schema, at least one) as one IPC stream, LZ4-compressed.
pub fn encode(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    encode_with(batches, true)
}

/// 8-byte alignment, not the default 64: a batch has ~80 buffers, and padding each to
/// 64 bytes would dominate a small record.
fn options(lz4: bool) -> Result<IpcWriteOptions, ArrowError> {
    let opts = IpcWriteOptions::try_new(8, false, arrow_ipc::MetadataVersion::V5)?;
    if lz4 {
        opts.try_with_compression(Some(arrow_ipc::CompressionType::LZ4_FRAME))
    } else {
        Ok(opts)
    }
}

fn encode_with(batches: &[RecordBatch], lz4: bool) -> Result<Vec<u8>, ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let opts = options(lz4)?;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut w = StreamWriter::try_new_with_options(&mut out, &first.schema(), opts)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    drop(w);
    Ok(out)
}

/// Decodes an IPC stream written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    StreamReader::try_new(bytes, None)?.collect()
}

/// Tag of a spool payload that is a whole IPC stream (any schema).
const FULL: u8 = 0;
/// Tag of a spool payload whose schema message was schema v1's, left out, the rest
/// as it is: what the spool writes while it is not backlogged (since session 17; before
/// session 15, records under 64 rows, and before that with Arrow's per-buffer LZ4
/// frames inside: all still read).
pub(crate) const V1_BODY: u8 = 1;
/// Tag of a spool payload as [`V1_BODY`], its (uncompressed) IPC body in one LZ4 block:
/// the length of the body (u32 LE), then the block.
///
/// Why one block rather than Arrow's own LZ4_FRAME compression (what records before
/// session 15 carry, still read): Arrow frames each of a batch's ~80 buffers on its
/// own, with a frame header and a fresh compression table each, and decompresses each
/// into a zeroed buffer. For the same 10⁵ rows in 1,000-row records, one block per
/// record encoded in 47 ms instead of 72–88, decoded in 24 instead of 32–60, and took
/// 7.9 MB instead of 10.0 (BENCHMARKS.md, session 15): the spool's LZ4 was about a
/// quarter of the sink's CPU end to end. Small records gain most: one block takes a
/// one-event body (mostly IPC metadata) from 2,528 to 690 bytes for ≈ 3 µs, where
/// per-buffer frames made it larger (2,912), so such records used to go uncompressed.
pub(crate) const V1_BODY_LZ4: u8 = 2;

/// The bytes a stream of schema v1 starts with (its schema message), encoded once.
/// Every spool record would otherwise repeat these ~7 KB: for single-event requests
/// that is most of the record, and of the fsynced bytes.
fn v1_prefix() -> &'static [u8] {
    static PREFIX: OnceLock<Vec<u8>> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let schema = ingest_core::schema::schema();
        let mut out = Vec::new();
        // The schema message does not depend on the compression (that is per batch).
        let opts = options(false).expect("valid options");
        let mut w =
            StreamWriter::try_new_with_options(&mut out, &schema, opts).expect("writing to a Vec");
        w.flush().expect("writing to a Vec");
        drop(w);
        out
    })
}

/// A spool payload, `buf[start..]`: encoded without a copy of the IPC body when it is
/// stored as it is (the body is left where the IPC writer put it, the tag byte written
/// over the end of the schema prefix before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    buf: Vec<u8>,
    start: usize,
}

impl Payload {
    /// The payload's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The payload as its own `Vec` (a copy only for an uncompressed body).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.buf.drain(..self.start);
        self.buf
    }
}

impl From<Vec<u8>> for Payload {
    fn from(buf: Vec<u8>) -> Self {
        Payload { buf, start: 0 }
    }
}

/// Encodes a spool payload: for schema v1, the IPC stream of `batches` without its
/// schema message, in one LZ4 block when `compress` (else as it is); any other
/// schema's stream whole (one tag byte says which). Read with [`decode_compact`].
///
/// Uncompressed is what the spool writes while its segments are loaded as fast as
/// they come (`--spool-compress-above`): the LZ4 block costs the sink about a fifth
/// of its CPU end to end, spent on files deleted a second later (BENCHMARKS.md,
/// session 17).
pub fn encode_payload(batches: &[RecordBatch], compress: bool) -> Result<Payload, ArrowError> {
    let mut stream = encode_with(batches, false)?;
    let prefix = v1_prefix();
    if prefix.is_empty() || !stream.starts_with(prefix) {
        // Any other schema: the whole stream, as it is.
        let mut out = Vec::with_capacity(stream.len() + 1);
        out.push(FULL);
        out.extend_from_slice(&stream);
        return Ok(out.into());
    }
    let body = &stream[prefix.len()..];
    // Schema v1: every record the sink's routes write (both conform to it).
    if !compress {
        let start = prefix.len() - 1;
        stream[start] = V1_BODY;
        return Ok(Payload { buf: stream, start });
    }
    let too_long = |len| ArrowError::IpcError(format!("spool payload of {len} bytes"));
    let len = u32::try_from(body.len()).map_err(|_| too_long(body.len()))?;
    // Compressed straight into the payload (no second buffer to copy from).
    let mut out = vec![0u8; 5 + lz4_flex::block::get_maximum_output_size(body.len())];
    out[0] = V1_BODY_LZ4;
    out[1..5].copy_from_slice(&len.to_le_bytes());
    let n = lz4_flex::block::compress_into(body, &mut out[5..])
        .map_err(|e| ArrowError::IpcError(format!("spool payload LZ4 block: {e}")))?;
    out.truncate(5 + n);
    Ok(out.into())
}

/// [`encode_payload`], compressed, as a `Vec`.
pub fn encode_compact(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    encode_payload(batches, true).map(Payload::into_vec)
}

/// Decodes a payload written by [`encode_compact`]. A schema v1 body is read without
/// decoding the schema message it leaves out (`ingest_core::read_ipc_v1_body`: that
/// 33-field schema was decoded again for every record, and the body copied through a
/// reader), with arrow-ipc's own checks on every batch.
pub fn decode_compact(bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    let v1 = |body: &[u8]| {
        ingest_core::read_ipc_v1_body(body, usize::MAX, usize::MAX)
            .map_err(|e| ArrowError::IpcError(e.to_string()))
    };
    match bytes.split_first() {
        Some((&FULL, stream)) => decode(stream),
        Some((&V1_BODY, body)) => v1(body),
        Some((&V1_BODY_LZ4, rest)) => v1(&decompress_block(rest)?),
        _ => Err(ArrowError::IpcError(
            "empty or unknown spool payload tag".into(),
        )),
    }
}

/// The body of a [`V1_BODY_LZ4`] payload: its stated length is checked against the
/// record size limit and against what LZ4 can expand the block to (at most 255 bytes
/// per byte) before any allocation, and the block must decompress to exactly that
/// length.
fn decompress_block(rest: &[u8]) -> Result<Vec<u8>, ArrowError> {
    let bad = |why: String| ArrowError::IpcError(format!("spool payload LZ4 block: {why}"));
    let (len, block) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("shorter than its length".into()))?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > super::record::MAX_RECORD_BODY as usize {
        return Err(bad(format!(
            "states {len} bytes, more than any record holds"
        )));
    }
    if len > block.len().saturating_mul(255) {
        return Err(bad(format!(
            "states {len} bytes, more than {} compressed bytes can hold",
            block.len()
        )));
    }
    let body = lz4_flex::block::decompress(block, len).map_err(|e| bad(e.to_string()))?;
    if body.len() != len {
        return Err(bad(format!("{} bytes, {len} stated", body.len())));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest_core::{events_to_batch, Event};

    #[test]
    fn compact_payloads_leave_out_the_v1_schema_and_round_trip() {
        let batch = events_to_batch(&[Event::default(), Event::default()]);
        let full = encode(std::slice::from_ref(&batch)).unwrap();
        let compact = encode_compact(std::slice::from_ref(&batch)).unwrap();
        assert_eq!(compact[0], V1_BODY_LZ4);
        // Records of earlier versions: the uncompressed body (under 64 rows) still reads.
        let mut old = vec![V1_BODY];
        old.extend_from_slice(full_plain(&batch).strip_prefix(v1_prefix()).unwrap());
        assert_eq!(decode_compact(&old).unwrap(), vec![batch.clone()]);
        assert!(
            compact.len() + 1500 < full.len(),
            "{} vs {}",
            compact.len(),
            full.len()
        );
        assert_eq!(decode_compact(&compact).unwrap(), vec![batch]);
        // Any other schema is stored whole.
        let other = RecordBatch::try_from_iter([(
            "x",
            std::sync::Arc::new(arrow_array::Int32Array::from(vec![1, 2])) as arrow_array::ArrayRef,
        )])
        .unwrap();
        let c = encode_compact(std::slice::from_ref(&other)).unwrap();
        assert_eq!(c[0], FULL);
        assert_eq!(decode_compact(&c).unwrap(), vec![other]);
        assert!(decode_compact(&[]).is_err() && decode_compact(&[9, 1]).is_err());
    }

    fn full_plain(b: &RecordBatch) -> Vec<u8> {
        encode_with(std::slice::from_ref(b), false).unwrap()
    }

    fn rows(n: usize) -> RecordBatch {
        let events: Vec<Event> = (0..n)
            .map(|i| Event {
                visitor_id: i as u64,
                pathname: format!("/p/{}", i % 7).into(),
                ..Event::default()
            })
            .collect();
        events_to_batch(&events)
    }

    /// A schema-v1 payload of any size is one LZ4 block of the IPC body, smaller than
    /// the body and read back equal.
    #[test]
    fn v1_payloads_are_one_lz4_block() {
        let one = rows(1);
        let c = encode_compact(std::slice::from_ref(&one)).unwrap();
        assert_eq!(c[0], V1_BODY_LZ4);
        let plain = encode_with(std::slice::from_ref(&one), false).unwrap();
        assert!(c.len() * 2 < plain.len() - v1_prefix().len(), "{}", c.len());
        assert_eq!(decode_compact(&c).unwrap(), vec![one]);

        let many = rows(2000);
        let c = encode_compact(std::slice::from_ref(&many)).unwrap();
        assert_eq!(c[0], V1_BODY_LZ4);
        let stated = u32::from_le_bytes(c[1..5].try_into().unwrap()) as usize;
        let plain = encode_with(std::slice::from_ref(&many), false).unwrap();
        assert_eq!(stated + v1_prefix().len(), plain.len());
        assert!(c.len() * 4 < stated, "{} of {stated}", c.len());
        assert_eq!(decode_compact(&c).unwrap(), vec![many.clone()]);

        // Records written before (Arrow's LZ4_FRAME per buffer, tag V1_BODY) still read.
        let old = encode_with(std::slice::from_ref(&many), true).unwrap();
        let mut old_payload = vec![V1_BODY];
        old_payload.extend_from_slice(old.strip_prefix(v1_prefix()).unwrap());
        assert_eq!(decode_compact(&old_payload).unwrap(), vec![many]);
    }

    /// Uncompressed payloads are the IPC body after one tag byte, without a copy, and
    /// read back equal; `into_vec` gives the same bytes.
    #[test]
    fn uncompressed_v1_payloads_are_the_body_as_it_is() {
        let many = rows(2000);
        let p = encode_payload(std::slice::from_ref(&many), false).unwrap();
        let plain = encode_with(std::slice::from_ref(&many), false).unwrap();
        assert_eq!(p.as_bytes()[0], V1_BODY);
        assert_eq!(&p.as_bytes()[1..], plain.strip_prefix(v1_prefix()).unwrap());
        assert_eq!(decode_compact(p.as_bytes()).unwrap(), vec![many.clone()]);
        let bytes = p.as_bytes().to_vec();
        assert_eq!(p.into_vec(), bytes);
        // Compressed, the same rows in a quarter of the bytes or less.
        let c = encode_payload(std::slice::from_ref(&many), true).unwrap();
        assert_eq!(c.as_bytes()[0], V1_BODY_LZ4);
        assert!(c.as_bytes().len() * 4 < bytes.len());
        assert_eq!(decode_compact(c.as_bytes()).unwrap(), vec![many]);
    }

    /// A damaged block is an error, never a panic or a huge allocation.
    #[test]
    fn a_damaged_lz4_block_is_an_error() {
        let c = encode_compact(&[rows(500)]).unwrap();
        let mut huge = c.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut past_lz4 = c.clone();
        let block_len = (c.len() - 5) as u32;
        past_lz4[1..5].copy_from_slice(&(block_len * 255 + 1).to_le_bytes());
        let mut short = c.clone();
        short[1..5].copy_from_slice(&7u32.to_le_bytes());
        let mut cut = c.clone();
        cut.truncate(c.len() / 2);
        for (what, bad) in [
            ("huge", huge),
            ("short", short),
            ("cut", cut),
            ("no length", vec![V1_BODY_LZ4, 1]),
        ] {
            let e = decode_compact(&bad).unwrap_err().to_string();
            assert!(e.contains("LZ4 block"), "{what}: {e}");
        }
    }
}
