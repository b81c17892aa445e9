//! Any bytes as our JSON / array / NDJSON body: never a panic, the event count limit
//! holds, and every accepted event respects the string limits.
#![no_main]
use ingest_core::{parse_own, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_events_per_request: 16,
        max_url_len: 64,
        ..Limits::default()
    };
    let mut body = data.to_vec();
    if let Ok(parsed) = parse_own(&mut body, &limits) {
        assert!(parsed.events.len() + parsed.rejected.len() <= limits.max_events_per_request);
        for (_, ev) in &parsed.events {
            assert!(ev.url.len() <= limits.max_url_len);
            assert!(ev.props.len() <= limits.max_props);
        }
    }
});
