//! Streams of schema v1 read without arrow-ipc's `StreamReader`: the schema message is
//! recognised by its bytes and not decoded, and each record batch message is verified
//! once and decoded with arrow-ipc's own `read_record_batch` (the same array building
//! and validation `StreamReader` does).
//!
//! Why: the edge posts every 100-event batch as a stream of its own, schema message
//! first. `StreamReader` decodes that 33-field schema (verified flatbuffer, `Field`s and
//! their metadata) for every request, `scan_ipc` and `lz4_frames` each verified every
//! message again, and the reader copied every message out of the input: together
//! about as much as the batch's own decoding (BENCHMARKS.md, session 20). The sink's
//! spool records (schema v1 with the schema message left out) are read the same way.
//!
//! Anything else — another schema, dictionaries, a codec other than LZ4 frames, custom
//! metadata, a second schema message, a message that does not parse — makes
//! [`read_v1`] answer `None`, and the caller reads the stream with `StreamReader` as it
//! always did, so what is refused, and why, stays arrow-ipc's decision.

use std::collections::HashMap;
use std::sync::OnceLock;

use arrow_array::RecordBatch;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_ipc::{CompressionType, MessageHeader};

use super::messages::{Message, Messages};
use super::{decoded_size, enc_err, lz4_frames, IpcStats};
use crate::error::Result;
use crate::schema;

/// The schema message of schema v1 as [`super::write_ipc`] and [`super::IpcEncoder`]
/// write it (continuation marker, length, flatbuffer, padding): the bytes a stream of
/// schema v1 from this crate starts with. The message does not depend on the
/// compression, which is per batch.
pub(crate) fn v1_schema_message() -> &'static [u8] {
    static MESSAGE: OnceLock<Vec<u8>> = OnceLock::new();
    MESSAGE.get_or_init(|| {
        let mut out = Vec::new();
        let w = StreamWriter::try_new_with_options(
            &mut out,
            &schema::schema(),
            IpcWriteOptions::default(),
        );
        drop(w.expect("writing schema v1's message to a Vec"));
        out
    })
}

/// One record batch message: its flatbuffer (verified) and its body.
struct BatchMessage<'a> {
    msg: arrow_ipc::Message<'a>,
    rb: arrow_ipc::RecordBatch<'a>,
    body: &'a [u8],
}

/// Reads `body`, the messages of a stream of schema v1 after its schema message, into
/// its batches. `None` when the stream holds anything this path does not take (see
/// the module's notes); the caller then reads it with `StreamReader`.
///
/// The limits are those of [`super::read_ipc_limited`], checked from the messages'
/// headers before any body is decoded.
pub(crate) fn read_v1(
    body: &[u8],
    max_rows: usize,
    max_decoded_bytes: usize,
) -> Option<Result<Vec<RecordBatch>>> {
    let mut batches = Vec::new();
    let mut stats = IpcStats::default();
    for m in Messages::new(body) {
        let Message { msg, body, .. } = m.ok()?;
        if msg.header_type() != MessageHeader::RecordBatch || msg.custom_metadata().is_some() {
            return None;
        }
        let rb = msg.header_as_record_batch()?;
        if let Some(c) = rb.compression() {
            if c.codec() != CompressionType::LZ4_FRAME {
                return None;
            }
        }
        stats.rows = stats
            .rows
            .saturating_add(usize::try_from(rb.length()).ok()?);
        let size = decoded_size(rb, body).ok()?;
        stats.decoded_bytes = stats.decoded_bytes.saturating_add(size);
        batches.push(BatchMessage { msg, rb, body });
    }
    if let Err(e) = stats.within(max_rows, max_decoded_bytes) {
        return Some(Err(e));
    }
    let schema = schema::schema();
    let no_dictionaries = HashMap::new();
    let mut out = Vec::with_capacity(batches.len());
    for m in batches {
        let batch = if m.rb.compression().is_some() {
            let (fbb, new_body) = lz4_frames::decompress_batch(m.msg.version(), m.rb, m.body)?;
            // The rewritten header is ours, and small: verified like any other.
            let msg = arrow_ipc::root_as_message(fbb.finished_data()).ok()?;
            let rb = msg.header_as_record_batch()?;
            let buf = arrow_buffer::Buffer::from_vec(new_body);
            decode(&buf, rb, &schema, &no_dictionaries, msg.version())
        } else {
            let buf = arrow_buffer::Buffer::from(m.body);
            decode(&buf, m.rb, &schema, &no_dictionaries, m.msg.version())
        };
        match batch {
            Ok(b) => out.push(b),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(out))
}

/// One batch decoded by arrow-ipc (full validation), any panic of it the body's error.
fn decode(
    buf: &arrow_buffer::Buffer,
    rb: arrow_ipc::RecordBatch<'_>,
    schema: &arrow_schema::SchemaRef,
    dictionaries: &HashMap<i64, arrow_array::ArrayRef>,
    version: arrow_ipc::MetadataVersion,
) -> Result<RecordBatch> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        arrow_ipc::reader::read_record_batch(buf, rb, schema.clone(), dictionaries, None, &version)
    }))
    .unwrap_or_else(|_| {
        Err(arrow_schema::ArrowError::IpcError(
            "malformed Arrow IPC record batch".into(),
        ))
    })
    .map_err(|e| enc_err("body", e))
}

#[cfg(test)]
mod tests;
