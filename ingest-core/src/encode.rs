//! Encoding batches: Arrow IPC stream with LZ4 frame compression (edge → sink), and
//! Parquet files (feature `parquet`, native only).

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_ipc::CompressionType;

use crate::error::{Error, Result};
use crate::schema;

mod lz4_frames;
mod messages;
mod v1_stream;

fn enc_err(field: &str, reason: impl std::fmt::Display) -> Error {
    Error::Encoding {
        field: field.to_owned(),
        reason: reason.to_string(),
    }
}

/// The batches as one Arrow IPC *stream* (schema message, then one message per batch),
/// buffers compressed with LZ4 frames. Written with the first batch's schema (schema v1
/// when `batches` is empty); every batch must have that schema.
///
/// ```
/// use ingest_core::{events_to_batch, read_ipc, write_ipc, Event};
/// let batch = events_to_batch(&[Event::default()]);
/// let bytes = write_ipc(&[batch.clone()]).unwrap();
/// assert_eq!(read_ipc(&bytes, 10).unwrap(), vec![batch]);
/// ```
pub fn write_ipc(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(schema::schema);
    let opts = IpcWriteOptions::default()
        .try_with_compression(Some(CompressionType::LZ4_FRAME))
        .map_err(|e| enc_err("batch", e))?;
    let mut w = StreamWriter::try_new_with_options(Vec::new(), &schema, opts)
        .map_err(|e| enc_err("batch", e))?;
    for b in batches {
        if b.schema() != schema {
            return Err(enc_err("batch", "batches with different schemas"));
        }
        w.write(b).map_err(|e| enc_err("batch", e))?;
    }
    w.into_inner().map_err(|e| enc_err("batch", e))
}

/// An Arrow IPC stream (LZ4 frames, schema v1) produced piece by piece: each call
/// returns the bytes to append, so a service can stream batches out as the batcher
/// hands them over without keeping them all. The concatenation of everything returned
/// is what [`write_ipc`] would have produced.
///
/// ```
/// use ingest_core::{events_to_batch, read_ipc, Event, IpcEncoder};
/// let mut enc = IpcEncoder::new().unwrap();
/// let mut out = enc.header();
/// out.extend(enc.encode(&events_to_batch(&[Event::default()])).unwrap());
/// out.extend(enc.finish().unwrap());
/// assert_eq!(read_ipc(&out, 1).unwrap()[0].num_rows(), 1);
/// ```
pub struct IpcEncoder {
    writer: StreamWriter<Vec<u8>>,
}

impl std::fmt::Debug for IpcEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcEncoder").finish_non_exhaustive()
    }
}

impl IpcEncoder {
    /// A stream of schema v1; its schema message is waiting in [`IpcEncoder::header`].
    pub fn new() -> Result<Self> {
        let opts = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::LZ4_FRAME))
            .map_err(|e| enc_err("batch", e))?;
        let writer = StreamWriter::try_new_with_options(Vec::new(), &schema::schema(), opts)
            .map_err(|e| enc_err("batch", e))?;
        Ok(IpcEncoder { writer })
    }

    /// The bytes written so far and not yet taken (the schema message, at first).
    pub fn header(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.get_mut())
    }

    /// The bytes of one more batch (plus anything not yet taken). The batch must be
    /// schema v1 (as the [`crate::Batcher`] makes them; see [`crate::conform`]).
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        if batch.schema().fields() != schema::schema().fields() {
            return Err(enc_err("batch", "the batch is not schema v1"));
        }
        self.writer.write(batch).map_err(|e| enc_err("batch", e))?;
        Ok(self.header())
    }

    /// The end-of-stream marker (plus anything not yet taken).
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.writer.finish().map_err(|e| enc_err("batch", e))?;
        Ok(self.header())
    }
}

/// The default of [`IpcLimits::max_expansion`]: bytes a stream may decode to per byte
/// received. LZ4 cannot expand more than about 255 times; our batches compress 3–10
/// times, so 64 leaves room for very repetitive batches and still bounds a hostile one.
pub const MAX_IPC_EXPANSION: usize = 64;
/// The default of [`IpcLimits::min_decoded_bytes`]: decoded bytes always allowed,
/// whatever the body size (a small body of many empty strings still has offsets and
/// fixed-width columns).
pub const MIN_IPC_DECODED: usize = 16 << 20;

