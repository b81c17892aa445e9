//! Inserts in the table's sorting-key order against a real ClickHouse 18.16 (from
//! `support::clickhouse`): the server must find every such block already sorted.

use ingest_core::{events_to_batch, Event};
use sink_clickhouse::clickhouse::{migrate, ClickHouseConfig, Client};

use crate::support::clickhouse::ClickHouse;
use crate::support::fixtures::{client, rt, sample_events, BLOCK_ROWS};

/// The server's count of MergeTree blocks written, and of those it found in key order
/// already (`system.events`; an event never counted is absent: 0).
fn blocks_written(ch: &ClickHouse) -> (u64, u64) {
    let text = ch
        .query(
            "SELECT event, value FROM system.events \
             WHERE event IN ('MergeTreeDataWriterBlocks', 'MergeTreeDataWriterBlocksAlreadySorted') \
             FORMAT TabSeparated",
        )
        .unwrap();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('\t'))
            .map_or(0, |v| v.parse().unwrap())
    };
    (
        get("MergeTreeDataWriterBlocks"),
        get("MergeTreeDataWriterBlocksAlreadySorted"),
    )
}

/// With `sort_inserts`, an insert arrives in the table's `ORDER BY` order, so 18.16
/// writes its part without sorting it: the server counts every such block as already
/// sorted — one block per insert, unstreamed or streamed in several Native blocks
/// (which it squashes into one). In arrival order (the sample's sites cycle) it sorts.
/// Every row is stored either way.
#[test]
fn inserts_in_key_order_skip_the_servers_sort() {
    let ch = ClickHouse::start();
    let n = BLOCK_ROWS * 2 + 123;
    let events = sample_events(n);
    let batch = events_to_batch(&events);
    let small = batch.slice(0, 5000);
    let parts: Vec<_> = (0..n)
        .step_by(1000)
        .map(|at| batch.slice(at, 1000.min(n - at)))
        .collect();
    let sorted = client(vec![ch.url()], "analytics", "events");
    let unsorted = Client::new(ClickHouseConfig {
        sort_inserts: false,
        ..sorted.config().clone()
    })
    .unwrap();
    // The server is asked for its counts between the inserts, outside the runtime
    // (the harness's queries are blocking).
    let rt = rt();
    let layout = rt.block_on(async {
        migrate(&sorted, None).await.unwrap();
        sorted.describe().await.unwrap()
    });
    assert!(layout.sort_key.is_some(), "{layout:?}");
    let before = blocks_written(&ch);
    rt.block_on(async {
        sorted.insert(&layout, &small, None).await.unwrap();
        sorted.insert_parts(&layout, &parts, None).await.unwrap();
    });
    let after = blocks_written(&ch);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (2, 2),
        "blocks written, of them already sorted"
    );
    let plain = rt.block_on(unsorted.describe()).unwrap();
    assert_eq!(plain.sort_key, None);
    rt.block_on(unsorted.insert(&plain, &small, None)).unwrap();
    let last = blocks_written(&ch);
    assert_eq!((last.0 - after.0, last.1 - after.1), (1, 0));
    let sum = |evs: &[Event<'_>]| evs.iter().map(|e| u64::from(e.screen_width)).sum::<u64>();
    assert_eq!(
        ch.query("SELECT count(), uniqExact(event_id), sum(screen_width) FROM analytics.events")
            .unwrap(),
        format!(
            "{}\t{n}\t{}\n",
            n + 10_000,
            sum(&events) + 2 * sum(&events[..5000])
        )
    );
}
