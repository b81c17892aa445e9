//! Encoders of the same 100,000 schema-v1 rows (the full pipeline's output on
//! generated page views): Arrow IPC with LZ4 (edge → sink), Parquet (embedded mode),
//! ClickHouse Native for the 18.16 table plus ClickHouse's LZ4 block framing (the
//! loader). Beside them, the sink's spool records (encode as its writer does, decode as
//! its loader does) of the same rows in 1,000-row records.
//!
//! The official `clickhouse` crate's RowBinary serializer is private: its `Insert` only
//! writes to a server. So group `insert_body` posts the same rows to the crate's own
//! test server (`clickhouse::test::Mock`, which reads the body and answers 200), once
//! through the crate's `Insert` (RowBinary + LZ4, validation off) and once as our
//! Native + LZ4 body over a plain HTTP POST: serialization, compression and one
//! loopback request on both sides, no ClickHouse. The real-server figures (the
//! server's parse and insert included) are `compare`'s.
//!
//! Group `decode_edge_batches`: the same rows as the edge posts them (one Arrow IPC +
//! LZ4 stream per 100 rows), decoded as the sink's `/v1/batches` does
//! (`ingest_core::read_ipc`, limits and checks included) and by arrow-ipc's own
//! `StreamReader`, the reader a Rust user has.

use benches::json_arrow::{pipeline_batches, Workload};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sink_clickhouse::clickhouse::{
    compress_lz4_frames, encode_native, encode_native_ordered, encode_native_parts, table_columns,
    ServerVersion, SortKey, TableLayout,
};
use sink_clickhouse::spool::ipc::{decode_compact, encode_payload};

/// The table `sink-clickhouse migrate` creates on 18.16 (see its migrate.rs).
fn layout_18_16() -> TableLayout {
    let v = ServerVersion::parse("18.16.1").expect("a version");
    TableLayout::from_describe(&table_columns(&v)).expect("the 18.16 layout")
}

/// The sorting key `sink-clickhouse migrate` gives the table.
const SORTING_KEY: &str = "site_id, toDate(received_at), name, visitor_id";

fn encoders(c: &mut Criterion) {
    let w = Workload::new(1, 100_000);
    let batches = pipeline_batches(&w, 100_000);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let layout = layout_18_16();
    let mut g = c.benchmark_group("encode");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rows as u64));
    g.bench_function("arrow_ipc_lz4", |b| {
        b.iter(|| ingest_core::write_ipc(&batches).unwrap().len())
    });
    g.bench_function("parquet", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            ingest_core::write_parquet(&mut out, &batches).unwrap();
            out.len()
        })
    });
    let mut raw = Vec::new();
    let mut framed = Vec::new();
    g.bench_function("clickhouse_native", |b| {
        b.iter(|| {
            raw.clear();
            for batch in &batches {
                encode_native(&layout, batch, &mut raw).unwrap();
            }
            raw.len()
        })
    });
    // The loader's case: a chunk of ~1,000-row spool records, in arrival order and in
    // the table's key order (the sort and the gather both counted).
    let records: Vec<_> = batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows())
                .step_by(1000)
                .map(|at| b.slice(at, 1000.min(b.num_rows() - at)))
                .collect::<Vec<_>>()
        })
        .collect();
    g.bench_function("clickhouse_native_records", |b| {
        b.iter(|| {
            raw.clear();
            encode_native_parts(&layout, &records, &mut raw).unwrap();
            raw.len()
        })
    });
    let mut sorted = layout.clone();
    sorted.sort_key = Some(SortKey::parse(SORTING_KEY, &layout).expect("the schema-v1 key"));
    let key = sorted.sort_key.clone().unwrap();
    g.bench_function("clickhouse_native_records_key_order", |b| {
        b.iter(|| {
            raw.clear();
            let order = key
                .order(&records)
                .expect("generated rows are not in key order");
            encode_native_ordered(&sorted, &records, &order, &mut raw).unwrap();
            raw.len()
        })
    });
    // The spool's round trip of the same chunk: each 1,000-row record encoded as the
    // spool writer does and decoded as the loader does — LZ4-compressed (what it writes
    // once it holds a backlog) and as it is (`_plain`: while the loader keeps up).
    let owned = pipeline_batches(&w, 1000);
    for (name, compress) in [("", true), ("_plain", false)] {
        g.bench_function(format!("spool_records_encode{name}"), |b| {
            b.iter(|| {
                owned
                    .iter()
                    .map(|r| {
                        encode_payload(std::slice::from_ref(r), compress)
                            .unwrap()
                            .as_bytes()
                            .len()
                    })
                    .sum::<usize>()
            })
        });
        let payloads: Vec<Vec<u8>> = owned
            .iter()
            .map(|r| {
                encode_payload(std::slice::from_ref(r), compress)
                    .unwrap()
                    .into_vec()
            })
            .collect();
        g.bench_function(format!("spool_records_decode{name}"), |b| {
            b.iter(|| {
                payloads
                    .iter()
                    .map(|p| decode_compact(p).unwrap()[0].num_rows())
                    .sum::<usize>()
            })
        });
    }
    g.bench_function("clickhouse_native_lz4", |b| {
        b.iter(|| native_lz4(&layout, &batches, &mut raw, &mut framed).len())
    });
    g.finish();
}

