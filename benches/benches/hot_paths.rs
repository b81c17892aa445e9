//! Hot paths: the GCRA rate limiter's decisions/s with 10³ and 10⁶ distinct keys (at
//! 10⁶ the default `max_keys` of 100,000 forces eviction; a second figure raises it),
//! and the batcher's appends/s into 8,192-row schema-v1 batches.

use benches::json_arrow::{request_context, Workload, RECEIVED_AT_MS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ingest_core::{
    BatchConfig, Batcher, DailySalt, Format, Pipeline, PipelineConfig, RateLimitConfig, RateLimiter,
};

/// Decisions per iteration.
const CHECKS: u64 = 100_000;

fn rate_limiter(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_limiter");
    g.throughput(Throughput::Elements(CHECKS));
    for (keys, max_keys) in [
        (1_000u64, 100_000usize),
        (1_000_000, 100_000),
        (1_000_000, 1_000_000),
    ] {
        let mut rl = RateLimiter::new(RateLimitConfig {
            rate_per_sec: 10.0,
            burst: 100,
            max_keys,
        });
        // Keys as the sink makes them (64-bit hashes), visited in a scrambled order.
        let key = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5;
        let mut i = 0u64;
        let mut now = RECEIVED_AT_MS;
        g.bench_function(
            BenchmarkId::new(format!("keys_{keys}"), format!("max_keys_{max_keys}")),
            |b| {
                b.iter(|| {
                    let mut allowed = 0u32;
                    for _ in 0..CHECKS {
                        i += 1;
                        now += i.is_multiple_of(64) as i64; // ~1 ms per 64 decisions
                        allowed += rl.check(key(i % keys), now).is_allowed() as u32;
                    }
                    allowed
                })
            },
        );
    }
    g.finish();
}

fn batcher(c: &mut Criterion) {
    // Real events from the full pipeline, pushed again and again.
    let w = Workload::new(2, 10_000);
    let salt = DailySalt::derive(b"bench", RECEIVED_AT_MS);
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let mut bodies: Vec<Vec<u8>> = w
        .requests
        .iter()
        .map(|(r, _, _)| w.ndjson[r.clone()].to_vec())
        .collect();
    let mut events = Vec::new();
    for (i, (body, (_, ua, ip))) in bodies.iter_mut().zip(&w.requests).enumerate() {
        let ctx = request_context(i, ua, ip, &salt);
        let out = pipeline.process(Format::Own, body, &ctx).unwrap();
        events.extend(out.accepted.into_iter().map(|e| e.into_owned()));
    }
    let mut g = c.benchmark_group("batcher");
    g.throughput(Throughput::Elements(events.len() as u64));
    let mut batcher = Batcher::new(BatchConfig {
        max_rows: 8192,
        max_bytes: 64 << 20,
        max_age_ms: 1000,
    });
    g.bench_function("push_8192_row_batches", |b| {
        b.iter(|| {
            let mut rows = 0;
            for ev in &events {
                if let Some(batch) = batcher.push(ev, RECEIVED_AT_MS) {
                    rows += batch.num_rows();
                }
            }
            rows
        })
    });
    g.finish();
}

criterion_group!(benches, rate_limiter, batcher);
criterion_main!(benches);
