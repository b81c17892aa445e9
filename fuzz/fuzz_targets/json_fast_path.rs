//! Any bytes as an own-format and as a Plausible body, under default and tight limits:
//! the fast path for flat event objects (ingest-core `wire::flat`) and the simd-json
//! path must give equal answers — the same events, the same rejections, the same
//! request-level error — and so must `parse_slice` (no copy; the fast path finds the
//! NDJSON lines' ends itself).
#![no_main]
use ingest_core::{Format, Limits, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tight = Limits {
        max_events_per_request: 4,
        max_url_len: 24,
        max_referrer_len: 24,
        max_site_len: 8,
        max_name_len: 8,
        max_prop_key_len: 4,
        max_prop_value_len: 8,
        max_props: 2,
        max_depth: 3,
        ..Limits::default()
    };
    for limits in [Limits::default(), tight] {
        for format in [Format::Own, Format::Plausible] {
            let mut a = data.to_vec();
            let mut b = data.to_vec();
            let fast = Parser::new().parse(format, &mut a, &limits);
            let slow = Parser::simd_json_only().parse(format, &mut b, &limits);
            assert_eq!(fast, slow, "{format:?} {limits:?}");
            let sliced = Parser::new().parse_slice(format, data, &limits);
            assert_eq!(fast, sliced, "parse_slice: {format:?} {limits:?}");
        }
    }
});