/// How many bytes a received Arrow IPC stream may decode to, given its size: the cap
/// [`read_ipc`] applies with the defaults, and the values a service exposes as its
/// configuration and passes to [`read_ipc_limited`] (the sink's `--max-ipc-expansion`
/// and `--min-ipc-decoded-bytes`).
///
/// ```
/// use ingest_core::{events_to_batch, read_ipc_limited, write_ipc, Event, IpcLimits};
/// let limits = IpcLimits { max_expansion: 8, ..IpcLimits::default() };
/// assert_eq!(limits.max_decoded_bytes(1_000), 16 << 20); // a small body: the floor
/// assert_eq!(limits.max_decoded_bytes(4 << 20), 32 << 20); // a large one: 8 × its size
/// let bytes = write_ipc(&[events_to_batch(&[Event::default()])]).unwrap();
/// let batches = read_ipc_limited(&bytes, 10, limits.max_decoded_bytes(bytes.len())).unwrap();
/// assert_eq!(batches[0].num_rows(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcLimits {
    /// Decoded bytes allowed per byte received. Default [`MAX_IPC_EXPANSION`].
    pub max_expansion: usize,
    /// Decoded bytes allowed whatever the body size. Default [`MIN_IPC_DECODED`].
    pub min_decoded_bytes: usize,
}

impl Default for IpcLimits {
    fn default() -> Self {
        IpcLimits {
            max_expansion: MAX_IPC_EXPANSION,
            min_decoded_bytes: MIN_IPC_DECODED,
        }
    }
}

impl IpcLimits {
    /// The decoded bytes allowed for a body of `body_len` bytes:
    /// `max(min_decoded_bytes, max_expansion × body_len)` (saturating).
    pub fn max_decoded_bytes(&self, body_len: usize) -> usize {
        self.min_decoded_bytes
            .max(self.max_expansion.saturating_mul(body_len))
    }
}

/// Reads an Arrow IPC stream (compressed or not) into its batches.
///
/// Refuses, *before* decoding anything, a stream that declares more than `max_rows`
/// rows in total, or buffers that would decode to more than
/// `max(MIN_IPC_DECODED, MAX_IPC_EXPANSION × bytes.len())` bytes (the default
/// [`IpcLimits`]; [`read_ipc_limited`] takes others): a compressed body cannot make the
/// reader allocate without bound. Every error is [`Error::Encoding`] with field
/// `"body"`. The batches are returned as written; pass them through
/// [`crate::conform`] to check them against schema v1.
pub fn read_ipc(bytes: &[u8], max_rows: usize) -> Result<Vec<RecordBatch>> {
    let max_decoded = IpcLimits::default().max_decoded_bytes(bytes.len());
    read_ipc_limited(bytes, max_rows, max_decoded)
}

/// [`read_ipc`] with an explicit cap on the decoded buffer bytes (for a cap relative
/// to the body's size, [`IpcLimits::max_decoded_bytes`]).
///
/// A stream of schema v1 as this crate writes it (what the edge posts) takes a shorter
/// path: its schema message is recognised by its bytes, not decoded, and each message
/// is verified once (`encode/v1_stream.rs`); the batches, checks and errors are those
/// of arrow-ipc's reader either way.
pub fn read_ipc_limited(
    bytes: &[u8],
    max_rows: usize,
    max_decoded_bytes: usize,
) -> Result<Vec<RecordBatch>> {
    if let Some(rest) = bytes.strip_prefix(v1_stream::v1_schema_message()) {
        if let Some(read) = v1_stream::read_v1(rest, max_rows, max_decoded_bytes) {
            return read;
        }
    }
    read_ipc_general(bytes, max_rows, max_decoded_bytes)
}

/// The batches of a stream of schema v1 stored without its schema message: `body` is
/// the stream's messages after it (as a store that keeps schema v1 once for all, like
/// the sink's spool, holds them). Same checks, limits and errors as
/// [`read_ipc_limited`] on the whole stream.
pub fn read_ipc_v1_body(
    body: &[u8],
    max_rows: usize,
    max_decoded_bytes: usize,
) -> Result<Vec<RecordBatch>> {
    if let Some(read) = v1_stream::read_v1(body, max_rows, max_decoded_bytes) {
        return read;
    }
    let mut stream = v1_stream::v1_schema_message().to_vec();
    stream.extend_from_slice(body);
    read_ipc_general(&stream, max_rows, max_decoded_bytes)
}

