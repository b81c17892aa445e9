//! Arbitrary events → Arrow batch → IPC stream (LZ4) → batch → events: equal.
#![no_main]
use std::borrow::Cow;

use ingest_core::{batch_to_events, events_to_batch, read_ipc, write_ipc, Event};
use libfuzzer_sys::fuzz_target;
use pageview_fuzz::{event, Row};

/// The event with its site id made canonical and not empty, as the pipeline stores
/// it: `batch_to_events` reads only batches `conform` accepts, which refuses others.
fn canonical_site(mut ev: Event<'static>) -> Event<'static> {
    ev.site_id = Cow::Owned(format!("s{}", ev.site_id.trim_ascii().to_ascii_lowercase()));
    ev
}

fuzz_target!(|rows: Vec<Row>| {
    let events: Vec<Event<'static>> = rows
        .into_iter()
        .take(64)
        .map(event)
        .map(canonical_site)
        .collect();
    let batch = events_to_batch(&events);
    let bytes = write_ipc(std::slice::from_ref(&batch)).expect("encode");
    let back = read_ipc(&bytes, 1_000).expect("decode what we encoded");
    let got: Vec<Event<'static>> = back
        .iter()
        .flat_map(|b| batch_to_events(b).expect("v1"))
        .collect();
    assert_eq!(got, events);
});
