//! Test harnesses: the sink binary, load generation (and ClickHouse, see `clickhouse`).

pub mod clickhouse;
pub mod cluster;
pub mod load;
pub mod proxy;
pub mod raw;
pub mod sink;
