//! Command line and environment configuration. Every flag has an environment variable;
//! a flag given on the command line wins over the variable. The doc comments are the
//! `--help` text and the README's flag table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::clickhouse::{WireCompression, DEFAULT_BLOCK_ROWS};

mod values;
use values::{
    block_rows, header_bytes, header_count, ipc_decoded_floor, segment_age, segment_bytes,
    url_bytes,
};
pub use values::{
    parse_bytes, parse_duration, MAX_IPC_DECODED_FLOOR, MAX_IPC_EXPANSION_CEILING,
    MIN_SEGMENT_BYTES,
};

/// Default `--insert-rows`: a whole default segment. Half of it (two inserts per
/// segment) cost the server 10% more CPU per row under a steady load and made the
/// end-to-end benchmark 7% slower (BENCHMARKS.md); the end of a burst is cut in two
/// by the loader instead (`loader::SPLIT_MIN_ROWS`).
pub const DEFAULT_INSERT_ROWS: u64 = 100_000;

/// The native sink: tracker API + Arrow batches in, write-ahead spool, bulk loads into
/// ClickHouse — or Parquet files when no ClickHouse is configured.
#[derive(Debug, Parser)]
#[command(
    name = "sink-clickhouse",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve` when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sink (the default).
    Serve(Box<ServeArgs>),
    /// Create the database and the events table, with types the server supports.
    Migrate(MigrateArgs),
}

/// ClickHouse connection flags (shared by `serve` and `migrate`).
#[derive(Debug, Clone, Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP URL; repeat (or comma-separate in the env var) for failover, in
    /// order. None: embedded mode, batches become Parquet files under the data dir.
    #[arg(long = "clickhouse-url", env = "CLICKHOUSE_URL", value_delimiter = ',')]
    pub clickhouse_url: Vec<String>,
    /// Database of the events table.
    #[arg(long, env = "CLICKHOUSE_DATABASE", default_value = "analytics")]
    pub clickhouse_database: String,
    /// The events table.
    #[arg(long, env = "CLICKHOUSE_TABLE", default_value = "events")]
    pub clickhouse_table: String,
    /// ClickHouse user.
    #[arg(long, env = "CLICKHOUSE_USER", default_value = "default")]
    pub clickhouse_user: String,
    /// ClickHouse password.
    #[arg(
        long,
        env = "CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub clickhouse_password: String,
    /// Timeout of one ClickHouse request (e.g. `30s`).
    #[arg(long, env = "CLICKHOUSE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub clickhouse_timeout: Duration,
    /// Insert bodies: `lz4`-framed, `none` (plain Native), or `auto` — LZ4 to a server
    /// on another host, none to a loopback URL (a sink next to its ClickHouse spends
    /// CPU on LZ4 for bytes that only cross a memory copy).
    #[arg(long, env = "CLICKHOUSE_COMPRESSION", value_enum, default_value_t = WireCompression::Auto)]
    pub clickhouse_compression: WireCompression,
    /// Rows per Native block of an insert: inserts up to this size go as one block,
    /// larger ones in blocks of this size (every insert's body is streamed, column by
    /// column). Large blocks save the server a copy (it squashes an insert's blocks
    /// into one before writing a part).
    #[arg(
        long,
        env = "CLICKHOUSE_BLOCK_ROWS",
        default_value_t = DEFAULT_BLOCK_ROWS,
        value_parser = block_rows,
    )]
    pub clickhouse_block_rows: usize,
    /// Send each insert in the table's sorting-key order (`true`, the default, where
    /// the key is plain columns or `toDate` of a UTC time column), so that ClickHouse
    /// skips its own sort and permutation of the block: about half of its CPU per
    /// inserted row on 18.16. `false` sends rows in arrival order.
    #[arg(
        long,
        env = "CLICKHOUSE_SORT_INSERTS",
        default_value_t = true,
        action = clap::ArgAction::Set,
    )]
    pub clickhouse_sort_inserts: bool,
}

/// Flags of `migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// ClickHouse connection.
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    /// Create replicated tables and a Distributed table `ON CLUSTER` this cluster.
    #[arg(long, env = "CLICKHOUSE_CLUSTER")]
    pub cluster: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "SINK_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SINK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data directory: the spool, the quarantine, and the Parquet output in embedded mode.
    #[arg(long, env = "SINK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// ClickHouse connection.
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    /// Bearer token required by `POST /v1/batches`. None: that route refuses everything.
    #[arg(long, env = "SINK_BATCH_TOKEN", hide_env_values = true)]
    pub batch_token: Option<String>,
    /// Sites file (TOML: sites, allowed hostnames, plan). None: any site is accepted.
    #[arg(long, env = "SINK_SITES")]
    pub sites: Option<PathBuf>,
    /// Events per second per client key (hashed client IP); 0 disables rate limiting.
    #[arg(long, env = "SINK_CLIENT_RATE", default_value_t = 20.0)]
    pub client_rate: f64,
    /// Events a client may send at once after being idle.
    #[arg(long, env = "SINK_CLIENT_BURST", default_value_t = 100)]
    pub client_burst: u32,
    /// Client keys the rate limiter keeps in memory (about 40 bytes each).
    #[arg(long, env = "SINK_CLIENT_MAX_KEYS", default_value_t = 100_000)]
    pub client_max_keys: usize,
    /// Seal a spool segment at this many rows (at least 1).
    #[arg(long, env = "SINK_FLUSH_ROWS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub flush_rows: u64,
    /// Rows per insert (or Parquet file): a sealed segment larger than this is cut into
    /// chunks of this many rows, at record boundaries, loaded up to
    /// `--load-concurrency` at once. The cut depends only on the segment and this
    /// value, so a replay gets the same dedup tokens; a change applies to the segments
    /// written from the next start on (the spool records each start's value, so the
    /// segments left in it are cut as before).
    #[arg(long, env = "SINK_INSERT_ROWS", default_value_t = DEFAULT_INSERT_ROWS, value_parser = clap::value_parser!(u64).range(1..))]
    pub insert_rows: u64,
    /// Inserts in flight, over one segment or several. One insert is parsed and
    /// written by one ClickHouse thread; two load a backlog 1.4–1.7× as fast on 2 cores
    /// (BENCHMARKS.md). Each chunk keeps its own dedup token.
    #[arg(long, env = "SINK_LOAD_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub load_concurrency: u16,
    /// Seal a spool segment at this many bytes on disk (e.g. `64MiB`). Large enough
    /// that a segment of `--flush-rows` uncompressed rows (≈ 250 bytes each) is sealed
    /// by its rows: 16 MiB cut them at 66,000 rows, and the extra inserts cost the
    /// end-to-end benchmark 12% (BENCHMARKS.md, session 17).
    #[arg(long, env = "SINK_FLUSH_BYTES", default_value = "64MiB", value_parser = segment_bytes)]
    pub flush_bytes: u64,
    /// Seal a spool segment at this age (e.g. `1s`, `500ms`; more than zero).
    #[arg(long, env = "SINK_FLUSH_INTERVAL", default_value = "1s", value_parser = segment_age)]
    pub flush_interval: Duration,
    /// Seal a spool segment once no event has reached it for this long, if it holds
    /// `--flush-idle-rows` rows: the end of a burst is loaded without waiting for the
    /// segment's age. `0s` turns it off. (Under a load that fills a segment within
    /// its age, group-commit rounds come every few ms; 25 ms of none is the end.)
    #[arg(long, env = "SINK_FLUSH_IDLE", default_value = "25ms", value_parser = parse_duration)]
    pub flush_idle: Duration,
    /// The rows an idle segment must hold to be sealed for idleness (smaller ones wait
    /// for their age, so that a trickle of events still makes few, large inserts) —
    /// unless a segment sealed within `--flush-interval` before it was opened was full
    /// or held this many rows itself: the rest of a burst, or of traffic faster than
    /// this many rows per `--flush-interval`, is sealed when idle whatever its size.
    #[arg(long, env = "SINK_FLUSH_IDLE_ROWS", default_value_t = 10_000)]
    pub flush_idle_rows: u64,
    /// LZ4-compress spool records once the spool holds this many bytes (`0`: always).
    /// Below it the loader is keeping up and a segment lives a second or two, so its
    /// records are written as they are (compressing them cost about a fifth of the
    /// sink's CPU); past it — ClickHouse down or slower than the traffic — records
    /// are compressed and the same disk holds ~3× more events. Set `0` where disk
    /// bandwidth is scarcer than CPU (uncompressed, a record is ≈ 250 bytes per event).
    #[arg(long, env = "SINK_SPOOL_COMPRESS_ABOVE", default_value = "256MiB", value_parser = parse_bytes)]
    pub spool_compress_above: u64,
    /// Keep the files of this many loaded segments to write the next segments over,
    /// instead of deleting them (`0`: delete). Written over, a file's pages are in the
    /// page cache and its blocks allocated: the spool's writes cost about half the CPU
    /// of filling new files, and the fsyncs return sooner. The kept files take disk
    /// beside the spool's `--spool-max-bytes`: up to this many segments, plus the old
    /// bytes of the file the open segment is being written over until its seal (a
    /// segment is at most `--flush-bytes` plus one round, ≤ 64 MiB).
    #[arg(long, env = "SINK_SPOOL_RECYCLE", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub spool_recycle: u32,
    /// Refuse new events (503 + Retry-After) while the spool holds this many bytes.
    #[arg(long, env = "SINK_SPOOL_MAX_BYTES", default_value = "10GiB", value_parser = parse_bytes)]
    pub spool_max_bytes: u64,
    /// Proxies (CIDRs, repeat or comma-separate) whose `CF-Connecting-IP` /
    /// `X-Forwarded-For` and `CF-IPCountry` headers are believed.
    #[arg(long, env = "SINK_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Vec<IpNet>,
    /// Secret the daily visitor-id salt is derived from; share it between instances.
    /// None: a random secret is created once in the data dir.
    #[arg(long, env = "SINK_SALT_SECRET", hide_env_values = true)]
    pub salt_secret: Option<String>,
    /// Largest tracker request body (`/api/event`, `/e`, and the pixel query string).
    #[arg(long, env = "SINK_MAX_BODY_BYTES", default_value = "256KiB", value_parser = parse_bytes)]
    pub max_body_bytes: u64,
    /// Most events in one tracker request.
    #[arg(long, env = "SINK_MAX_EVENTS_PER_REQUEST", default_value_t = 100)]
    pub max_events_per_request: usize,
    /// Longest request target (path and query string, so also a pixel's query; scheme and host too in absolute form), on
    /// every route: longer is answered `414 url_too_long` (JSON). 1KiB to 24KiB: with
    /// `--max-header-bytes` it must fit the connection's 64 KiB read buffer, past which
    /// hyper answers a bare 431 itself.
    #[arg(long, env = "SINK_MAX_URL_BYTES", default_value = "16KiB", value_parser = url_bytes)]
    pub max_url_bytes: usize,
    /// Most request header bytes (name + value + 4 per header), on every route: more is
    /// answered `431 headers_too_large` (JSON). 1KiB to 32KiB, for the same reason as
    /// `--max-url-bytes`.
    #[arg(long, env = "SINK_MAX_HEADER_BYTES", default_value = "32KiB", value_parser = header_bytes)]
    pub max_header_bytes: usize,
    /// Most request headers (a repeated name counts each time), on every route: more is
    /// answered `431 too_many_headers` (JSON). 32 to 99: fewer would refuse browsers
    /// behind a CDN; past 99 hyper answers a bare 431 itself (and raising hyper's 100
    /// costs a heap allocation per request).
    #[arg(long, env = "SINK_MAX_HEADERS", default_value_t = crate::server::head::DEFAULT_MAX_HEADERS, value_parser = header_count)]
    pub max_headers: usize,
    /// Largest `/v1/batches` body (an edge batch is ~10 000 events, well under 8 MiB).
    #[arg(long, env = "SINK_MAX_BATCH_BYTES", default_value = "32MiB", value_parser = parse_bytes)]
    pub max_batch_bytes: u64,
    /// Most rows in one `/v1/batches` body (bounds the memory of one decoded batch).
    #[arg(long, env = "SINK_MAX_BATCH_ROWS", default_value_t = 200_000)]
    pub max_batch_rows: usize,
    /// Bytes a `/v1/batches` body may decode to per byte received (1 to 255), checked
    /// from its headers before anything is decoded: a small LZ4 body cannot make the
    /// sink allocate without bound. Edge batches compress 3–10×; LZ4 cannot pass about
    /// 255×. At 1 a well-formed uncompressed body still passes (its buffers are its bytes).
    #[arg(
        long,
        env = "SINK_MAX_IPC_EXPANSION",
        default_value_t = ingest_core::MAX_IPC_EXPANSION,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
            .range(1..=MAX_IPC_EXPANSION_CEILING),
    )]
    pub max_ipc_expansion: usize,
    /// Bytes a `/v1/batches` body may always decode to, whatever its size (at most
    /// 1GiB; `0`: `--max-ipc-expansion` alone bounds it): a small body of many rows
    /// of short strings still decodes to their offsets and fixed-width columns.
    #[arg(
        long,
        env = "SINK_MIN_IPC_DECODED_BYTES",
        default_value = "16MiB",
        value_parser = ipc_decoded_floor,
    )]
    pub min_ipc_decoded_bytes: usize,
    /// Most ids in one `/v1/batches` `X-Batch-Ids` header, which is also the most IPC
    /// record batches such a body may hold (one per id; the edge sends one per Queue
    /// message, at most 100). More is answered 400. 1 to 10000.
    #[arg(
        long,
        env = "SINK_MAX_BATCH_IDS",
        default_value_t = 256,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
            .range(1..=crate::spool::batch_ids::MAX_IDS_PER_REQUEST as u64),
    )]
    pub max_batch_ids: usize,
    /// Recent `/v1/batches` ids remembered (on disk) to answer a redelivery "already stored".
    #[arg(long, env = "SINK_BATCH_IDS_KEEP", default_value_t = 100_000)]
    pub batch_ids_keep: usize,
    /// Longest wait between two load retries (backoff doubles from 100 ms up to this).
    #[arg(long, env = "SINK_RETRY_MAX_BACKOFF", default_value = "30s", value_parser = parse_duration)]
    pub retry_max_backoff: Duration,
    /// `/readyz` turns false when ClickHouse has been unreachable this long.
    #[arg(long, env = "SINK_UNREADY_AFTER", default_value = "60s", value_parser = parse_duration)]
    pub unready_after: Duration,
    /// On SIGTERM: how long to keep loading what is spooled before exiting.
    #[arg(long, env = "SINK_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// On SIGTERM: keep answering (`/readyz` false, new events 503) this long before
    /// closing the listener, so load balancers see the sink leave.
    #[arg(long, env = "SINK_DRAIN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub drain_delay: Duration,
    /// A request body not received within this is answered 408 (a slow client); a
    /// request whose events are staged waits for their fsync, up to 4× this (then 503
    /// with `Retry-After`: the spool is stalled).
    #[arg(long, env = "SINK_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Connections served at once; past it new ones wait in the listen backlog until
    /// one closes. With each connection's read buffer capped near 64 KiB (and refused
    /// bodies drained, not buffered) this bounds the server's memory per connection.
    #[arg(long, env = "SINK_MAX_CONNECTIONS", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Log format: `text` or `json`.
    #[arg(long, env = "SINK_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

#[cfg(test)]
mod tests;
