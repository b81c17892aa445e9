//! Arbitrary schema-v1 rows → Arrow batch → the sink's ClickHouse Native encoder (the
//! 18.16 table layout, and the modern one with `LowCardinality` and `DateTime64`) → the
//! independent decoder in `src/native_decode.rs`: every column, type and value equals
//! what the rows hold, nothing trails the block; and the sink's LZ4 framing, undone by
//! the independent unframer (checksums checked), gives back the exact Native bytes —
//! also across several 1 MiB frames.
#![no_main]
use arbitrary::Arbitrary;
use ingest_core::{events_to_batch, Event};
use libfuzzer_sys::fuzz_target;
use pageview_fuzz::native_decode::{decode_block, unframe, Value};
use pageview_fuzz::{event, Row};
use sink_clickhouse::clickhouse::{
    compress_lz4_frames, encode_native, table_columns, ServerVersion, TableLayout, FRAME_CHUNK,
};

#[derive(Debug, Arbitrary)]
struct Input {
    rows: Vec<Row>,
    modern: bool,
    many_frames: bool,
}

fn s(v: &str) -> Value {
    Value::Str(v.as_bytes().to_vec())
}

fn opt(v: Option<u32>) -> Value {
    v.map_or(Value::Null, |x| Value::Int(x.into()))
}

/// What column `name` (of ClickHouse type `ty`) must hold for `e`.
fn expected(name: &str, ty: &str, e: &Event<'_>) -> Value {
    match name {
        "event_id" => Value::Uuid(e.event_id),
        "received_at" if ty.starts_with("DateTime64(3") => Value::Int(e.received_at_ms.into()),
        "received_at" => Value::Int(
            e.received_at_ms
                .div_euclid(1000)
                .clamp(0, u32::MAX as i64)
                .into(),
        ),
        "site_id" => s(&e.site_id),
        "name" => s(&e.name),
        "hostname" => s(&e.hostname),
        "pathname" => s(&e.pathname),
        "referrer_host" => s(&e.referrer_host),
        "referrer_source" => s(&e.referrer_source),
        "utm_source" => s(&e.utm_source),
        "utm_medium" => s(&e.utm_medium),
        "utm_campaign" => s(&e.utm_campaign),
        "utm_content" => s(&e.utm_content),
        "utm_term" => s(&e.utm_term),
        "country" => s(&e.country),
        "region" => s(&e.region),
        "city" => s(&e.city),
        "browser" => s(&e.browser),
        "browser_version" => s(&e.browser_version),
        "os" => s(&e.os),
        "os_version" => s(&e.os_version),
        "device" => s(&e.device),
        "screen_width" => Value::Int(e.screen_width.into()),
        "visitor_id" => Value::Int(e.visitor_id.into()),
        "ttfb_ms" => opt(e.timings.ttfb_ms),
        "fcp_ms" => opt(e.timings.fcp_ms),
        "lcp_ms" => opt(e.timings.lcp_ms),
        "inp_ms" => opt(e.timings.inp_ms),
        "load_ms" => opt(e.timings.load_ms),
        "cls" => e
            .timings
            .cls
            .map_or(Value::Null, |c| Value::F32(c.to_bits())),
        "scroll_depth" => e.scroll_depth.map_or(Value::Null, |d| Value::Int(d.into())),
        "engagement_ms" => opt(e.engagement_ms),
        "prop_keys" => Value::Array(e.props.iter().map(|(k, _)| s(k)).collect()),
        "prop_values" => Value::Array(e.props.iter().map(|(_, v)| s(v)).collect()),
        other => panic!("column {other} is not covered by this target: add it"),
    }
}

fuzz_target!(|input: Input| {
    let events: Vec<Event<'static>> = input.rows.into_iter().take(64).map(event).collect();
    let batch = events_to_batch(&events);
    let version = ServerVersion::parse(if input.modern { "24.8.4.13" } else { "18.16.1" })
        .expect("version text");
    let layout = TableLayout::from_describe(&table_columns(&version)).expect("schema-v1 layout");
    let mut raw = Vec::new();
    encode_native(&layout, &batch, &mut raw).expect("encoding a schema-v1 batch");

    let (rows, cols) = decode_block(&raw).unwrap_or_else(|e| panic!("undecodable block: {e}"));
    assert_eq!(rows, events.len());
    assert_eq!(cols.len(), layout.columns.len());
    for (col, plan) in cols.iter().zip(&layout.columns) {
        assert_eq!(col.name, plan.name);
        assert_eq!(col.type_name, plan.type_name);
        for (row, (got, e)) in col.values.iter().zip(&events).enumerate() {
            let want = expected(&col.name, &col.type_name, e);
            assert_eq!(
                got, &want,
                "column {} ({}) row {row}",
                col.name, col.type_name
            );
        }
    }

    // The framing: one frame for a small block; several when the body is past 1 MiB.
    let body = if input.many_frames && !raw.is_empty() {
        raw.repeat((2 * FRAME_CHUNK + 1) / raw.len() + 1)
    } else {
        raw
    };
    let mut framed = Vec::new();
    compress_lz4_frames(&body, &mut framed);
    let back = unframe(&framed).unwrap_or_else(|e| panic!("unframing: {e}"));
    assert!(back == body, "framing did not give back the Native bytes");
});
