//! Tests against a real ClickHouse cluster on loopback (see `support::cluster`: ZooKeeper
//! 3.8 + three clickhouse-server 18.16), and the dashboard queries of `docs/queries.sql`
//! on both ClickHouse 18.16 (the cluster) and 26.9 (PyPI `chdb-core`, in-process).
//!
//! Needs: Debian packages `zookeeper` and `clickhouse-server`; `python3` with `chdb`.

use std::process::Command;

use crate::support::cluster::{Cluster, REPLICATED, SHARDED};

/// The dashboard queries, split on their `-- name:` marker lines.
const QUERIES_SQL: &str = include_str!("../../../docs/queries.sql");

/// Schema-v1 columns with `STR` for the low-cardinality strings and `DATETIME` for
/// `received_at`, so each engine gets the types it supports (DESIGN.md "The event row").
const COLUMNS: &str = "event_id UUID, received_at DATETIME, site_id STR, name STR, \
    hostname STR, pathname String, referrer_host STR, referrer_source STR, utm_source STR, \
    utm_medium STR, utm_campaign STR, utm_content String, utm_term String, country STR, \
    region STR, city STR, browser STR, browser_version STR, os STR, os_version STR, \
    device STR, screen_width UInt16, visitor_id UInt64, ttfb_ms Nullable(UInt32), \
    fcp_ms Nullable(UInt32), lcp_ms Nullable(UInt32), inp_ms Nullable(UInt32), \
    load_ms Nullable(UInt32), cls Nullable(Float32), scroll_depth Nullable(UInt8), \
    engagement_ms Nullable(UInt32), prop_keys Array(String), prop_values Array(String)";

/// 18.16 types: no DateTime64, LowCardinality only behind an experimental flag.
fn columns_18() -> String {
    COLUMNS
        .replace("DATETIME", "DateTime('UTC')")
        .replace("STR", "String")
}

/// Modern types, as DESIGN.md lists them.
fn columns_modern() -> String {
    COLUMNS
        .replace("DATETIME", "DateTime64(3, 'UTC')")
        .replace("STR", "LowCardinality(String)")
}

/// Rows every dashboard query has something to show for: `ROWS` events over the last
/// ~2.3 days, pageviews / engagement / a `Signup` custom event with properties, web
/// vitals on page views. The same SQL runs on 18.16 and 26.9.
const ROWS: u64 = 3000;
const ROWS_SQL: &str = "SELECT
 generateUUIDv4() AS event_id,
 toDateTime(now() - (number * 37) % 200000) AS received_at,
 if(number % 7 = 0, 'other.org', 'example.com') AS site_id,
 ['pageview', 'pageview', 'pageview', 'engagement', 'Signup'][number % 5 + 1] AS name,
 'example.com' AS hostname,
 ['/', '/pricing', '/blog/a', '/docs'][number % 4 + 1] AS pathname,
 ['', 'www.google.com', 'news.ycombinator.com'][number % 3 + 1] AS referrer_host,
 ['', 'Google', 'Hacker News'][number % 3 + 1] AS referrer_source,
 if(number % 6 = 0, 'newsletter', '') AS utm_source,
 if(number % 6 = 0, 'email', '') AS utm_medium,
 if(number % 6 = 0, 'launch', '') AS utm_campaign,
 '' AS utm_content, '' AS utm_term,
 ['DE', 'US', 'FR', ''][number % 4 + 1] AS country,
 ['BE', 'CA', 'IDF', ''][number % 4 + 1] AS region,
 ['Berlin', 'San Francisco', 'Paris', ''][number % 4 + 1] AS city,
 ['Chrome', 'Firefox', 'Safari'][number % 3 + 1] AS browser,
 ['120', '128', '17'][number % 3 + 1] AS browser_version,
 ['Windows', 'Linux', 'Mac'][number % 3 + 1] AS os,
 ['10', '', '14'][number % 3 + 1] AS os_version,
 ['desktop', 'mobile', 'tablet'][number % 3 + 1] AS device,
 toUInt16([1920, 390, 820, 0][number % 4 + 1]) AS screen_width,
 toUInt64(number % 97) AS visitor_id,
 if(number % 5 < 3, toNullable(toUInt32(50 + number % 300)), NULL) AS ttfb_ms,
 if(number % 5 < 3, toNullable(toUInt32(300 + number % 900)), NULL) AS fcp_ms,
 if(number % 5 < 3, toNullable(toUInt32(800 + number % 3000)), NULL) AS lcp_ms,
 if(number % 5 < 3, toNullable(toUInt32(number % 400)), NULL) AS inp_ms,
 if(number % 5 < 3, toNullable(toUInt32(1000 + number % 4000)), NULL) AS load_ms,
 if(number % 5 < 3, toNullable(toFloat32((number % 30) / 100)), NULL) AS cls,
 if(number % 5 = 3, toNullable(toUInt8(number % 101)), NULL) AS scroll_depth,
 if(number % 5 = 3, toNullable(toUInt32(number % 120000)), NULL) AS engagement_ms,
 if(number % 5 = 4, ['plan', 'source'], emptyArrayString()) AS prop_keys,
 if(number % 5 = 4, [['free', 'pro'][number % 2 + 1], 'footer'], emptyArrayString()) AS prop_values
