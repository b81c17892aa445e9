//! The body of an insert, streamed: a chunk's record batches encoded as Native column
//! by column on a blocking thread, each column sent (LZ4-framed, where the URL's
//! compression says so) as soon as it is encoded, while the server parses the one
//! before (used by [`super::Client::insert_parts`]). An insert larger than
//! [`super::ClickHouseConfig::block_rows`] is cut into blocks of that many rows.
//!
//! Streaming by column is what keeps an insert's memory to its decoded rows: the
//! whole encoded block (as large as the rows themselves, ≈ 25 MB for 100,000 rows of
//! schema v1) was built first and then sent, so each insert in flight held its rows
//! twice (BENCHMARKS.md, session 21).

use arrow_array::RecordBatch;

use super::compress::lz4_body;
use super::layout::TableLayout;
use super::native::encode_block_streamed;
use super::{encode_native_parts, Error, Result};

/// Default rows per Native block of an insert ([`super::ClickHouseConfig::block_rows`]):
/// an insert of up to this many rows is one block; a larger one is cut into blocks of
/// this size. About 13 MB of plain Native for schema v1.
///
/// Large, because the server copies every block after an insert's first into the one it
/// accumulates before writing a part (18.16 squashes up to `min_insert_block_size_rows`,
/// 1,048,576): the sink's 100,000-row inserts sent as one block instead of 16,384-row
/// blocks cost ClickHouse 8% less CPU per row and loaded 6% faster (3 + 3 alternating
/// 10⁶-row loads, two inserts in flight, as the loader runs them; BENCHMARKS.md,
/// session 12).
pub const DEFAULT_BLOCK_ROWS: usize = 131_072;

/// The smallest [`super::ClickHouseConfig::block_rows`] accepted: below it the per-block
/// header and the server's per-block work dominate.
pub const MIN_BLOCK_ROWS: usize = 1_024;

/// The largest [`super::ClickHouseConfig::block_rows`] accepted: the server squashes
/// blocks to at most this many rows anyway (`min_insert_block_size_rows`' default).
pub const MAX_BLOCK_ROWS: usize = 1_048_576;

/// `rows` when it is a block size the client takes ([`MIN_BLOCK_ROWS`] to
/// [`MAX_BLOCK_ROWS`]), else why not (for `Client::new` and the command line alike).
pub fn check_block_rows(rows: usize) -> std::result::Result<usize, String> {
    if (MIN_BLOCK_ROWS..=MAX_BLOCK_ROWS).contains(&rows) {
        Ok(rows)
    } else {
        Err(format!(
            "{rows} is outside {MIN_BLOCK_ROWS}..={MAX_BLOCK_ROWS}"
        ))
    }
}

/// The rows of `parts` cut into blocks of `max_rows` rows (the last one shorter), each
/// a list of zero-copy slices of the parts: exactly the blocks of the parts
/// concatenated and then sliced, so a retried insert sends the same blocks.
pub(super) fn blocks(parts: &[RecordBatch], max_rows: usize) -> Vec<Vec<RecordBatch>> {
    let mut blocks = Vec::new();
    let mut block = Vec::new();
    let mut room = max_rows;
    for part in parts {
        let mut offset = 0;
        while offset < part.num_rows() {
            let len = room.min(part.num_rows() - offset);
            block.push(if len == part.num_rows() {
                part.clone()
            } else {
                part.slice(offset, len)
            });
            offset += len;
            room -= len;
            if room == 0 {
                blocks.push(std::mem::take(&mut block));
                room = max_rows;
            }
        }
    }
    if !block.is_empty() || blocks.is_empty() {
        blocks.push(block);
    }
    blocks
}

