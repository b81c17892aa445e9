//! Any string as a pixel query: never a panic, at most one event.
#![no_main]
use ingest_core::{parse_pixel, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|query: &str| {
    if let Ok(parsed) = parse_pixel(query, &Limits::default()) {
        assert!(parsed.events.len() + parsed.rejected.len() <= 1);
    }
});
