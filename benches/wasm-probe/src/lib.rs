//! Runs ingest-core's full pipeline over an NDJSON buffer, as the edge does per
//! request: bodies of `per_request` lines, each `Pipeline::process`ed (parse, limits,
//! normalization, user agent, hashes) and its events pushed into a `Batcher`. The host
//! writes the buffer into memory from `alloc`, calls `run`, and times it.

use ingest_core::{
    BatchConfig, Batcher, DailySalt, Format, Pipeline, PipelineConfig, RequestContext,
};

const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const NOW_MS: i64 = 1_795_392_000_000;

/// Memory for the host to write `len` bytes into (leaked: one buffer per run).
#[no_mangle]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    let mut v = vec![0u8; len];
    let p = v.as_mut_ptr();
    std::mem::forget(v);
    p
}

/// Processes the NDJSON at `ptr..ptr+len` in requests of `per_request` lines;
/// returns the number of rows batched (events accepted).
///
/// # Safety
/// `ptr..ptr+len` must be memory returned by [`alloc`] (or any valid buffer).
#[no_mangle]
pub unsafe extern "C" fn run(ptr: *const u8, len: usize, per_request: usize) -> u64 {
    let data = unsafe { std::slice::from_raw_parts(ptr, len) };
    process(data, per_request) as u64
}

/// The work itself, shared by the wasm export and the native binary.
pub fn process(data: &[u8], per_request: usize) -> usize {
    let salt = DailySalt::derive(b"probe", NOW_MS);
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let mut batcher = Batcher::new(BatchConfig {
        max_rows: 8192,
        max_bytes: 64 << 20,
        max_age_ms: i64::MAX,
    });
    let mut rows = 0;
    let mut buf = Vec::new();
    let mut start = 0;
    let mut lines = 0;
    let mut req = 0u64;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            lines += 1;
            if lines == per_request || i + 1 == data.len() {
                buf.clear();
                buf.extend_from_slice(&data[start..=i]);
                start = i + 1;
                lines = 0;
                req += 1;
                let mut id_seed = [0u8; 16];
                id_seed[..8].copy_from_slice(&req.to_le_bytes());
                let ctx = RequestContext {
                    received_at_ms: NOW_MS,
                    client_ip: "203.0.113.7",
                    user_agent: UA,
                    country: "DE",
                    region: "",
                    city: "",
                    id_seed,
                    salt: &salt,
                    sites: None,
                };
                if let Ok(out) = pipeline.process(Format::Own, &mut buf, &ctx) {
                    for ev in &out.accepted {
                        if let Some(b) = batcher.push(ev, NOW_MS) {
                            rows += b.num_rows();
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = batcher.flush() {
        rows += b.num_rows();
    }
    rows
}
