use super::*;

#[test]
fn varuint_and_uuid_text() {
    let mut out = Vec::new();
    put_varuint(&mut out, 300);
    assert_eq!(out, [0xac, 0x02]);
    let b: Vec<u8> = (0..16).collect();
    assert_eq!(uuid_text(&b), "00010203-0405-0607-0809-0a0b0c0d0e0f");
}

#[test]
fn strings_of_a_sliced_array_and_long_lengths() {
    let long = "x".repeat(300);
    let a = arrow_array::StringArray::from(vec!["skip", "ab", long.as_str(), ""]);
    let mut out = Vec::new();
    put_strings(&mut out, &a.slice(1, 3));
    let mut want = vec![2, b'a', b'b', 0xac, 0x02];
    want.extend_from_slice(long.as_bytes());
    want.push(0);
    assert_eq!(out, want);
}

/// The ordered encoder writes the block of the rows taken in that order: strings
/// gathered directly (short values near the end of a part's data, long ones past a
/// one-byte length, empty ones) and the other columns through arrow-select.
#[test]
fn ordered_block_is_the_block_of_the_rows_in_that_order() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, StringArray, UInt16Array};

    let layout = TableLayout::from_describe(&[
        ("pathname".into(), "String".into()),
        ("screen_width".into(), "UInt16".into()),
        ("ttfb_ms".into(), "Nullable(UInt32)".into()),
        ("city".into(), "String".into()),
        ("event_id".into(), "UUID".into()),
        ("received_at".into(), "DateTime('UTC')".into()),
        ("visitor_id".into(), "UInt64".into()),
        ("cls".into(), "Nullable(Float32)".into()),
        ("scroll_depth".into(), "Nullable(UInt8)".into()),
        ("prop_keys".into(), "Array(String)".into()),
    ])
    .unwrap();
    let long = "/l".repeat(100);
    let part = |paths: Vec<&str>, from: u16| {
        let n = paths.len();
        let p: ArrayRef = Arc::new(StringArray::from(paths));
        let w: ArrayRef = Arc::new(UInt16Array::from_iter_values(from..from + n as u16));
        let t: ArrayRef = Arc::new(arrow_array::UInt32Array::from_iter(
            (0..n as u32).map(|i| (i % 2 == 0).then_some(i)),
        ));
        let c: ArrayRef = Arc::new(StringArray::from(vec![""; n]));
        let id: ArrayRef = Arc::new(
            arrow_array::FixedSizeBinaryArray::try_from_iter(
                (0..n).map(|i| [from as u8 + i as u8; 16]),
            )
            .unwrap_or_else(|_| arrow_array::FixedSizeBinaryArray::new_null(16, 0)),
        );
        let at: ArrayRef = Arc::new(
            arrow_array::TimestampMillisecondArray::from_iter_values(
                (0..n as i64).map(|i| 1_700_000_000_123 + i * 1_001 + i64::from(from)),
            )
            .with_timezone("UTC"),
        );
        let v: ArrayRef = Arc::new(arrow_array::UInt64Array::from_iter_values(
            (0..n as u64).map(|i| u64::MAX - i - u64::from(from)),
        ));
        let cls: ArrayRef = Arc::new(arrow_array::Float32Array::from_iter(
            (0..n).map(|i| (i % 3 != 1).then_some(i as f32 / 4.0)),
        ));
        let depth: ArrayRef = Arc::new(arrow_array::UInt8Array::from_iter(
            (0..n).map(|i| (i % 2 == 1).then_some(i as u8 * 10)),
        ));
        let mut keys =
            arrow_array::builder::ListBuilder::new(arrow_array::builder::StringBuilder::new())
                .with_field(Arc::new(arrow_schema::Field::new(
                    "item",
                    DataType::Utf8,
                    false,
                )));
        for i in 0..n {
            for k in 0..i % 3 {
                keys.values().append_value(format!("k{k}"));
            }
            keys.append(true);
        }
        let keys: ArrayRef = Arc::new(keys.finish());
        RecordBatch::try_from_iter([
            ("pathname", p),
            ("screen_width", w),
            ("ttfb_ms", t),
            ("city", c),
            ("event_id", id),
            ("received_at", at),
            ("visitor_id", v),
            ("cls", cls),
            ("scroll_depth", depth),
            ("prop_keys", keys),
        ])
        .unwrap()
    };
    let parts = [
        part(vec!["/a", "", long.as_str(), "/exactly-16-byte", "/z"], 0),
        part(vec![], 10),
        part(vec!["/seventeen-bytes!", "/b", "é"], 20).slice(1, 2),
    ];
    let order = [(2, 1), (0, 4), (0, 2), (2, 0), (0, 0), (0, 3), (0, 1)];
    let mut got = Vec::new();
    encode_native_ordered(&layout, &parts, &order, &mut got).unwrap();

    let cols: Vec<ArrayRef> = (0..10)
        .map(|c| {
            let arrs: Vec<&dyn Array> = parts.iter().map(|p| p.column(c).as_ref()).collect();
            arrow_select::interleave::interleave(&arrs, &order).unwrap()
        })
        .collect();
    let taken = RecordBatch::try_new(parts[0].schema(), cols).unwrap();
    let mut want = Vec::new();
    encode_native(&layout, &taken, &mut want).unwrap();
    assert_eq!(got, want);
    let paths = taken.column(0).as_string::<i32>();
    assert_eq!(paths.value(0), "é");
    assert_eq!(paths.value(2), long);

    // Streamed (the loader's inserts): one piece a column, the block's header with the
    // first, the same bytes in all; in arrival order likewise.
    for (order, want) in [
        (Some(&order[..]), want),
        (None, {
            let mut w = Vec::new();
            encode_native_parts(&layout, &parts, &mut w).unwrap();
            w
        }),
    ] {
        let (mut pieces, mut out) = (Vec::new(), Vec::new());
        let done = encode_block_streamed(&layout, &parts, order, &mut out, &mut |o| {
            pieces.push(std::mem::take(o));
            true
        });
        assert!(done.unwrap());
        assert!(out.is_empty());
        assert_eq!(pieces.len(), 10, "one piece a column");
        assert_eq!(&pieces[0][..2], &[10, 7], "header: columns, rows");
        assert_eq!(pieces.concat(), want);
        // A flush that answers false (the request is gone) ends the encoding there.
        let mut n = 0;
        let done = encode_block_streamed(&layout, &parts, order, &mut Vec::new(), &mut |o| {
            o.clear();
            n += 1;
            n < 3
        });
        assert_eq!((done.unwrap(), n), (false, 3));
    }
}

#[test]
fn low_cardinality_dictionary() {
    let a = arrow_array::StringArray::from(vec!["b", "", "b", "c"]);
    let mut out = Vec::new();
    low_cardinality(&mut out, &[&a]);
    let u64_at = |i: usize| u64::from_le_bytes(out[i..i + 8].try_into().unwrap());
    assert_eq!(u64_at(0), 1);
    assert_eq!(u64_at(8), 0x600);
    assert_eq!(u64_at(16), 3); // "", "b", "c"
    assert_eq!(&out[24..29], &[0, 1, b'b', 1, b'c']);
    assert_eq!(u64_at(29), 4);
    assert_eq!(&out[37..], &[1, 0, 1, 2]);
}