/// Every part has the first part's Arrow type (or absence) in each column of `layout`:
/// what the encoder's errors depend on, so if the first block encodes, every block does.
pub(super) fn same_columns(layout: &TableLayout, parts: &[RecordBatch]) -> Result<()> {
    let Some((first, rest)) = parts.split_first() else {
        return Ok(());
    };
    for col in &layout.columns {
        let want = first.column_by_name(&col.name).map(|a| a.data_type());
        if rest
            .iter()
            .any(|p| p.column_by_name(&col.name).map(|a| a.data_type()) != want)
        {
            return Err(Error::Batch {
                column: col.name.clone(),
                reason: "the records of one insert differ in this column's type or presence".into(),
            });
        }
    }
    Ok(())
}

/// Encodes a zero-row block of the first part: the encoder's errors depend only on the
/// columns' types against `layout` (never on values), so with [`same_columns`] this
/// tells, before any request, whether every block of the insert encodes. A streamed
/// body that failed half-way could only cut its request, a retryable failure.
pub(super) fn check_encodes(layout: &TableLayout, parts: &[RecordBatch]) -> Result<()> {
    match parts.first() {
        Some(first) => encode_native_parts(layout, &[first.slice(0, 0)], &mut Vec::new()),
        None => Ok(()),
    }
}

/// The blocks of a streamed insert: slices of the parts in arrival order, or runs of
/// the parts' rows in the table's key order (one order for the whole insert, so the
/// block the server squashes them into is in key order too).
pub(super) enum Blocks {
    /// From [`blocks`].
    Slices(Vec<Vec<RecordBatch>>),
    /// `order` cut into runs of `block_rows`.
    Ordered {
        parts: Vec<RecordBatch>,
        order: Vec<(usize, usize)>,
        block_rows: usize,
    },
}

impl Blocks {
    fn len(&self) -> usize {
        match self {
            Blocks::Slices(b) => b.len(),
            Blocks::Ordered {
                order, block_rows, ..
            } => order.len().div_ceil(*block_rows).max(1),
        }
    }

    /// Block `i` as [`encode_block_streamed`] writes it (not framed).
    fn encode_streamed(
        &self,
        layout: &TableLayout,
        i: usize,
        out: &mut Vec<u8>,
        flush: &mut dyn FnMut(&mut Vec<u8>) -> bool,
    ) -> Result<bool> {
        match self {
            Blocks::Slices(b) => encode_block_streamed(layout, &b[i], None, out, flush),
            Blocks::Ordered {
                parts,
                order,
                block_rows,
            } => {
                let run = &order
                    [(i * block_rows).min(order.len())..((i + 1) * block_rows).min(order.len())];
                encode_block_streamed(layout, parts, Some(run), out, flush)
            }
        }
    }
}

/// `native` as LZ4 frames when `lz4`, else as it is.
fn framed(native: bytes::Bytes, lz4: bool) -> bytes::Bytes {
    if lz4 {
        lz4_body(&native)
    } else {
        native
    }
}

/// Why the encoder of a streamed body failed, set before it aborts the body: the
/// request then fails as a connection error would, and the caller reads this to tell
/// a chunk the encoder cannot take (quarantined) from a network failure (retried).
pub(super) type EncodeFailure = std::sync::Arc<std::sync::OnceLock<String>>;