/// Any Arrow IPC stream, through arrow-ipc's `StreamReader` (compressed buffers decoded
/// by `lz4_frames` first).
fn read_ipc_general(
    bytes: &[u8],
    max_rows: usize,
    max_decoded_bytes: usize,
) -> Result<Vec<RecordBatch>> {
    let stats = scan_ipc(bytes)?;
    stats.within(max_rows, max_decoded_bytes)?;
    // Compressed buffers are decoded here rather than by arrow-ipc, which zero-fills a
    // 64 KiB block buffer for each one (`lz4_frames`); anything it does not take is read
    // as it is.
    let plain = (stats.compressed_batches > 0)
        .then(|| lz4_frames::decompress_stream(bytes))
        .flatten();
    let reader = StreamReader::try_new(plain.as_deref().unwrap_or(bytes), None)
        .map_err(|e| enc_err("body", e))?;
    // A backstop: arrow-ipc has panicked on hostile input where it should have refused
    // it (see `check_fields`); where panics unwind (native builds), one is this body's
    // error, not the caller's crash.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut out = Vec::new();
        let mut rows = 0usize;
        for b in reader {
            let b = b.map_err(|e| enc_err("body", e))?;
            rows += b.num_rows();
            if rows > max_rows {
                return Err(enc_err("body", format!("more than {max_rows} rows")));
            }
            out.push(b);
        }
        Ok(out)
    }))
    .unwrap_or_else(|_| Err(enc_err("body", "malformed Arrow IPC stream")))
}

/// What an Arrow IPC stream declares, read from its message headers only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpcStats {
    /// Rows of all record batches.
    pub rows: usize,
    /// Bytes its buffers decode to (dictionary batches included).
    pub decoded_bytes: usize,
    /// Record or dictionary batches whose buffers are compressed.
    pub compressed_batches: usize,
}

impl IpcStats {
    /// The limits of [`read_ipc_limited`], checked before anything is decoded.
    pub(crate) fn within(&self, max_rows: usize, max_decoded_bytes: usize) -> Result<()> {
        if self.rows > max_rows {
            return Err(enc_err("body", format!("more than {max_rows} rows")));
        }
        if self.decoded_bytes > max_decoded_bytes {
            return Err(enc_err(
                "body",
                format!("decodes to more than {max_decoded_bytes} bytes"),
            ));
        }
        Ok(())
    }
}

/// Walks the stream's message headers (flatbuffers, verified) without decoding any
/// body, summing declared rows and decoded buffer sizes: cheap, and safe on hostile
/// input (errors are [`Error::Encoding`] with field `"body"`).
pub fn scan_ipc(bytes: &[u8]) -> Result<IpcStats> {
    let mut st = IpcStats::default();
    prescan(bytes, &mut st)?;
    Ok(st)
}

fn prescan(bytes: &[u8], st: &mut IpcStats) -> Result<()> {
    for m in messages::Messages::new(bytes) {
        let messages::Message { msg, body, .. } = m?;
        if let Some(schema) = msg.header_as_schema() {
            check_fields(schema.fields())?;
        }
        let rb = match msg.header_type() {
            arrow_ipc::MessageHeader::RecordBatch => msg.header_as_record_batch(),
            arrow_ipc::MessageHeader::DictionaryBatch => {
                msg.header_as_dictionary_batch().and_then(|d| d.data())
            }
            _ => None,
        };
        let Some(rb) = rb else { continue };
        if msg.header_type() == arrow_ipc::MessageHeader::RecordBatch {
            let n = usize::try_from(rb.length()).unwrap_or(usize::MAX);
            st.rows = st.rows.saturating_add(n);
        }
        st.compressed_batches += usize::from(rb.compression().is_some());
        st.decoded_bytes = st.decoded_bytes.saturating_add(decoded_size(rb, body)?);
    }
    Ok(())
}

