//! An Arrow IPC stream whose buffers are LZ4 frames, rewritten with the buffers
//! decompressed, for arrow-ipc's reader to decode without its own decompression.
//!
//! Why: arrow-ipc 60 decompresses each LZ4 buffer with a fresh `lz4_flex` frame
//! decoder, which allocates and zero-fills a 64 KiB block buffer (the smallest block
//! size a frame can declare) even for a buffer of a few hundred bytes
//! (apache/arrow-rs#11129, open). An edge batch of 100 events has dozens of compressed
//! buffers: that zero-filling was 10% of the sink's CPU on `/v1/batches`, and the
//! decoder's allocations as much again (BENCHMARKS.md, session 19). Here each frame's
//! blocks go straight into one body with `lz4_flex::block::decompress_into`.
//!
//! Only the frames arrow-ipc's own writer makes are taken (one frame a buffer,
//! independent blocks, no checksums, no dictionary); a stream with anything else — or
//! anything that does not add up — is left to arrow-ipc's reader as it is
//! ([`decompress_stream`] returns `None`), so what is accepted and what is refused
//! stays arrow-ipc's decision.

use arrow_ipc::{Buffer, CompressionType, FieldNode, MessageHeader};

use super::messages::{record_batch_message, write_message, Message, Messages};

/// `bytes` (an Arrow IPC stream) with every LZ4-compressed record batch rewritten as
/// an uncompressed one, the schema and any other message copied as they are; `None`
/// when no message is compressed, or when anything is unusual or malformed (the
/// caller then reads `bytes` as it is, with arrow-ipc's checks and errors).
///
/// The caller bounds the decoded size first (`scan_ipc`'s `decoded_bytes`): every
/// buffer decodes to exactly the length its prefix declares, or this gives up.
pub(crate) fn decompress_stream(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
    let mut rewrote = false;
    let mut messages = Messages::new(bytes);
    let mut at = 0;
    while let Some(m) = messages.next() {
        let Message { msg, body, raw } = m.ok()?;
        at = messages.pos();
        let rb = match msg.header_type() {
            MessageHeader::RecordBatch => msg.header_as_record_batch()?,
            MessageHeader::DictionaryBatch => {
                // Compressed dictionaries are not rewritten: leave the stream to arrow.
                let d = msg.header_as_dictionary_batch()?;
                if d.data()?.compression().is_some() {
                    return None;
                }
                out.extend_from_slice(raw);
                continue;
            }
            _ => {
                out.extend_from_slice(raw);
                continue;
            }
        };
        if rb.compression().is_none() {
            out.extend_from_slice(raw);
            continue;
        }
        if msg.custom_metadata().is_some() {
            return None;
        }
        let (fbb, new_body) = decompress_batch(msg.version(), rb, body)?;
        write_message(&mut out, fbb.finished_data(), &new_body)?;
        rewrote = true;
    }
    // The end-of-stream marker, if the stream has one, copied; nothing after it is read.
    out.extend_from_slice(&bytes[at..messages.pos()]);
    rewrote.then_some(out)
}

