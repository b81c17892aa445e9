//! Arrow IPC stream encoding of spool payloads (LZ4 frame compressed), and of
//! quarantined chunks (plain streams any Arrow reader opens).

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use std::sync::OnceLock;

use arrow_schema::ArrowError;

/// Encodes `batches` (same schema, at least one) as one IPC stream, LZ4-compressed.
pub fn encode(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    encode_with(batches, true)
}

/// Below this many rows a spool payload is not compressed: LZ4 frames every one of a
/// batch's ~80 buffers with its own header, which costs more than it saves on a
/// handful of events (single-event requests are the common case).
const COMPRESS_FROM_ROWS: usize = 64;

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
/// Tag of a spool payload whose schema message was schema v1's, left out.
const V1_BODY: u8 = 1;

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

/// Encodes a spool payload: the IPC stream of `batches`, without its schema message
/// when that is schema v1's (one tag byte says which). Read with [`decode_compact`].
pub fn encode_compact(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let stream = encode_with(batches, rows >= COMPRESS_FROM_ROWS)?;
    let prefix = v1_prefix();
    let mut out = Vec::with_capacity(stream.len() + 1);
    match stream.strip_prefix(prefix) {
        Some(body) if !prefix.is_empty() => {
            out.push(V1_BODY);
            out.extend_from_slice(body);
        }
        _ => {
            out.push(FULL);
            out.extend_from_slice(&stream);
        }
    }
    Ok(out)
}

/// Decodes a payload written by [`encode_compact`].
pub fn decode_compact(bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    match bytes.split_first() {
        Some((&FULL, stream)) => decode(stream),
        Some((&V1_BODY, body)) => {
            let prefix = v1_prefix();
            let reader = StreamReader::try_new(std::io::Read::chain(prefix, body), None)?;
            reader.collect()
        }
        _ => Err(ArrowError::IpcError(
            "empty or unknown spool payload tag".into(),
        )),
    }
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
        assert_eq!(compact[0], V1_BODY);
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
}