/// The streamed body of an insert: every block of `blocks`, encoded on a blocking
/// thread and sent column by column, a few columns ahead of the wire at most; each
/// piece LZ4-framed when `lz4`. An encoder error or panic is set in `failure` and
/// aborts the body.
pub(super) fn stream_body(
    layout: TableLayout,
    blocks: std::sync::Arc<Blocks>,
    lz4: bool,
    failure: EncodeFailure,
) -> reqwest::Body {
    type Item = std::result::Result<bytes::Bytes, std::io::Error>;
    let (tx, rx) = tokio::sync::mpsc::channel::<Item>(2);
    tokio::task::spawn_blocking(move || {
        let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
            // A closed channel means the request ended (failed or timed out): stop.
            let mut send = |out: &mut Vec<u8>| {
                let piece = bytes::Bytes::from(std::mem::take(out));
                tx.blocking_send(Ok(framed(piece, lz4))).is_ok()
            };
            let mut out = Vec::new();
            for i in 0..blocks.len() {
                if !blocks.encode_streamed(&layout, i, &mut out, &mut send)? {
                    return Ok(());
                }
            }
            // A block's header with no column after it (a layout of no columns).
            if !out.is_empty() {
                send(&mut out);
            }
            Ok(())
        }));
        // An encoder error (unreachable after `check_encodes`) or panic ends the body
        // with an error, which aborts the request (a body that just stopped would
        // reach the server as a short block), and says why in `failure`: the data's
        // fault, so the chunk is quarantined rather than retried forever.
        let failed = match encoded {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the Native encoder panicked".to_owned(),
        };
        let _ = failure.set(failed.clone());
        let _ = tx.blocking_send(Err(std::io::Error::other(failed)));
    });
    reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed body is the Native block, one piece a column; an encoder error
    /// ends it with an error (the request aborts: retryable), never with a clean end
    /// that would leave the server a short block.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_body_is_the_block_and_an_encoder_error_aborts_it() {
        use arrow_array::{ArrayRef, StringArray, UInt16Array};
        use http_body_util::BodyExt;
        let w: ArrayRef = std::sync::Arc::new(UInt16Array::from(vec![1, 2, 3]));
        let p: ArrayRef = std::sync::Arc::new(StringArray::from(vec!["/a", "/b", "/c"]));
        let batch = RecordBatch::try_from_iter([("screen_width", w), ("pathname", p)]).unwrap();
        let blocks = std::sync::Arc::new(Blocks::Slices(vec![vec![batch.clone()]]));
        let good = TableLayout::from_describe(&[
            ("screen_width".into(), "UInt16".into()),
            ("pathname".into(), "String".into()),
        ])
        .unwrap();
        let mut want = Vec::new();
        encode_native_parts(&good, &[batch], &mut want).unwrap();
        let failure = EncodeFailure::default();
        let mut body = stream_body(good.clone(), blocks.clone(), false, failure.clone());
        let mut pieces = Vec::new();
        while let Some(frame) = body.frame().await {
            pieces.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(pieces.len(), 2, "one piece a column");
        assert_eq!(pieces.concat(), want);
        assert!(failure.get().is_none());
        // A String column declared UInt32 (which `from_describe` would refuse) cannot
        // be encoded: the first column goes, then the body fails.
        let mut bad = good.clone();
        bad.columns[1].type_name = "UInt32".into();
        bad.columns[1].ty = super::super::ChType::UInt32;
        let failure = EncodeFailure::default();
        let mut body = stream_body(bad, blocks, false, failure.clone());
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..2], &[2, 3], "header: columns, rows");
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(format!("{err:?}").contains("pathname"), "{err:?}");
        // ... and says why, for the caller to quarantine the chunk.
        let why = failure.get().expect("the encoder's failure");
        assert!(why.contains("pathname"), "{why}");
    }

    /// Blocks are the parts' rows in order, `max_rows` to a block, slices not copies.
    #[test]
    fn blocks_cut_parts_into_equal_runs_of_rows() {
        use arrow_array::{ArrayRef, UInt32Array};
        let part = |from: u32, n: u32| {
            let col: ArrayRef = std::sync::Arc::new(UInt32Array::from_iter_values(from..from + n));
            RecordBatch::try_from_iter([("v", col)]).unwrap()
        };
        let parts = [part(0, 5), part(5, 0), part(5, 12), part(17, 3)];
        let got: Vec<Vec<u32>> = blocks(&parts, 8)
            .iter()
            .map(|b| {
                b.iter()
                    .flat_map(|p| {
                        let c = p.column(0).as_any().downcast_ref::<UInt32Array>().unwrap();
                        c.values().to_vec()
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            got,
            [
                (0..8).collect::<Vec<u32>>(),
                (8..16).collect(),
                (16..20).collect()
            ]
        );
        assert_eq!(blocks(&parts, 8)[0].len(), 2, "5 rows + a 3-row slice");
        assert_eq!(blocks(&[part(0, 8)], 8).len(), 1);
        assert_eq!(blocks(&[], 8), [Vec::<RecordBatch>::new()]);
    }
}