FROM system.numbers LIMIT 3000";

/// Page views of `example.com` in [`ROWS_SQL`].
fn expected_pageviews() -> u64 {
    (0..ROWS).filter(|n| n % 7 != 0 && n % 5 < 3).count() as u64
}

/// `(name, sql)` for every query of docs/queries.sql, in file order.
fn queries() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in QUERIES_SQL.lines() {
        if let Some(name) = line.strip_prefix("-- name: ") {
            out.push((name.trim().to_owned(), String::new()));
        } else if let Some((_, sql)) = out.last_mut() {
            if !line.trim_start().starts_with("--") {
                sql.push_str(line);
                sql.push('\n');
            }
        }
    }
    for (name, sql) in &mut out {
        *sql = sql.trim().trim_end_matches(';').to_owned();
        assert!(!sql.is_empty(), "query {name} is empty");
        assert!(!sql.contains(';'), "query {name} holds two statements");
    }
    out
}

/// The schema-v1 table on a cluster: `events_local` (ReplicatedMergeTree on every node
/// of `cluster`) and `events` (Distributed over it), both `ON CLUSTER`. The sharding key
/// is deterministic (a retried block splits into the same per-shard blocks, which the
/// replicated tables then deduplicate; `rand()` would defeat that) and keeps a
/// visitor's events on one shard. (18.16 cannot hash a UUID, hence not `event_id`.)
fn create_events_on_cluster(c: &Cluster, cluster: &str) {
    c.query(
        0,
        &format!("CREATE DATABASE IF NOT EXISTS analytics ON CLUSTER {cluster}"),
    );
    c.query(
        0,
        &format!(
            "CREATE TABLE analytics.events_local ON CLUSTER {cluster} ({}) \
             ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/analytics/events_local', '{{replica}}') \
             PARTITION BY toYYYYMM(received_at) \
             ORDER BY (site_id, toDate(received_at), name, visitor_id)",
            columns_18()
        ),
    );
    c.query(
        0,
        &format!(
            "CREATE TABLE analytics.events ON CLUSTER {cluster} AS analytics.events_local \
             ENGINE = Distributed({cluster}, analytics, events_local, cityHash64(site_id, visitor_id))"
        ),
    );
}

