//! Any bytes as an Arrow IPC stream posted to the sink: never a panic, the row cap holds,
//! and what is read conforms to schema v1 or is refused.
#![no_main]
use ingest_core::{conform, read_ipc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batches) = read_ipc(data, 10_000) {
        assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() <= 10_000);
        for b in &batches {
            let _ = conform(b);
        }
    }
});