/// `batches` as Native blocks, LZ4-framed as the loader sends them (into `framed`,
/// through `raw`; both reused).
fn native_lz4<'f>(
    layout: &TableLayout,
    batches: &[arrow_array::RecordBatch],
    raw: &mut Vec<u8>,
    framed: &'f mut Vec<u8>,
) -> &'f [u8] {
    raw.clear();
    framed.clear();
    for batch in batches {
        encode_native(layout, batch, raw).unwrap();
    }
    compress_lz4_frames(raw, framed);
    framed
}

/// The same 100,000 rows posted to the crate's mock server, by the crate and by us.
fn insert_body(c: &mut Criterion) {
    use clickhouse::test::{handlers, Mock};
    let w = Workload::new(1, 100_000);
    let batches = pipeline_batches(&w, 100_000);
    let rows: Vec<benches::e2e::ChRow<'_>> =
        batches.iter().flat_map(benches::e2e::batch_rows).collect();
    let layout = layout_18_16();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mock = rt.block_on(async { Mock::new() });
    let crate_client = clickhouse::Client::default()
        .with_mock(&mock)
        .with_validation(false)
        .with_compression(clickhouse::Compression::Lz4);
    // The mock's real address: its URL names a host only the crate resolves.
    let port = mock.url().rsplit(':').next().expect("a port").to_owned();
    let url = format!(
        "http://127.0.0.1:{port}/?decompress=1&query={}",
        "INSERT%20INTO%20events%20FORMAT%20Native"
    );
    let http = reqwest::Client::new();
    let mut g = c.benchmark_group("insert_body");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_function("clickhouse_crate_rowbinary_lz4", |b| {
        b.iter(|| {
            rt.block_on(async {
                let _body = mock.add(handlers::record_ddl());
                let mut insert = crate_client
                    .insert::<benches::e2e::ChRow<'static>>("events")
                    .await
                    .expect("an insert");
                for r in &rows {
                    insert.write(r).await.expect("a row");
                }
                insert.end().await.expect("the mock's 200");
            })
        })
    });
    let (mut raw, mut framed) = (Vec::new(), Vec::new());
    g.bench_function("native_lz4", |b| {
        b.iter(|| {
            let body =
                bytes::Bytes::copy_from_slice(native_lz4(&layout, &batches, &mut raw, &mut framed));
            rt.block_on(async {
                let _body = mock.add(handlers::record_ddl());
                let r = http.post(&url).body(body).send().await.expect("a response");
                assert!(r.status().is_success(), "{}", r.status());
            })
        })
    });
    g.finish();
}

fn decode_edge_batches(c: &mut Criterion) {
    let w = Workload::new(1, 100_000);
    let streams: Vec<Vec<u8>> = pipeline_batches(&w, benches::sink_run::EDGE_BATCH_ROWS)
        .iter()
        .map(|b| ingest_core::write_ipc(std::slice::from_ref(b)).unwrap())
        .collect();
    let mut g = c.benchmark_group("decode_edge_batches");
    g.sample_size(10);
    g.throughput(Throughput::Elements(w.events as u64));
    let rows = |batches: Vec<arrow_array::RecordBatch>| -> usize {
        batches.iter().map(|b| b.num_rows()).sum()
    };
    g.bench_function("ingest_core_read_ipc", |b| {
        b.iter(|| {
            streams
                .iter()
                .map(|s| rows(ingest_core::read_ipc(s, 1_000).unwrap()))
                .sum::<usize>()
        })
    });
    g.bench_function("arrow_ipc_stream_reader", |b| {
        b.iter(|| {
            streams
                .iter()
                .map(|s| {
                    let r = arrow_ipc::reader::StreamReader::try_new(&s[..], None).unwrap();
                    rows(r.collect::<Result<_, _>>().unwrap())
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, encoders, insert_body, decode_edge_batches);
criterion_main!(benches);
