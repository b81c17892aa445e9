//! The test-only Native decoder the `native_encode` fuzz target checks our encoder
//! against (`fuzz/src/native_decode.rs`) is itself checked here against the real
//! server: ClickHouse 18.16 (`support::clickhouse`) answers `FORMAT Native` for rows
//! inserted with plain SQL, and the decoder must read back exactly those values — so a
//! fuzz oracle that agreed with a wrong encoder would fail here. The modern types
//! (`LowCardinality`, `DateTime64`) are checked against the ClickHouse 26.9 engine
//! (PyPI `chdb-core`), which writes the same Native format.

use sink_clickhouse::clickhouse::{create_table_sql, ServerVersion};

use crate::support::clickhouse::ClickHouse;

#[allow(dead_code)]
#[path = "../../../fuzz/src/native_decode.rs"]
mod native_decode;

use native_decode::{decode_block, Value};

fn s(v: &str) -> Value {
    Value::Str(v.as_bytes().to_vec())
}

#[test]
fn the_fuzz_oracle_decodes_what_clickhouse_itself_sends() {
    let ch = ClickHouse::start();
    let version = ServerVersion::parse(ch.query("SELECT version()").unwrap().trim()).unwrap();
    for sql in create_table_sql(&version, "analytics", "events", None).unwrap() {
        ch.query(&sql).unwrap();
    }
    ch.query(
        "INSERT INTO analytics.events (event_id, received_at, site_id, pathname, \
         screen_width, visitor_id, ttfb_ms, cls, scroll_depth, prop_keys, prop_values) VALUES \
         ('00112233-4455-6677-8899-aabbccddeeff', 1795392000, 'a.example', '/ü/€', \
          1, 18446744073709551615, 4294967295, 0.5, NULL, ['k1', 'k2'], ['v', '']), \
         ('ffffffff-0000-0000-0000-000000000001', 0, '', '', \
          65535, 0, NULL, NULL, 100, [], [])",
    )
    .unwrap();
    let body = reqwest::blocking::Client::new()
        .post(ch.url())
        .body(
            "SELECT event_id, received_at, site_id, pathname, screen_width, visitor_id, \
             ttfb_ms, lcp_ms, cls, scroll_depth, prop_keys, prop_values, city \
             FROM analytics.events ORDER BY screen_width FORMAT Native",
        )
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.bytes())
        .expect("SELECT … FORMAT Native");
    let (rows, cols) = decode_block(&body).unwrap_or_else(|e| panic!("decoding: {e}"));
    assert_eq!(rows, 2);
    let col = |name: &str| {
        cols.iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no column {name} in {cols:?}"))
    };
    let uuid = |t: &str| {
        let hex: String = t.chars().filter(|c| *c != '-').collect();
        let mut b = [0u8; 16];
        for (i, x) in b.iter_mut().enumerate() {
            *x = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        Value::Uuid(b)
    };
    assert_eq!(
        col("event_id").values,
        [
            uuid("00112233-4455-6677-8899-aabbccddeeff"),
            uuid("ffffffff-0000-0000-0000-000000000001")
        ]
    );
    assert_eq!(
        col("received_at").values,
        [Value::Int(1_795_392_000), Value::Int(0)]
    );
    assert_eq!(col("site_id").values, [s("a.example"), s("")]);
    assert_eq!(col("pathname").values, [s("/ü/€"), s("")]);
    assert_eq!(
        col("screen_width").values,
        [Value::Int(1), Value::Int(65535)]
    );
    assert_eq!(
        col("visitor_id").values,
        [Value::Int(u64::MAX.into()), Value::Int(0)]
    );
    assert_eq!(
        col("ttfb_ms").values,
        [Value::Int(u32::MAX.into()), Value::Null]
    );
    assert_eq!(col("lcp_ms").values, [Value::Null, Value::Null]);
    assert_eq!(
        col("cls").values,
        [Value::F32(0.5f32.to_bits()), Value::Null]
    );
    assert_eq!(col("scroll_depth").values, [Value::Null, Value::Int(100)]);
    assert_eq!(
        col("prop_keys").values,
        [Value::Array(vec![s("k1"), s("k2")]), Value::Array(vec![])]
    );
    assert_eq!(
        col("prop_values").values,
        [Value::Array(vec![s("v"), s("")]), Value::Array(vec![])]
    );
    assert_eq!(col("city").values, [s(""), s("")]);
    // 18.16 names the type without its time zone in Native output.
    assert!(col("received_at").type_name.starts_with("DateTime"));
}

/// The modern types (`LowCardinality(String)`, `DateTime64(3)`), which 18.16 lacks, as
/// the ClickHouse 26.9 engine (PyPI `chdb-core`) writes them in Native.
#[test]
fn the_fuzz_oracle_decodes_modern_types_as_chdb_sends_them() {
    let sql = "SELECT toLowCardinality(p.1) AS lc, \
               toDateTime64(1795392000123 / 1000, 3, 'UTC') + p.2 AS t \
               FROM (SELECT arrayJoin([('a', 0), ('', 1), ('ü', 2), ('a', 3)]) AS p)";
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, chdb; sys.stdout.buffer.write(chdb.query(sys.argv[1], 'Native').bytes())",
            sql,
        ])
        .output()
        .expect("python3 is needed (scripts/setup installs chdb-core)");
    assert!(
        out.status.success(),
        "chdb failed (is chdb-core installed? scripts/setup): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rows, cols) = decode_block(&out.stdout).unwrap_or_else(|e| panic!("decoding: {e}"));
    assert_eq!(rows, 4);
    assert_eq!(cols[0].type_name, "LowCardinality(String)");
    assert_eq!(cols[0].values, [s("a"), s(""), s("ü"), s("a")]);
    assert!(
        cols[1].type_name.starts_with("DateTime64(3"),
        "{}",
        cols[1].type_name
    );
    let ms = 1_795_392_000_123i128;
    assert_eq!(
        cols[1].values,
        [0, 1, 2, 3].map(|n| Value::Int(ms + 1000 * n))
    );
}
