//! Talking to ClickHouse: the HTTP client with failover, the table layout read with
//! `DESCRIBE TABLE`, the Native-format encoder driven by that layout, ClickHouse's LZ4
//! block framing, identifier quoting, and `migrate`.
//!
//! Why our own encoder and client rather than the official `clickhouse` crate: that
//! crate speaks RowBinary from Rust structs (rows, not columns), cannot be driven by a
//! table's real types at run time, and fails against 18.16 in its default mode
//! (CLICKHOUSE.md). Native is columnar like our Arrow batches, so encoding is a tight
//! loop per column, and the server parses it fastest (CLICKHOUSE.md, measured here).

mod client;
mod compress;
mod error;
mod ident;
mod layout;
mod migrate;
mod native;
mod sortkey;
mod stream;
mod types;

pub use client::{ClickHouseConfig, Client, ServerVersion};
pub use compress::{
    compress_lz4_frames, WireCompression, FRAME_CHUNK, MAX_FRAMING_THREADS, PARALLEL_MIN_BYTES,
};
pub use error::{Error, Result};
pub use ident::{quote_ident, quote_str};
pub use layout::{ColumnPlan, TableLayout};
pub use migrate::{create_table_sql, migrate, table_columns};
pub use native::{encode_native, encode_native_ordered, encode_native_parts};
pub use sortkey::SortKey;
pub use stream::{check_block_rows, DEFAULT_BLOCK_ROWS, MAX_BLOCK_ROWS, MIN_BLOCK_ROWS};
pub use types::ChType;