/// The bytes the buffers of a record batch (header `rb`, body `body`) decode to: a
/// compressed buffer's length prefix (-1: stored as it is), any other buffer's length.
/// An error when a buffer lies outside the body: arrow-ipc 60 slices the body without
/// checking and panics on such a buffer (found by the `ipc_read` fuzz target).
fn decoded_size(rb: arrow_ipc::RecordBatch<'_>, body: &[u8]) -> Result<usize> {
    let compressed = rb.compression().is_some();
    let mut total = 0usize;
    for buf in rb.buffers().into_iter().flatten() {
        let outside = || enc_err("body", "buffer outside the message body");
        let off = usize::try_from(buf.offset()).map_err(|_| outside())?;
        let blen = usize::try_from(buf.length()).map_err(|_| outside())?;
        let data = body
            .get(off..off.checked_add(blen).ok_or_else(outside)?)
            .ok_or_else(outside)?;
        let size = match data.first_chunk::<8>() {
            // A compressed buffer starts with its decoded length (-1: not compressed).
            Some(prefix) if compressed => {
                usize::try_from(i64::from_le_bytes(*prefix)).unwrap_or(blen)
            }
            _ => blen,
        };
        total = total.saturating_add(size);
    }
    Ok(total)
}

/// Refuses field types arrow-ipc 60 panics on instead of refusing them when it builds
/// the arrays: a negative fixed width (`FixedSizeBinary`, `FixedSizeList`). Nesting is
/// bounded by the flatbuffer verifier's depth limit.
fn check_fields<'a>(
    fields: Option<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<arrow_ipc::Field<'a>>>>,
) -> Result<()> {
    for f in fields.iter().flat_map(|v| v.iter()) {
        let negative = match f.type_type() {
            arrow_ipc::Type::FixedSizeBinary => f
                .type_as_fixed_size_binary()
                .is_none_or(|t| t.byteWidth() < 0),
            arrow_ipc::Type::FixedSizeList => {
                f.type_as_fixed_size_list().is_none_or(|t| t.listSize() < 0)
            }
            _ => false,
        };
        if negative {
            return Err(enc_err(
                "body",
                "a field of negative fixed width in the IPC schema",
            ));
        }
        check_fields(f.children())?;
    }
    Ok(())
}

