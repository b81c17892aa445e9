//! The encapsulated messages of an Arrow IPC stream, walked once: `scan_ipc`'s limits,
//! `lz4_frames`' rewrite and `v1_stream`'s reader all read the stream through this.
//!
//! A message is an optional continuation marker (`0xFFFFFFFF`, IPC format 0.15 and
//! later), an `i32` length, a `Message` flatbuffer of that length (padding included),
//! then the body the flatbuffer's `bodyLength` declares. A length of 0 is the end of
//! the stream; a stream may also just end.

use crate::error::{Error, Result};

use super::enc_err;

/// One message of a stream, its flatbuffer verified.
pub(crate) struct Message<'a> {
    /// The flatbuffer header.
    pub msg: arrow_ipc::Message<'a>,
    /// Its body.
    pub body: &'a [u8],
    /// The whole message as it lies in the stream (prefix, header, body).
    pub raw: &'a [u8],
}

/// The messages of `bytes`, in order, up to the end-of-stream marker or the end of the
/// bytes. A malformed message is an [`Error::Encoding`] on field `"body"`, and the last
/// item.
pub(crate) struct Messages<'a> {
    bytes: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Messages<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Messages {
            bytes,
            pos: 0,
            done: false,
        }
    }

    /// Offset just past what was read: the last message, or the end-of-stream marker
    /// once the walk has met it.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn i32_at(&self, at: usize) -> Result<i32> {
        let s = self
            .bytes
            .get(at..at.saturating_add(4))
            .ok_or_else(|| enc_err("body", "truncated Arrow IPC stream"))?;
        Ok(i32::from_le_bytes(s.try_into().expect("4 bytes")))
    }

    fn read(&mut self) -> Result<Option<Message<'a>>> {
        let bytes = self.bytes;
        let start = self.pos;
        if start == bytes.len() {
            return Ok(None); // a stream may end without the end-of-stream marker
        }
        let mut at = start;
        let mut len = self.i32_at(at)?;
        at += 4;
        if len == -1 {
            len = self.i32_at(at)?;
            at += 4;
        }
        if len == 0 {
            self.pos = at;
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| enc_err("body", "negative message length"))?;
        let meta = bytes
            .get(at..at.saturating_add(len))
            .ok_or_else(|| enc_err("body", "truncated Arrow IPC message"))?;
        at += len;
        let msg = arrow_ipc::root_as_message(meta)
            .map_err(|e| enc_err("body", format!("bad IPC message header: {e}")))?;
        let body_len = usize::try_from(msg.bodyLength())
            .map_err(|_| enc_err("body", "negative body length"))?;
        let body = bytes
            .get(at..at.saturating_add(body_len))
            .ok_or_else(|| enc_err("body", "truncated Arrow IPC body"))?;
        at += body_len;
        self.pos = at;
        Ok(Some(Message {
            msg,
            body,
            raw: &bytes[start..at],
        }))
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = std::result::Result<Message<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.read().transpose();
        self.done = !matches!(r, Some(Ok(_)));
        r
    }
}

/// The finished flatbuffer of an uncompressed record batch message: `length` rows,
/// field `nodes`, `buffers` in a body of `body_len` bytes (metadata `version`).
pub(crate) fn record_batch_message(
    version: arrow_ipc::MetadataVersion,
    length: i64,
    nodes: &[arrow_ipc::FieldNode],
    buffers: &[arrow_ipc::Buffer],
    variadic_counts: Option<&[i64]>,
    body_len: i64,
) -> flatbuffers::FlatBufferBuilder<'static> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let nodes = fbb.create_vector(nodes);
    let buffers = fbb.create_vector(buffers);
    let variadic = variadic_counts.map(|v| fbb.create_vector(v));
    let header = arrow_ipc::RecordBatch::create(
        &mut fbb,
        &arrow_ipc::RecordBatchArgs {
            length,
            nodes: Some(nodes),
            buffers: Some(buffers),
            compression: None,
            variadicBufferCounts: variadic,
        },
    );
    let message = arrow_ipc::Message::create(
        &mut fbb,
        &arrow_ipc::MessageArgs {
            version,
            header_type: arrow_ipc::MessageHeader::RecordBatch,
            header: Some(header.as_union_value()),
            bodyLength: body_len,
            custom_metadata: None,
        },
    );
    fbb.finish(message, None);
    fbb
}

/// Appends one encapsulated message to `out`: continuation marker, length, the
/// flatbuffer `meta` padded to 8 bytes, then `body`. `None` if `meta` is too long.
pub(crate) fn write_message(out: &mut Vec<u8>, meta: &[u8], body: &[u8]) -> Option<()> {
    let padded = meta.len().next_multiple_of(8);
    out.extend_from_slice(&(-1i32).to_le_bytes());
    out.extend_from_slice(&i32::try_from(padded).ok()?.to_le_bytes());
    out.extend_from_slice(meta);
    out.resize(out.len() + (padded - meta.len()), 0);
    out.extend_from_slice(body);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{events_to_batch, write_ipc, Event};

    #[test]
    fn walks_to_the_marker_and_stops_at_the_first_error() {
        let b = events_to_batch(&[Event::default()]);
        let stream = write_ipc(&[b.clone(), b]).unwrap();
        let kinds = |bytes: &[u8]| -> Vec<std::result::Result<arrow_ipc::MessageHeader, String>> {
            Messages::new(bytes)
                .map(|m| m.map(|m| m.msg.header_type()).map_err(|e| e.to_string()))
                .collect()
        };
        use arrow_ipc::MessageHeader as H;
        assert_eq!(
            kinds(&stream),
            vec![Ok(H::Schema), Ok(H::RecordBatch), Ok(H::RecordBatch)]
        );
        // The raw pieces and the end-of-stream marker make up the whole stream.
        let mut walk = Messages::new(&stream);
        let mut joined: Vec<u8> = walk
            .by_ref()
            .flat_map(|m| m.unwrap().raw.to_vec())
            .collect();
        assert_eq!(walk.pos(), stream.len());
        joined.extend_from_slice(&stream[joined.len()..walk.pos()]);
        assert_eq!(joined, stream);
        // Nothing after the marker is read; a stream may also end without one.
        let mut junk = stream.clone();
        junk.extend_from_slice(b"junk");
        assert_eq!(kinds(&junk).len(), 3);
        let unmarked = &stream[..stream.len() - 8];
        assert_eq!(kinds(unmarked).len(), 3);
        // A cut message is one error, the last item.
        let cut = kinds(&stream[..stream.len() - 20]);
        assert_eq!(cut.len(), 3);
        assert!(
            cut[2].as_ref().unwrap_err().contains("truncated"),
            "{cut:?}"
        );
    }
}
