//! Arbitrary events → Arrow batch → IPC stream (LZ4) → batch → events: equal.
#![no_main]
use ingest_core::{batch_to_events, events_to_batch, read_ipc, write_ipc, Event};
use libfuzzer_sys::fuzz_target;
use pageview_fuzz::{event, Row};

fuzz_target!(|rows: Vec<Row>| {
    let events: Vec<Event<'static>> = rows.into_iter().take(64).map(event).collect();
    let batch = events_to_batch(&events);
    let bytes = write_ipc(std::slice::from_ref(&batch)).expect("encode");
    let back = read_ipc(&bytes, 1_000).expect("decode what we encoded");
    let got: Vec<Event<'static>> = back
        .iter()
        .flat_map(|b| batch_to_events(b).expect("v1"))
        .collect();
    assert_eq!(got, events);
});
