use std::sync::Arc;

use arrow_array::{ArrayRef, StringArray, TimestampMillisecondArray, UInt64Array};

use super::*;
use crate::clickhouse::{table_columns, ServerVersion};

const KEY: &str = "site_id, toDate(received_at), name, visitor_id";

fn layout(version: &str) -> TableLayout {
    TableLayout::from_describe(&table_columns(&ServerVersion::parse(version).unwrap())).unwrap()
}

/// One part of the key columns from (site, ms, name, visitor) rows.
fn part(rows: &[(&str, i64, &str, u64)]) -> RecordBatch {
    let site: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)));
    let ts: ArrayRef = Arc::new(
        TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1)).with_timezone("UTC"),
    );
    let name: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2)));
    let visitor: ArrayRef = Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.3)));
    RecordBatch::try_from_iter([
        ("site_id", site),
        ("received_at", ts),
        ("name", name),
        ("visitor_id", visitor),
    ])
    .unwrap()
}

/// A row as the tests see it: site, time in ms, name, visitor.
type Row = (String, i64, String, u64);

/// Random rows with few sites and names (as in a real chunk), times over three days,
/// visitors over the whole u64 range and some repeated (ties).
fn random_parts(seed: u64, parts: usize) -> (Vec<RecordBatch>, Vec<Row>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let sites = ["b.com", "a.com", "a.co", "", "a.com.", "z", "é.fr"];
    let names = ["pageview", "signup", "Signup", "page"];
    let mut all = Vec::new();
    let mut out = Vec::new();
    for _ in 0..parts {
        let rows: Vec<(&str, i64, &str, u64)> = (0..rng.usize(0..300))
            .map(|_| {
                (
                    sites[rng.usize(..sites.len())],
                    1_764_547_200_000 + rng.i64(0..3 * 86_400_000),
                    names[rng.usize(..names.len())],
                    if rng.bool() {
                        rng.u64(..4)
                    } else {
                        rng.u64(..)
                    },
                )
            })
            .collect();
        all.extend(
            rows.iter()
                .map(|r| (r.0.to_owned(), r.1, r.2.to_owned(), r.3)),
        );
        out.push(part(&rows));
    }
    (out, all)
}

fn global(parts: &[RecordBatch], order: &[(usize, usize)]) -> Vec<usize> {
    let starts: Vec<usize> = parts
        .iter()
        .scan(0, |at, p| {
            let s = *at;
            *at += p.num_rows();
            Some(s)
        })
        .collect();
    order.iter().map(|&(p, r)| starts[p] + r).collect()
}

#[test]
fn the_schema_v1_key_parses_on_old_and_new_servers() {
    for v in ["18.16.1", "24.8.4"] {
        let key = SortKey::parse(KEY, &layout(v)).unwrap();
        assert_eq!(
            key.elems,
            [
                Elem::Str("site_id".into()),
                Elem::Day("received_at".into()),
                Elem::Str("name".into()),
                Elem::UInt("visitor_id".into()),
            ],
            "{v}"
        );
    }
    let key = SortKey::parse("`site_id`, received_at", &layout("24.8.4")).unwrap();
    assert_eq!(key.elems[1], Elem::Ticks("received_at".into(), 3));
    let key = SortKey::parse("received_at, screen_width", &layout("18.16.1")).unwrap();
    assert_eq!(
        key.elems,
        [
            Elem::Seconds("received_at".into()),
            Elem::UInt("screen_width".into())
        ]
    );
}

#[test]
fn keys_it_cannot_evaluate_exactly_are_refused() {
    let l = layout("18.16.1");
    for (key, why) in [
        ("", "no sorting key"),
        ("site_id, cityHash64(visitor_id)", "not a column"),
        ("toDate(site_id)", "toDate of a String"),
        ("cls", "Nullable(Float32)"),
        ("event_id", "UUID"),
        ("nope", "not a column the sink inserts"),
        ("`a`b`", "not a column"),
        ("site_id, toStartOfHour(received_at)", "not a column"),
    ] {
        let e = SortKey::parse(key, &l).unwrap_err();
        assert!(e.contains(why), "{key:?}: {e}");
    }
    // toDate of a time column without an explicit UTC zone depends on the server's.
    let mut l = layout("18.16.1");
    l.columns
        .iter_mut()
        .find(|c| c.name == "received_at")
        .unwrap()
        .type_name = "DateTime".into();
    assert!(SortKey::parse(KEY, &l).unwrap_err().contains("UTC"));
    assert!(SortKey::parse("received_at", &l).is_ok());
}

/// The order is the naive sort of the rows by (site bytes, UTC day, name bytes,
/// visitor), ties in arrival order, across parts of every size including empty ones.
#[test]
fn order_equals_the_naive_sort_of_the_rows() {
    let key = SortKey::parse(KEY, &layout("18.16.1")).unwrap();
    for seed in 0..40 {
        let (parts, rows) = random_parts(seed, 1 + seed as usize % 7);
        let mut want: Vec<usize> = (0..rows.len()).collect();
        want.sort_by(|&a, &b| {
            let k = |r: &Row| {
                (
                    r.0.as_bytes().to_vec(),
                    r.1.div_euclid(86_400_000),
                    r.2.as_bytes().to_vec(),
                    r.3,
                )
            };
            k(&rows[a]).cmp(&k(&rows[b])).then(a.cmp(&b))
        });
        match key.order(&parts) {
            Some(order) => assert_eq!(global(&parts, &order), want, "seed {seed}"),
            None => assert!(
                want.windows(2).all(|w| w[0] < w[1]),
                "seed {seed}: said sorted"
            ),
        }
    }
}

