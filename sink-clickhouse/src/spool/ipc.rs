//! Arrow IPC stream encoding of spool payloads (LZ4 frame compressed).

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_schema::ArrowError;

/// Encodes `batches` (same schema, at least one) as one IPC stream.
pub fn encode(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let opts = IpcWriteOptions::default()
        .try_with_compression(Some(arrow_ipc::CompressionType::LZ4_FRAME))?;
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
