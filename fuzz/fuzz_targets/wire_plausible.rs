//! Any bytes as a Plausible Events API body: never a panic, never more than one event.
#![no_main]
use ingest_core::{parse_plausible, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut body = data.to_vec();
    if let Ok(parsed) = parse_plausible(&mut body, &Limits::default()) {
        assert!(parsed.events.len() + parsed.rejected.len() <= 1);
    }
});