/// Keys too wide to pack in 128 bits, alone or with the row number beside them, are
/// sorted by comparison, to the same order.
#[test]
fn wide_keys_are_compared_column_by_column() {
    let packed = SortKey {
        elems: vec![Elem::UInt("visitor_id".into()), Elem::Str("site_id".into())],
    };
    // 128 bits of key (visitors span the whole u64 range): no room for the row.
    let no_room = SortKey {
        elems: vec![
            Elem::UInt("visitor_id".into()),
            Elem::UInt("visitor_id".into()),
        ],
    };
    let wide = SortKey {
        elems: vec![
            Elem::UInt("visitor_id".into()),
            Elem::UInt("visitor_id".into()),
            Elem::Str("site_id".into()),
        ],
    };
    for seed in 0..10 {
        let (parts, rows) = random_parts(100 + seed, 4);
        let mut want: Vec<usize> = (0..rows.len()).collect();
        want.sort_by(|&a, &b| {
            (rows[a].3, rows[a].0.as_bytes())
                .cmp(&(rows[b].3, rows[b].0.as_bytes()))
                .then(a.cmp(&b))
        });
        let p = global(&parts, &packed.order(&parts).unwrap());
        let w = global(&parts, &wide.order(&parts).unwrap());
        assert_eq!(p, want, "seed {seed}");
        assert_eq!(w, want, "seed {seed}");
        let mut by_visitor: Vec<usize> = (0..rows.len()).collect();
        by_visitor.sort_by_key(|&r| (rows[r].3, r));
        let two = global(&parts, &no_room.order(&parts).unwrap());
        assert_eq!(two, by_visitor, "seed {seed}");
    }
}

#[test]
fn rows_in_order_already_need_no_permutation() {
    let key = SortKey::parse(KEY, &layout("18.16.1")).unwrap();
    let day = 86_400_000;
    let sorted = part(&[
        ("a.com", 5, "pageview", 9),
        ("a.com", day - 1, "signup", 1),
        ("a.com", day, "pageview", 0),
        ("b.com", 0, "pageview", 3),
        ("b.com", 0, "pageview", 3),
    ]);
    assert_eq!(key.order(std::slice::from_ref(&sorted)), None);
    assert_eq!(key.order(&[sorted.slice(0, 2), sorted.slice(2, 3)]), None);
    // One row out of place: the later day of a.com after b.com.
    let unsorted = part(&[("b.com", 0, "pageview", 3), ("a.com", day, "pageview", 0)]);
    assert_eq!(key.order(&[sorted, unsorted]).map(|o| o.len()), Some(7));
    assert_eq!(key.order(&[]), None);
}

/// Times before 1970 sort before those after, as the server's signed DateTime64 and
/// days do; DateTime clamps them to 0 as the encoder does.
#[test]
fn times_order_as_the_encoded_values() {
    let rows = [
        ("a", 1_000, "p", 0),
        ("a", -86_400_001, "p", 0),
        ("a", -1, "p", 0),
    ];
    let parts = [part(&rows)];
    let by = |elem: Elem| SortKey { elems: vec![elem] }.order(&parts);
    assert_eq!(
        by(Elem::Ticks("received_at".into(), 3)),
        Some(vec![(0, 1), (0, 2), (0, 0)])
    );
    assert_eq!(
        by(Elem::Day("received_at".into())),
        Some(vec![(0, 1), (0, 2), (0, 0)])
    );
    assert_eq!(
        by(Elem::Seconds("received_at".into())),
        Some(vec![(0, 1), (0, 2), (0, 0)])
    );
    // A missing column or another Arrow type: no order (the encoder reports it).
    assert_eq!(by(Elem::UInt("site_id".into())), None);
    assert_eq!(by(Elem::Str("nope".into())), None);
}

/// At the edge of the packed sort: 127 bits of key leave room for the row number of
/// two rows (one bit) but not of four (two bits, sorted by comparison); both ways give
/// the order of the keys, ties in row order.
#[test]
fn the_row_number_is_packed_only_where_it_fits() {
    let naive = |keys: &[Vec<u64>]| {
        let mut rows: Vec<u32> = (0..keys[0].len() as u32).collect();
        rows.sort_by_key(|&r| (keys[0][r as usize], keys[1][r as usize], r));
        rows
    };
    let cmp = |keys: &[Vec<u64>]| {
        let keys = keys.to_vec();
        move |a: usize, b: usize| (keys[0][a], keys[1][a]).cmp(&(keys[0][b], keys[1][b]))
    };
    // 63 bits in the first column, 64 in the second.
    let two = vec![vec![(1 << 63) - 1, 0], vec![0, u64::MAX]];
    assert_eq!(sort_rows(&two, 2, cmp(&two)), naive(&two));
    assert_eq!(sort_rows(&two, 2, cmp(&two)), [1, 0]);
    let four = vec![
        vec![(1 << 63) - 1, 0, (1 << 63) - 1, 0],
        vec![0, u64::MAX, 0, u64::MAX],
    ];
    assert_eq!(sort_rows(&four, 4, cmp(&four)), naive(&four));
    assert_eq!(sort_rows(&four, 4, cmp(&four)), [1, 3, 0, 2]);
}
