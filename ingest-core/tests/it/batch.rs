//! The batcher: a batch at max rows, max bytes or max age, whichever first, with
//! schema v1 and its version in the metadata.

use ingest_core::schema::{self, VERSION, VERSION_KEY};
use ingest_core::{batch_to_events, event_bytes, events_to_batch, BatchConfig, Batcher};

use crate::common::pageview;

fn batcher(max_rows: usize, max_bytes: usize, max_age_ms: i64) -> Batcher {
    Batcher::new(BatchConfig {
        max_rows,
        max_bytes,
        max_age_ms,
    })
}

#[test]
fn max_rows_at_the_limit() {
    let mut b = batcher(3, usize::MAX, i64::MAX);
    assert!(b.push(&pageview(0), 0).is_none());
    assert!(b.push(&pageview(1), 0).is_none()); // one under
    let batch = b.push(&pageview(2), 0).expect("at max_rows");
    assert_eq!(batch.num_rows(), 3);
    assert_eq!(b.len(), 0);
    assert_eq!(
        batch
            .schema()
            .metadata()
            .get(VERSION_KEY)
            .map(String::as_str),
        Some(VERSION)
    );
    assert_eq!(batch.schema(), schema::schema());
    assert_eq!(
        batch_to_events(&batch).unwrap(),
        vec![pageview(0), pageview(1), pageview(2)]
    );
}

#[test]
fn max_bytes_at_and_past_the_limit() {
    let e = event_bytes(&pageview(0));
    assert_eq!(e, event_bytes(&pageview(1)));
    // At the limit: the third event makes exactly max_bytes.
    let mut b = batcher(usize::MAX, 3 * e, i64::MAX);
    assert!(b.push(&pageview(0), 0).is_none());
    assert!(b.push(&pageview(1), 0).is_none());
    assert_eq!(b.bytes(), 2 * e);
    assert_eq!(b.push(&pageview(2), 0).unwrap().num_rows(), 3);
    // One byte more allowed: the third is under, the fourth is past.
    let mut b = batcher(usize::MAX, 3 * e + 1, i64::MAX);
    for i in 0..3 {
        assert!(b.push(&pageview(i), 0).is_none());
    }
    assert_eq!(b.push(&pageview(3), 0).unwrap().num_rows(), 4);
}

#[test]
fn max_age_by_poll_and_by_push() {
    let mut b = batcher(100, usize::MAX, 1000);
    assert!(b.poll(5_000).is_none()); // empty
    assert!(b.push(&pageview(0), 10_000).is_none());
    assert!(b.push(&pageview(1), 10_500).is_none());
    assert!(b.poll(10_999).is_none()); // one ms under the age
    assert_eq!(b.poll(11_000).unwrap().num_rows(), 2); // at the age
    assert!(b.poll(50_000).is_none());
    // Age reached on a push: the batch includes the pushed event.
    assert!(b.push(&pageview(2), 20_000).is_none());
    assert_eq!(b.push(&pageview(3), 21_000).unwrap().num_rows(), 2);
}

#[test]
fn whichever_comes_first() {
    // Rows first.
    let mut b = batcher(2, 1 << 20, 1000);
    assert!(b.push(&pageview(0), 0).is_none());
    assert_eq!(b.push(&pageview(1), 1).unwrap().num_rows(), 2);
    // Bytes first.
    let mut b = batcher(100, event_bytes(&pageview(0)), 1000);
    assert_eq!(b.push(&pageview(0), 0).unwrap().num_rows(), 1);
    // Age first.
    let mut b = batcher(100, 1 << 20, 10);
    assert!(b.push(&pageview(0), 0).is_none());
    assert_eq!(b.poll(10).unwrap().num_rows(), 1);
}

#[test]
fn flush_returns_the_rest_in_order_and_batches_are_independent() {
    let mut b = batcher(4, usize::MAX, i64::MAX);
    let mut out = Vec::new();
    for i in 0..10 {
        out.extend(b.push(&pageview(i), i64::from(i)));
    }
    out.extend(b.flush());
    assert!(b.flush().is_none());
    let rows: Vec<usize> = out.iter().map(|b| b.num_rows()).collect();
    assert_eq!(rows, [4, 4, 2]);
    let events: Vec<_> = out
        .iter()
        .flat_map(|b| batch_to_events(b).unwrap())
        .collect();
    assert_eq!(events, (0..10).map(pageview).collect::<Vec<_>>());
    assert_eq!(
        events_to_batch(&events[..4]),
        out[0],
        "the batcher and events_to_batch agree"
    );
}

#[test]
fn config_deserializes_with_defaults_and_denies_unknown_fields() {
    let c: BatchConfig = serde_json::from_str(r#"{"max_rows": 5}"#).unwrap();
    assert_eq!(c.max_rows, 5);
    assert_eq!(c.max_age_ms, BatchConfig::default().max_age_ms);
    assert!(serde_json::from_str::<BatchConfig>(r#"{"rows": 5}"#).is_err());
}

mod props {
    use super::*;
    use crate::common::arb_event;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Push(Box<ingest_core::Event<'static>>, i64),
        Poll(i64),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (arb_event(), 0i64..400).prop_map(|(e, dt)| Op::Push(Box::new(e), dt)),
            1 => (0i64..400).prop_map(Op::Poll),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Every event comes out once, in order; a batch comes out exactly when the
        /// first of the three limits is reached, never later and never earlier.
        #[test]
        fn whichever_limit_first_and_nothing_lost(
            max_rows in 1usize..12,
            max_bytes in 200usize..3000,
            max_age_ms in 0i64..1000,
            ops in prop::collection::vec(arb_op(), 1..40),
        ) {
            let mut b = batcher(max_rows, max_bytes, max_age_ms);
            let mut now = 0i64;
            let mut pushed = Vec::new();
            let mut out = Vec::new();
            // What the batcher should hold: (rows, bytes, oldest push time).
            let (mut rows, mut bytes, mut oldest) = (0usize, 0usize, None::<i64>);
            for op in ops {
                match op {
                    Op::Push(ev, dt) => {
                        now += dt;
                        rows += 1;
                        bytes += event_bytes(&ev);
                        let t0 = *oldest.get_or_insert(now);
                        let due = rows >= max_rows || bytes >= max_bytes || now - t0 >= max_age_ms;
                        let got = b.push(&ev, now);
                        pushed.push(*ev);
                        prop_assert_eq!(got.is_some(), due);
                        if let Some(batch) = got {
                            prop_assert_eq!(batch.num_rows(), rows);
                            out.push(batch);
                            (rows, bytes, oldest) = (0, 0, None);
                        }
                    }
                    Op::Poll(dt) => {
                        now += dt;
                        let due = oldest.is_some_and(|t0| now - t0 >= max_age_ms);
                        let got = b.poll(now);
                        prop_assert_eq!(got.is_some(), due);
                        if let Some(batch) = got {
                            prop_assert_eq!(batch.num_rows(), rows);
                            out.push(batch);
                            (rows, bytes, oldest) = (0, 0, None);
                        }
                    }
                }
                prop_assert_eq!(b.len(), rows);
                prop_assert_eq!(b.bytes(), bytes);
            }
            out.extend(b.flush());
            let events: Vec<_> = out.iter().flat_map(|x| batch_to_events(x).unwrap()).collect();
            prop_assert_eq!(events, pushed);
        }
    }
}