/// Writes the batches as one Parquet file (Snappy-compressed, the Arrow schema kept in
/// the file metadata so a reader gets schema v1 back). Feature `parquet`, native only.
/// Writing to the caller's `Write` is the caller's I/O, not this crate's.
#[cfg(feature = "parquet")]
pub fn write_parquet<W: std::io::Write + Send>(w: W, batches: &[RecordBatch]) -> Result<()> {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;

    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(schema::schema);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(w, schema.clone(), Some(props)).map_err(|e| enc_err("batch", e))?;
    for b in batches {
        if b.schema() != schema {
            return Err(enc_err("batch", "batches with different schemas"));
        }
        writer.write(b).map_err(|e| enc_err("batch", e))?;
    }
    writer.close().map_err(|e| enc_err("batch", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events_to_batch;
    use crate::Event;

    #[test]
    fn ipc_round_trip_and_row_limit() {
        let batch = events_to_batch(&[Event::default(), Event::default()]);
        let bytes = write_ipc(&[batch.clone(), batch.clone()]).unwrap();
        assert_eq!(read_ipc(&bytes, 4).unwrap().len(), 2); // at the limit
        let e = read_ipc(&bytes, 3).unwrap_err(); // past it
        assert_eq!(e.field(), "body");
        assert!(e.to_string().contains("more than 3 rows"), "{e}");
    }

    #[test]
    fn encoder_pieces_equal_write_ipc() {
        let a = events_to_batch(&[Event::default()]);
        let b = events_to_batch(&[Event::default(), Event::default()]);
        let mut enc = IpcEncoder::new().unwrap();
        let mut out = enc.header();
        assert!(!out.is_empty());
        out.extend(enc.encode(&a).unwrap());
        out.extend(enc.encode(&b).unwrap());
        out.extend(enc.finish().unwrap());
        assert_eq!(out, write_ipc(&[a.clone(), b.clone()]).unwrap());
        let other =
            arrow_array::RecordBatch::new_empty(std::sync::Arc::new(arrow_schema::Schema::empty()));
        let mut enc = IpcEncoder::new().unwrap();
        assert_eq!(enc.encode(&other).unwrap_err().field(), "batch");
    }

    #[test]
    fn decoded_bytes_at_and_past_the_limit() {
        let ev = Event {
            pathname: "/a".repeat(500).into(),
            ..Event::default()
        };
        let batch = events_to_batch(&vec![ev; 100]);
        let bytes = write_ipc(std::slice::from_ref(&batch)).unwrap();
        let st = scan_ipc(&bytes).unwrap();
        assert_eq!(st.rows, 100);
        // The pathnames alone decode to 100 000 bytes; they compress to far less.
        assert!(st.decoded_bytes > 100_000 && bytes.len() < 20_000, "{st:?}");
        assert_eq!(
            read_ipc_limited(&bytes, 100, st.decoded_bytes).unwrap(),
            vec![batch]
        );
        let e = read_ipc_limited(&bytes, 100, st.decoded_bytes - 1).unwrap_err();
        assert!(e.to_string().contains("decodes to more than"), "{e}");
        assert_eq!(e.field(), "body");
    }

    /// Each bound of `IpcLimits` alone, at the limit and one past it.
    #[test]
    fn ipc_limits_at_and_past_each_bound() {
        let ev = Event {
            pathname: "/a".repeat(500).into(),
            ..Event::default()
        };
        let bytes = write_ipc(&[events_to_batch(&vec![ev; 100])]).unwrap();
        let decoded = scan_ipc(&bytes).unwrap().decoded_bytes;
        let len = bytes.len();
        assert!(decoded > 2 * len, "{decoded} from {len}");
        let read = |max_expansion, min_decoded_bytes| {
            let l = IpcLimits {
                max_expansion,
                min_decoded_bytes,
            };
            read_ipc_limited(&bytes, 100, l.max_decoded_bytes(len))
        };
        // The expansion: the smallest that covers the stream, and one less.
        let fits = decoded.div_ceil(len);
        assert!(read(fits, 0).is_ok());
        let e = read(fits - 1, 0).unwrap_err();
        assert_eq!(e.field(), "body");
        let cap = (fits - 1) * len;
        assert!(
            e.to_string().contains(&format!("more than {cap} bytes")),
            "{e}"
        );
        // The floor, with an expansion that alone would refuse the stream.
        assert!(read(1, decoded).is_ok());
        let e = read(1, decoded - 1).unwrap_err();
        assert_eq!(e.field(), "body");
        // The defaults are the documented constants.
        let d = IpcLimits::default();
        assert_eq!(d.max_decoded_bytes(1), MIN_IPC_DECODED);
        assert_eq!(d.max_decoded_bytes(1 << 20), MAX_IPC_EXPANSION << 20);
        assert_eq!(d.max_decoded_bytes(usize::MAX), usize::MAX);
    }

    #[test]
    fn garbage_is_an_encoding_error() {
        for bytes in [&b""[..], b"\xff\xff\xff\xff", b"hello world", &[0xff; 64]] {
            let e = read_ipc(bytes, 10).unwrap_err();
            assert_eq!(e.code(), "encoding");
            assert_eq!(e.field(), "body");
        }
    }

    #[test]
    fn declared_huge_buffer_is_refused_before_decoding() {
        let ev = Event {
            pathname: "/a".repeat(500).into(),
            ..Event::default()
        };
        let batch = events_to_batch(&vec![ev; 100]);
        let mut bytes = write_ipc(&[batch]).unwrap();
        assert_eq!(read_ipc(&bytes, 100).unwrap()[0].num_rows(), 100);
        // Rewrite every compressed buffer's decoded-length prefix to 1 TiB: the reader
        // would try to allocate it. Find the prefixes by scanning the record batch body.
        let n = bytes.len();
        let mut changed = 0;
        for i in 0..n.saturating_sub(12) {
            // LZ4 frame magic follows the 8-byte length prefix.
            if bytes[i + 8..i + 12] == [0x04, 0x22, 0x4d, 0x18] {
                bytes[i..i + 8].copy_from_slice(&(1i64 << 40).to_le_bytes());
                changed += 1;
            }
        }
        assert!(changed > 0);
        let e = read_ipc(&bytes, 100).unwrap_err();
        assert!(e.to_string().contains("decodes to more than"), "{e}");
    }
}