#[test]
fn queries_sql_runs_on_a_clickhouse_18_cluster_through_the_distributed_table() {
    let _one = Cluster::lock();
    let c = Cluster::start();
    create_events_on_cluster(&c, SHARDED);
    // Synchronous distributed insert: returns once every shard has its part.
    c.try_query_with(
        0,
        &format!("INSERT INTO analytics.events {ROWS_SQL}"),
        &[("insert_distributed_sync", "1")],
    )
    .unwrap_or_else(|e| panic!("insert failed: {e}"));
    c.query(1, "SYSTEM SYNC REPLICA analytics.events_local");
    let shard1 = c.count(0, "SELECT count() FROM analytics.events_local");
    let shard1_replica = c.count(1, "SELECT count() FROM analytics.events_local");
    let shard2 = c.count(2, "SELECT count() FROM analytics.events_local");
    assert_eq!(shard1, shard1_replica, "replica 2 of shard 1 caught up");
    assert!(
        shard1 > 0 && shard2 > 0,
        "both shards hold rows: {shard1} + {shard2}"
    );
    assert_eq!(shard1 + shard2, ROWS, "per-shard counts add up");
    assert_eq!(c.count(2, "SELECT count() FROM analytics.events"), ROWS);

    let qs = queries();
    assert!(qs.len() >= 20, "docs/queries.sql has {} queries", qs.len());
    for (name, sql) in &qs {
        let out = c
            .try_query(0, sql)
            .unwrap_or_else(|e| panic!("query {name} failed on 18.16: {e}\n{sql}"));
        assert!(
            !out.trim().is_empty(),
            "query {name} returned no rows on 18.16"
        );
    }
    // One figure checked exactly: the daily series adds up to the page views inserted.
    let daily = c.query(
        0,
        &qs.iter()
            .find(|(n, _)| n == "visitors_pageviews_daily")
            .unwrap()
            .1,
    );
    let pageviews: u64 = daily
        .lines()
        .map(|l| l.split('\t').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(pageviews, expected_pageviews());
}

/// The same queries on ClickHouse 26.9 (chdb), over a MergeTree with the modern types.
#[test]
fn queries_sql_runs_on_modern_clickhouse_chdb() {
    let script = r#"
import sys
from chdb import session
cols, rows, queries = sys.argv[1], sys.argv[2], sys.argv[3:]
s = session.Session()
s.query("CREATE DATABASE analytics")
s.query("CREATE TABLE analytics.events (" + cols + ") ENGINE = MergeTree "
        "PARTITION BY toYYYYMM(received_at) ORDER BY (site_id, toDate(received_at), name, visitor_id)")
s.query("INSERT INTO analytics.events " + rows)
for i in range(0, len(queries), 2):
    name, sql = queries[i], queries[i + 1]
    try:
        out = str(s.query(sql, "TSV"))
    except Exception as e:
        print("FAIL", name, str(e).replace("\n", " "))
        sys.exit(1)
    print("ok", name, len(out.strip().splitlines()))
    if name == "visitors_pageviews_daily":
        print("pageviews", sum(int(l.split("\t")[2]) for l in out.strip().splitlines()))
"#;
    let qs = queries();
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .arg(columns_modern())
        .arg(ROWS_SQL);
    for (n, q) in &qs {
        cmd.arg(n).arg(q);
    }
    let out = cmd
        .output()
        .expect("python3 is missing: the chdb test needs python3 with PyPI chdb-core");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'chdb'"),
        "PyPI chdb-core is not installed for python3 (scripts/setup installs it)"
    );
    assert!(out.status.success(), "chdb run failed:\n{stdout}\n{stderr}");
    for (name, _) in &qs {
        let line = stdout
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no result for {name}:\n{stdout}"));
        let rows: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(rows > 0, "query {name} returned no rows on 26.9");
    }
    let pv = stdout
        .lines()
        .find_map(|l| l.strip_prefix("pageviews "))
        .expect("pageviews line");
    assert_eq!(pv.parse::<u64>().unwrap(), expected_pageviews());
}

/// A retried insert of the same block — on the same replica or on the other one — is
/// kept once by ReplicatedMergeTree's block deduplication (18.16 + ZooKeeper 3.8); a
/// different block is not.
#[test]
fn replicated_table_keeps_a_retried_block_once() {
    let _one = Cluster::lock();
    let mut c = Cluster::start();
    create_events_on_cluster(&c, REPLICATED);
    let block = |from: u64, n: u64| -> String {
        let mut s = String::from(
            "INSERT INTO analytics.events_local (event_id, received_at, site_id, name, pathname, visitor_id) FORMAT TSV\n",
        );
        for i in from..from + n {
            s.push_str(&format!(
                "00000000-0000-4000-8000-{i:012x}\t2026-11-23 12:00:00\tsite-{}\tpageview\t/p/{i}\t{}\n",
                i % 3,
                i * 7
            ));
        }
        s
    };
    let first = block(0, 1000);
    c.query(0, &first);
    c.query(0, &first); // the sink's retry after a lost answer
    c.query(1, &first); // the same retry, failed over to the other replica
    for node in [0, 1] {
        c.query(node, "SYSTEM SYNC REPLICA analytics.events_local");
        assert_eq!(
            c.count(node, "SELECT count() FROM analytics.events_local"),
            1000
        );
        assert_eq!(
            c.count(
                node,
                "SELECT uniqExact(event_id) FROM analytics.events_local"
            ),
            1000,
            "distinct event_id = row count on node {node}"
        );
    }
    // Replica 0 killed: the retry and a new block go to replica 1; replica 0 comes back
    // and fetches what it missed. Not vacuous: the block with other rows is stored.
    c.kill(0);
    c.query(1, &first);
    c.query(1, &block(1000, 500));
    c.restart(0);
    c.query(0, "SYSTEM SYNC REPLICA analytics.events_local");
    for node in [0, 1] {
        assert_eq!(
            c.count(node, "SELECT count() FROM analytics.events_local"),
            1500
        );
        assert_eq!(
            c.count(
                node,
                "SELECT uniqExact(event_id) FROM analytics.events_local"
            ),
            1500
        );
    }
}
