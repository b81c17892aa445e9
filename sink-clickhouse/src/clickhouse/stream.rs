//! The body of a streamed insert: a chunk's record batches cut into Native blocks of
//! [`super::ClickHouseConfig::block_rows`] rows, each encoded (and LZ4-framed, where the URL's
//! compression says so) on a blocking thread while the server parses the block before
//! (used by [`super::Client::insert_parts`]).

use arrow_array::RecordBatch;

use super::compress::lz4_body;
use super::layout::TableLayout;
use super::{encode_native_ordered, encode_native_parts, Error, Result};

/// Default rows per Native block of an insert ([`super::ClickHouseConfig::block_rows`]):
/// an insert of up to this many rows is one block, sent as one body; a larger one is
/// streamed in blocks of this size. About 13 MB of plain Native for schema v1.
///
/// Large, because the server copies every block after an insert's first into the one it
/// accumulates before writing a part (18.16 squashes up to `min_insert_block_size_rows`,
/// 1,048,576): the sink's 100,000-row inserts sent as one block instead of 16,384-row
/// blocks cost ClickHouse 8% less CPU per row and loaded 6% faster (3 + 3 alternating
/// 10⁶-row loads, two inserts in flight, as the loader runs them; BENCHMARKS.md,
/// session 12). The overlap streaming buys — encoding block k+1 while the server parses
/// block k — matters little once two inserts are in flight.
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

/// One Native block of the rows of `parts`, not framed.
pub(super) fn native_block(layout: &TableLayout, parts: &[RecordBatch]) -> Result<bytes::Bytes> {
    let mut raw = Vec::new();
    encode_native_parts(layout, parts, &mut raw)?;
    Ok(bytes::Bytes::from(raw))
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

    /// Block `i`, encoded (not framed).
    pub(super) fn encode(&self, layout: &TableLayout, i: usize) -> Result<bytes::Bytes> {
        match self {
            Blocks::Slices(b) => native_block(layout, &b[i]),
            Blocks::Ordered {
                parts,
                order,
                block_rows,
            } => {
                let run = &order
                    [(i * block_rows).min(order.len())..((i + 1) * block_rows).min(order.len())];
                let mut raw = Vec::new();
                encode_native_ordered(layout, parts, run, &mut raw)?;
                Ok(bytes::Bytes::from(raw))
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

/// The streamed body of [`Client::insert_streamed`]: `first` (block 0, encoded
/// already), then the other blocks, encoded on a blocking thread at most two ahead of
/// the wire; every block LZ4-framed when `lz4`.
pub(super) fn stream_body(
    layout: TableLayout,
    blocks: std::sync::Arc<Blocks>,
    first: bytes::Bytes,
    lz4: bool,
) -> reqwest::Body {
    type Item = std::result::Result<bytes::Bytes, std::io::Error>;
    let (tx, rx) = tokio::sync::mpsc::channel::<Item>(2);
    tokio::task::spawn_blocking(move || {
        let mut next = 1;
        let mut block = Ok(framed(first, lz4));
        loop {
            let failed = block.is_err();
            // A closed channel means the request ended (failed or timed out): stop.
            // An error (unreachable: see `insert_streamed`) ends the body, so the
            // server refuses the insert rather than taking part of it.
            if tx.blocking_send(block).is_err() || failed {
                return;
            }
            if next >= blocks.len() {
                return;
            }
            next += 1;
            block = blocks
                .encode(&layout, next - 1)
                .map(|b| framed(b, lz4))
                .map_err(|e| std::io::Error::other(e.to_string()));
        }
    });
    reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
