//! Integration tests of sink-clickhouse, one binary.
//!
//! Needs: the `sink-clickhouse` binary (built by cargo for this test), `python3` with
//! `pyarrow`, `duckdb` and `chdb-core` (the Parquet checks fail loudly without them), and
//! for the ClickHouse tests Debian's `clickhouse-server` 18.16 at /usr/bin (started by
//! the harness on loopback). Sink processes use ports 19200-19299.
//! The cluster tests (`cluster`) also need Debian's `zookeeper` 3.8 and use ports
//! 19400-19499.
//! The hardening suites (`hostile`, `abuse`, `faults`; see SECURITY.md) also need `bash`
//! and `gzip`; their fault proxy uses ports 19700-19799.
//! The status page test (`status_page`) also needs Debian's `chromium` at
//! /usr/bin/chromium (headless). The quota test (`quota`) also needs Debian's `libfaketime`.

mod abuse;
mod clickhouse_26;
mod clickhouse_loader;
mod clickhouse_sort;
mod clickhouse_wire;
mod cluster;
mod faults;
mod hostile;
mod native_decoder;
mod quota;
mod sink_batches;
mod sink_clickhouse;
mod sink_embedded;
mod status_page;
mod support;