/// One LZ4-compressed record batch (`rb`, its message body `body`) rewritten as an
/// uncompressed one: the finished flatbuffer of its new message (metadata version
/// `version`) and its new body, every buffer decoded at an 8-byte aligned offset.
/// `None` for a codec other than LZ4 frames, or anything that does not add up.
pub(crate) fn decompress_batch(
    version: arrow_ipc::MetadataVersion,
    rb: arrow_ipc::RecordBatch<'_>,
    body: &[u8],
) -> Option<(flatbuffers::FlatBufferBuilder<'static>, Vec<u8>)> {
    if rb.compression()?.codec() != CompressionType::LZ4_FRAME {
        return None;
    }
    // The new body: each buffer decoded, at an 8-byte aligned offset.
    let mut new_body: Vec<u8> = Vec::with_capacity(body.len().saturating_mul(4));
    let mut new_buffers: Vec<Buffer> = Vec::new();
    for buf in rb.buffers()?.iter() {
        let off = usize::try_from(buf.offset()).ok()?;
        let blen = usize::try_from(buf.length()).ok()?;
        let data = body.get(off..off.checked_add(blen)?)?;
        let at = new_body.len();
        if blen > 0 {
            // A compressed buffer: its decoded length (-1: stored as it is), then
            // the LZ4 frame.
            let (prefix, rest) = data.split_at_checked(8)?;
            let n = i64::from_le_bytes(prefix.try_into().ok()?);
            if n == -1 {
                new_body.extend_from_slice(rest);
            } else {
                let n = usize::try_from(n).ok()?;
                new_body.resize(at.checked_add(n)?, 0);
                decode_frame(rest, &mut new_body[at..])?;
            }
        }
        let decoded = new_body.len() - at;
        new_buffers.push(Buffer::new(at as i64, decoded as i64));
        new_body.resize(new_body.len().next_multiple_of(8), 0);
    }
    let nodes: Vec<FieldNode> = rb.nodes()?.iter().copied().collect();
    let variadic: Option<Vec<i64>> = rb.variadicBufferCounts().map(|v| v.iter().collect());
    let body_len = i64::try_from(new_body.len()).ok()?;
    let fbb = record_batch_message(
        version,
        rb.length(),
        &nodes,
        &new_buffers,
        variadic.as_deref(),
        body_len,
    );
    Some((fbb, new_body))
}

/// Decodes one LZ4 frame (<https://github.com/lz4/lz4/blob/dev/doc/lz4_Frame_format.md>)
/// into exactly `out`; `None` for a frame of another kind than arrow-ipc writes, for
/// trailing bytes, or when the data does not decode to exactly `out.len()` bytes.
fn decode_frame(frame: &[u8], out: &mut [u8]) -> Option<()> {
    const MAGIC: u32 = 0x184D_2204;
    if u32::from_le_bytes(frame.get(..4)?.try_into().ok()?) != MAGIC {
        return None;
    }
    let flg = *frame.get(4)?;
    let bd = *frame.get(5)?;
    // Version 01; independent blocks; no block checksum, no content checksum, no
    // dictionary (arrow-ipc's writer sets none of them); reserved bits clear.
    let (version, independent) = (flg >> 6, flg & 0x20 != 0);
    let (block_checksum, content_size, content_checksum) =
        (flg & 0x10 != 0, flg & 0x08 != 0, flg & 0x04 != 0);
    if version != 1 || !independent || block_checksum || content_checksum || flg & 0x03 != 0 {
        return None;
    }
    let max_block = match (bd >> 4) & 0x07 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return None,
    };
    if bd & 0x8F != 0 {
        return None;
    }
    // Descriptor: FLG, BD, the content size if flagged, then the header checksum byte.
    let mut pos = 6;
    if content_size {
        let declared = u64::from_le_bytes(frame.get(pos..pos + 8)?.try_into().ok()?);
        if declared != out.len() as u64 {
            return None;
        }
        pos += 8;
    }
    pos += 1;
    let mut at = 0usize;
    loop {
        let word = u32::from_le_bytes(frame.get(pos..pos + 4)?.try_into().ok()?);
        pos += 4;
        if word == 0 {
            break; // end mark
        }
        let stored = word & 0x8000_0000 != 0;
        let len = (word & 0x7FFF_FFFF) as usize;
        if len > max_block {
            return None;
        }
        let block = frame.get(pos..pos.checked_add(len)?)?;
        pos += len;
        let room = out.len() - at;
        let dst = &mut out[at..at + room.min(max_block)];
        let n = if stored {
            dst.get_mut(..len)?.copy_from_slice(block);
            len
        } else {
            lz4_flex::block::decompress_into(block, dst).ok()?
        };
        at += n;
    }
    (pos == frame.len() && at == out.len()).then_some(())
}

#[cfg(test)]
pub(crate) mod tests;
