//! Any bytes as an Arrow IPC stream posted to the sink, and as the messages after schema
//! v1's schema message (the short path the edge's streams and the spool's records take,
//! `read_ipc_v1_body`): never a panic, the row cap holds, and what is read conforms to
//! schema v1 or is refused. Seeds: streams `write_ipc` makes, and their bodies.
#![no_main]
use ingest_core::{conform, read_ipc, read_ipc_v1_body};
use libfuzzer_sys::fuzz_target;

/// arrow-ipc 60 panics on some malformed streams instead of refusing them (an offsets
/// buffer whose length is not a multiple of its width, found here; a buffer outside the
/// message body, also found here, is now refused before arrow sees it). `read_ipc`
/// catches any panic of arrow's reader and makes it the body's error — the sink answers
/// 400 — and that is the behaviour this target checks. libfuzzer's panic hook would
/// abort before that backstop runs, so a silent hook replaces it: a panic that escapes
/// ingest-core still reaches libfuzzer's own `catch_unwind`, which aborts (a crash).
static QUIET_PANICS: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    for read in [
        read_ipc(data, 10_000),
        read_ipc_v1_body(data, 10_000, 16 << 20),
    ] {
        if let Ok(batches) = read {
            assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() <= 10_000);
            for b in &batches {
                let _ = conform(b);
            }
        }
    }
});
