//! Test harnesses: the sink binary, load generation (and ClickHouse, see `clickhouse`),
//! and the ClickHouse suites' fixtures (`fixtures`).

pub mod clickhouse;
pub mod cluster;
pub mod fixtures;
pub mod load;
pub mod proxy;
pub mod raw;
pub mod sink;
