//! JSON → Arrow: ingest-core (full pipeline, and its parser into the same 8 columns as
//! arrow-json) against arrow-json's decoder and a serde_json baseline, on the same
//! generated NDJSON (see `benches::json_arrow` for exactly what each path does).

use benches::json_arrow::{
    arrow_json, ingest_core_full, ingest_core_plain, serde_json_builders, FullState, PlainState,
    Workload,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn json_to_arrow(c: &mut Criterion) {
    let w = Workload::new(1, 100_000);
    for (unit, throughput) in [
        ("events", Throughput::Elements(w.events as u64)),
        ("bytes", Throughput::Bytes(w.bytes() as u64)),
    ] {
        let mut g = c.benchmark_group(format!("json_to_arrow_{unit}"));
        g.sample_size(10);
        g.throughput(throughput);
        g.bench_function("arrow_json", |b| b.iter(|| arrow_json(&w)));
        g.bench_function("serde_json", |b| b.iter(|| serde_json_builders(&w)));
        let mut plain = PlainState::default();
        g.bench_function("ingest_core_plain", |b| {
            b.iter(|| ingest_core_plain(&w, &mut plain))
        });
        let mut full = FullState::default();
        g.bench_function("ingest_core_full", |b| {
            b.iter(|| ingest_core_full(&w, &mut full))
        });
        g.finish();
    }
}

criterion_group!(benches, json_to_arrow);
criterion_main!(benches);
