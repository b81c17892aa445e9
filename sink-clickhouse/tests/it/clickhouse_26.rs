//! Our Native blocks read by a modern engine: ClickHouse 26.9 embedded (PyPI
//! `chdb-core`) reads what the loader encodes for its layout, value for value, and
//! LowCardinality index widths as it writes them.

use std::borrow::Cow;

use ingest_core::events_to_batch;
use sink_clickhouse::clickhouse::{create_table_sql, encode_native, ServerVersion, TableLayout};

use crate::support::fixtures::{expected_tsv, sample_events, EXPECT_COLUMNS};

/// The Native blocks we send, read by the ClickHouse 26.9 engine (chdb) with the modern
/// types `migrate` picks there (DateTime64, LowCardinality, UUID): equal contents.
#[test]
fn native_blocks_are_read_by_clickhouse_26_with_equal_contents() {
    let v = ServerVersion::parse("26.9.1").unwrap();
    let ddl = create_table_sql(&v, "analytics", "events", None)
        .unwrap()
        .pop()
        .unwrap();
    // Column types from the DDL, as DESCRIBE would give them.
    let rows: Vec<(String, String)> = ddl
        .lines()
        .filter_map(|l| l.trim().strip_prefix('`'))
        .filter_map(|l| l.split_once("` "))
        .map(|(n, t)| (n.to_owned(), t.trim_end_matches(',').to_owned()))
        .collect();
    assert_eq!(rows.len(), ingest_core::schema::COLUMNS.len());
    let layout = TableLayout::from_describe(&rows).unwrap();
    let events = sample_events(2000);
    let mut native = Vec::new();
    encode_native(&layout, &events_to_batch(&events), &mut native).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.native");
    std::fs::write(&path, &native).unwrap();
    let sql = format!(
        "SELECT {} FROM file('{}', Native) ORDER BY received_at FORMAT TabSeparated",
        EXPECT_COLUMNS,
        path.display()
    );
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, chdb; sys.stdout.write(str(chdb.query(sys.argv[1], 'TabSeparated')))",
            &sql,
        ])
        .output()
        .expect("python3 is needed (scripts/setup installs chdb-core)");
    assert!(
        out.status.success(),
        "chdb failed (is chdb-core installed? scripts/setup): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).unwrap();
    let want = expected_tsv(&events);
    assert_eq!(got.lines().count(), events.len());
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "row {i}");
    }
    let types = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, chdb; sys.stdout.write(str(chdb.query(sys.argv[1], 'TabSeparated')))",
            &format!("SELECT toTypeName(received_at), toTypeName(site_id), toTypeName(event_id) FROM file('{}', Native) LIMIT 1", path.display()),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&types.stdout),
        "DateTime64(3, \\'UTC\\')\tLowCardinality(String)\tUUID\n"
    );
}

/// Runs `sql` in chdb (ClickHouse 26.9) and returns the TabSeparated result.
fn chdb(sql: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, chdb; sys.stdout.write(str(chdb.query(sys.argv[1], 'TabSeparated')))",
            sql,
        ])
        .output()
        .expect("python3 is needed (scripts/setup installs chdb-core)");
    assert!(
        out.status.success(),
        "chdb failed (is chdb-core installed? scripts/setup): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// LowCardinality dictionaries past 256 and 65 536 keys switch to UInt16 and UInt32
/// indexes; ClickHouse 26.9 reads all three widths back to the same strings.
#[test]
fn low_cardinality_index_widths_are_read_by_clickhouse_26() {
    let n = 70_000;
    let mut events = sample_events(n);
    for (i, e) in events.iter_mut().enumerate() {
        e.site_id = Cow::Owned(format!("s{i}.example")); // 70 001 keys: UInt32 indexes
        e.hostname = Cow::Owned(format!("h{}", i % 300)); // 301 keys: UInt16 indexes
    }
    let rows: Vec<(String, String)> = ["site_id", "hostname", "device", "visitor_id"]
        .iter()
        .map(|c| {
            let t = if *c == "visitor_id" {
                "UInt64"
            } else {
                "LowCardinality(String)"
            };
            (c.to_string(), t.to_string())
        })
        .collect();
    let layout = TableLayout::from_describe(&rows).unwrap();
    let mut native = Vec::new();
    encode_native(&layout, &events_to_batch(&events), &mut native).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lc.native");
    std::fs::write(&path, &native).unwrap();
    let got = chdb(
        &format!(
            "SELECT count(), uniqExact(site_id), uniqExact(hostname), uniqExact(device), \
         sum(toUInt64(substring(site_id, 2, position(site_id, '.') - 2)) + visitor_id), \
         countIf(hostname = concat('h', toString((u64::MAX_PLACEHOLDER - visitor_id) % 300))) \
         FROM file('{}', Native)",
            path.display()
        )
        .replace("u64::MAX_PLACEHOLDER", &u64::MAX.to_string()),
    );
    // site_id index i and visitor_id u64::MAX - i add up to u64::MAX on every row
    // (sum wraps in UInt64): n * u64::MAX mod 2^64.
    let wrapped = (n as u64).wrapping_mul(u64::MAX);
    assert_eq!(got, format!("{n}\t{n}\t300\t3\t{wrapped}\t{n}\n"));
}
