//! Tests against a real ClickHouse cluster on loopback (see `support::cluster`: ZooKeeper
//! 3.8 + three clickhouse-server 18.16): `sink-clickhouse migrate --cluster`, the sink
//! failing over between the replicas of a shard while one is killed (writing to the
//! Distributed table, and to one shard's local table), replicated block deduplication,
//! and the dashboard queries of `docs/queries.sql` on both ClickHouse 18.16 (the
//! cluster) and 26.9 (PyPI `chdb-core`, in-process).
//!
//! Needs: Debian packages `zookeeper` and `clickhouse-server`; `python3` with `chdb`;
//! the `sink-clickhouse` binary (built by cargo for this test binary).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::cluster::{Cluster, REPLICATED, SHARDED};
use crate::support::load;
use crate::support::sink::Sink;

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
/// `IF NOT EXISTS`, like `migrate`: 18.16's distributed-DDL worker may run a task a
/// second time after its ZooKeeper session was interrupted (seen here once, under
/// load), and the second run must not fail the statement.
fn create_events_on_cluster(c: &Cluster, cluster: &str) {
    c.query(
        0,
        &format!("CREATE DATABASE IF NOT EXISTS analytics ON CLUSTER {cluster}"),
    );
    c.query(
        0,
        &format!(
            "CREATE TABLE IF NOT EXISTS analytics.events_local ON CLUSTER {cluster} ({}) \
             ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/analytics/events_local', '{{replica}}') \
             PARTITION BY toYYYYMM(received_at) \
             ORDER BY (site_id, toDate(received_at), name, visitor_id)",
            columns_18()
        ),
    );
    c.query(
        0,
        &format!(
            "CREATE TABLE IF NOT EXISTS analytics.events ON CLUSTER {cluster} AS analytics.events_local \
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

/// `sink-clickhouse migrate --cluster NAME` against node 0.
fn migrate_cluster(c: &Cluster, cluster: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_sink-clickhouse"))
        .args([
            "migrate",
            "--clickhouse-url",
            &c.url(0),
            "--cluster",
            cluster,
        ])
        .env_remove("CLICKHOUSE_URL")
        .env_remove("CLICKHOUSE_CLUSTER")
        .output()
        .expect("running sink-clickhouse migrate");
    assert!(
        out.status.success(),
        "migrate --cluster {cluster} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `(site, rows)` through the Distributed table.
fn per_site(c: &Cluster, node: usize) -> std::collections::BTreeMap<String, u64> {
    c.query(
        node,
        "SELECT site_id, count() FROM analytics.events GROUP BY site_id FORMAT TabSeparated",
    )
    .lines()
    .filter_map(|l| {
        let (s, n) = l.split_once('\t')?;
        Some((s.to_owned(), n.parse().ok()?))
    })
    .collect()
}

/// `migrate --cluster sharded`, checked on every node.
fn migrate_sharded(c: &Cluster) {
    migrate_cluster(c, SHARDED);
    for node in 0..3 {
        let engines = c.query(
            node,
            "SELECT name, engine FROM system.tables WHERE database = 'analytics' \
             ORDER BY name FORMAT TabSeparated",
        );
        assert!(
            engines.contains("events\tDistributed")
                && engines.contains("events_local\tReplicatedMergeTree"),
            "node {node} tables after migrate --cluster: {engines}"
        );
    }
}

/// Starts a sink loading `table` through node 0 then node 1 (failover order), sends
/// NDJSON load while node 0 is killed and brought back — checking that loads go on
/// while it is down — and returns what was acknowledged once the spool is loaded.
fn load_with_replica_0_killed(c: &mut Cluster, table: &str) -> load::Tally {
    let (u0, u1) = (c.url(0), c.url(1));
    let sink = Sink::start(&[
        "--clickhouse-url",
        &u0,
        "--clickhouse-url",
        &u1,
        "--clickhouse-table",
        table,
        "--flush-interval",
        "200ms",
        "--flush-rows",
        "5000",
        "--retry-max-backoff",
        "1s",
        "--clickhouse-timeout",
        "10s",
    ]);
    let stop = AtomicBool::new(false);
    let url = sink.url("/e");
    let loaded = || sink.metric("sink_loaded_rows_total") as u64;
    let run = std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            load::send_ndjson(&url, 0, 1_000_000, 50, 4, || stop.load(Ordering::Relaxed))
        });
        sink.wait_until(
            "rows loaded through node 0",
            Duration::from_secs(60),
            || loaded() >= 2000,
        );
        c.kill(0);
        let at_kill = loaded();
        sink.wait_until(
            "loads continuing through node 1 while node 0 is down",
            Duration::from_secs(60),
            || loaded() >= at_kill + 5000,
        );
        c.restart(0);
        let at_restart = loaded();
        sink.wait_until(
            "loads after node 0 is back",
            Duration::from_secs(60),
            || loaded() >= at_restart + 2000,
        );
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap()
    });
    assert!(run.refused.is_empty(), "refused: {:?}", run.refused);
    let acked = run.acked.rows;
    sink.wait_until("spool loaded", Duration::from_secs(60), || {
        sink.spool_empty() && loaded() >= acked
    });
    eprintln!(
        "{table}: {acked} events acknowledged; sink ClickHouse errors {}",
        sink.metric("sink_clickhouse_errors_total") as u64
    );
    run.acked
}

/// The sink loads the Distributed table through node 0, failing over to node 1 (the
/// other replica of shard 1) while node 0 is killed, and back; nothing acknowledged is
/// lost, a retried block is not doubled, and the shards' local counts add up.
#[test]
fn sink_fails_over_between_replicas_and_the_shards_add_up() {
    let _one = Cluster::lock();
    let mut c = Cluster::start();
    migrate_sharded(&c);
    let acked = load_with_replica_0_killed(&mut c, "events");
    // A Distributed insert reaches the other shard in the background (and node 0's
    // queue from before the kill after its restart): wait until every acknowledged
    // event is visible through the Distributed table.
    let distinct = "SELECT uniqExact(event_id) FROM analytics.events";
    let t0 = Instant::now();
    while c.count(2, distinct) < acked.rows && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    for node in [0, 1] {
        c.query(node, "SYSTEM SYNC REPLICA analytics.events_local");
    }
    assert_eq!(
        c.count(2, distinct),
        acked.rows,
        "distinct event_id = acknowledged"
    );
    let total = c.count(2, "SELECT count() FROM analytics.events");
    assert_eq!(total, acked.rows, "no acknowledged row stored twice");
    let local = "SELECT count() FROM analytics.events_local";
    let (shard1, shard1_other, shard2) = (c.count(0, local), c.count(1, local), c.count(2, local));
    assert_eq!(shard1, shard1_other, "both replicas of shard 1 agree");
    assert!(
        shard1 > 0 && shard2 > 0,
        "both shards hold rows: {shard1} + {shard2}"
    );
    assert_eq!(
        shard1 + shard2,
        acked.rows,
        "per-shard counts add up to the acknowledged"
    );
    assert_eq!(per_site(&c, 1), acked.per_site);
}

/// The other documented set-up: the sink writes straight to one shard's local
/// replicated table (its URLs are that shard's replicas). Failover works the same, the
/// rows stay on that shard, and queries through the Distributed table see them all.
#[test]
fn sink_writing_one_shards_local_table_fails_over_between_its_replicas() {
    let _one = Cluster::lock();
    let mut c = Cluster::start();
    migrate_sharded(&c);
    let acked = load_with_replica_0_killed(&mut c, "events_local");
    for node in [0, 1] {
        c.query(node, "SYSTEM SYNC REPLICA analytics.events_local");
    }
    let local = "SELECT count() FROM analytics.events_local";
    let distinct = "SELECT uniqExact(event_id) FROM analytics.events_local";
    for node in [0, 1] {
        assert_eq!(
            c.count(node, local),
            acked.rows,
            "replica {node} holds every row once"
        );
        assert_eq!(
            c.count(node, distinct),
            acked.rows,
            "replica {node}: distinct event_id"
        );
    }
    assert_eq!(
        c.count(2, local),
        0,
        "shard 2 is not written in this set-up"
    );
    assert_eq!(
        c.count(2, "SELECT count() FROM analytics.events"),
        acked.rows
    );
    assert_eq!(per_site(&c, 2), acked.per_site);
}
