//! Round trips: events → batch → Arrow IPC (LZ4) → batch, and → Parquet → batch, equal.

use bytes::Bytes;
use ingest_core::schema;
use ingest_core::{
    batch_to_events, conform, events_to_batch, read_ipc, write_ipc, write_parquet, Event,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use proptest::prelude::*;

use crate::common::{arb_event, pageview};

/// Reads a Parquet file with parquet's Arrow reader. The file's Arrow schema (with
/// the version metadata) must be schema v1; the reader's batches carry the fields
/// without the metadata, so callers compare them after `conform`.
fn read_parquet(bytes: Vec<u8>) -> Vec<arrow_array::RecordBatch> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
    assert_eq!(reader.schema(), &schema::schema());
    reader.build().unwrap().collect::<Result<_, _>>().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn events_batch_ipc_batch_events(events in prop::collection::vec(arb_event(), 0..40)) {
        let batch = events_to_batch(&events);
        let bytes = write_ipc(std::slice::from_ref(&batch)).unwrap();
        let back = read_ipc(&bytes, events.len()).unwrap();
        prop_assert_eq!(back.len(), 1);
        prop_assert_eq!(&back[0], &batch);
        prop_assert_eq!(back[0].schema(), schema::schema());
        prop_assert_eq!(batch_to_events(&back[0]).unwrap(), events);
    }

    #[test]
    fn events_batch_parquet_batch_events(events in prop::collection::vec(arb_event(), 1..40)) {
        let batch = events_to_batch(&events);
        let mut file = Vec::new();
        write_parquet(&mut file, std::slice::from_ref(&batch)).unwrap();
        let back = read_parquet(file);
        let rows: usize = back.iter().map(|b| b.num_rows()).sum();
        prop_assert_eq!(rows, events.len());
        prop_assert_eq!(conform(&back[0]).unwrap(), batch);
        prop_assert_eq!(batch_to_events(&back[0]).unwrap(), events);
    }
}

#[test]
fn several_batches_in_one_stream_and_one_file() {
    let a = events_to_batch(&(0..100).map(pageview).collect::<Vec<_>>());
    let b = events_to_batch(&(100..150).map(pageview).collect::<Vec<_>>());
    let bytes = write_ipc(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(read_ipc(&bytes, 150).unwrap(), vec![a.clone(), b.clone()]);
    let mut file = Vec::new();
    write_parquet(&mut file, &[a.clone(), b.clone()]).unwrap();
    let back = read_parquet(file);
    let events: Vec<Event<'static>> = back
        .iter()
        .flat_map(|x| batch_to_events(x).unwrap())
        .collect();
    assert_eq!(events, (0..150).map(pageview).collect::<Vec<_>>());
    // No batches: a valid stream of schema v1 with nothing in it.
    assert!(read_ipc(&write_ipc(&[]).unwrap(), 0).unwrap().is_empty());
}

#[test]
fn max_rows_at_and_past_the_limit() {
    let a = events_to_batch(&(0..10).map(pageview).collect::<Vec<_>>());
    let bytes = write_ipc(&[a.clone(), a]).unwrap();
    assert_eq!(read_ipc(&bytes, 20).unwrap().len(), 2);
    let e = read_ipc(&bytes, 19).unwrap_err();
    assert_eq!(e.field(), "body");
    assert_eq!(e.code(), "encoding");
}

#[test]
fn ipc_is_lz4_compressed() {
    let events: Vec<_> = (0..2000).map(pageview).collect();
    let batch = events_to_batch(&events);
    let bytes = write_ipc(std::slice::from_ref(&batch)).unwrap();
    let raw = batch.get_array_memory_size();
    assert!(
        bytes.len() * 3 < raw,
        "{} IPC bytes for {raw} bytes of Arrow buffers",
        bytes.len()
    );
    // The LZ4 frame magic number appears in the body.
    assert!(bytes.windows(4).any(|w| w == [0x04, 0x22, 0x4d, 0x18]));
}

#[test]
fn truncated_stream_is_an_error_not_a_panic() {
    let bytes = write_ipc(&[events_to_batch(&[pageview(1)])]).unwrap();
    for cut in [1, 7, 8, 100, bytes.len() / 2, bytes.len() - 9] {
        match read_ipc(&bytes[..cut], 10) {
            Err(e) => assert_eq!(e.field(), "body"),
            Ok(b) => assert!(b.is_empty(), "cut at {cut} gave rows"),
        }
    }
}
