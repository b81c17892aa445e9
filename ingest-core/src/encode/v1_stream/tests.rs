use super::*;
use crate::encode::lz4_frames::tests::events;
use crate::encode::messages::{record_batch_message, write_message};
use crate::{events_to_batch, read_ipc, read_ipc_limited, read_ipc_v1_body, write_ipc};
use arrow_ipc::reader::StreamReader;

/// What arrow-ipc's reader alone makes of a stream.
fn arrow_only(bytes: &[u8]) -> Vec<RecordBatch> {
    StreamReader::try_new(bytes, None)
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap()
}

fn stream(batches: &[RecordBatch], opts: IpcWriteOptions) -> Vec<u8> {
    let mut w = StreamWriter::try_new_with_options(Vec::new(), &batches[0].schema(), opts).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.into_inner().unwrap()
}

#[test]
fn streams_of_this_crate_take_the_short_path_and_read_as_arrow_reads_them() {
    let batches: Vec<RecordBatch> = [1, 100, 3_000]
        .iter()
        .map(|&n| events_to_batch(&events(n)))
        .collect();
    let lz4 = write_ipc(&batches).unwrap();
    let plain = stream(&batches, IpcWriteOptions::default());
    for bytes in [&lz4, &plain] {
        let rest = bytes
            .strip_prefix(v1_schema_message())
            .expect("starts with schema v1's message");
        let short = read_v1(rest, usize::MAX, usize::MAX)
            .expect("taken by the short path")
            .unwrap();
        assert_eq!(short, batches);
        assert_eq!(read_ipc(bytes, usize::MAX).unwrap(), arrow_only(bytes));
    }
}

#[test]
fn the_short_path_keeps_the_limits() {
    let b = events_to_batch(&events(100));
    let bytes = write_ipc(&[b.clone(), b]).unwrap();
    assert!(read_ipc(&bytes, 200).is_ok());
    let e = read_ipc(&bytes, 199).unwrap_err().to_string();
    assert!(e.contains("more than 199 rows"), "{e}");
    let e = read_ipc_limited(&bytes, 200, 1_000)
        .unwrap_err()
        .to_string();
    assert!(e.contains("decodes to more than 1000 bytes"), "{e}");
}

#[test]
fn other_streams_are_read_by_arrow_as_before() {
    let b = events_to_batch(&events(50));
    // Schema v1 at another alignment: its schema message differs by its padding.
    let aligned8 = IpcWriteOptions::try_new(8, false, arrow_ipc::MetadataVersion::V5).unwrap();
    let bytes = stream(std::slice::from_ref(&b), aligned8.clone());
    assert!(!bytes.starts_with(v1_schema_message()));
    assert_eq!(read_ipc(&bytes, 50).unwrap(), vec![b.clone()]);
    // Another schema entirely.
    let other = RecordBatch::try_from_iter([(
        "x",
        std::sync::Arc::new(arrow_array::Int32Array::from(vec![1, 2])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let bytes = write_ipc(std::slice::from_ref(&other)).unwrap();
    assert_eq!(read_ipc(&bytes, 2).unwrap(), vec![other]);
    // A second schema message after schema v1's: not this path's to judge.
    let one = write_ipc(std::slice::from_ref(&b)).unwrap();
    let rest = one.strip_prefix(v1_schema_message()).unwrap();
    let mut twice = v1_schema_message().to_vec();
    twice.extend_from_slice(v1_schema_message());
    twice.extend_from_slice(rest);
    assert!(read_v1(&twice[v1_schema_message().len()..], 100, usize::MAX).is_none());
    assert!(read_ipc(&twice, 100).is_err());
}

#[test]
fn bodies_stored_without_their_schema_message_read_back() {
    // As the sink's spool stores them: schema v1 at 8-byte alignment, the schema
    // message left out, compressed or not.
    let batches: Vec<RecordBatch> = [3, 250]
        .iter()
        .map(|&n| events_to_batch(&events(n)))
        .collect();
    let v5 = || IpcWriteOptions::try_new(8, false, arrow_ipc::MetadataVersion::V5).unwrap();
    let lz4 = v5()
        .try_with_compression(Some(CompressionType::LZ4_FRAME))
        .unwrap();
    for opts in [v5(), lz4] {
        let whole = stream(&batches, opts);
        // The schema message is the first message: find its end from its length.
        let len = i32::from_le_bytes(whole[4..8].try_into().unwrap()) as usize;
        let body = &whole[8 + len..];
        assert_eq!(
            read_ipc_v1_body(body, usize::MAX, usize::MAX).unwrap(),
            batches
        );
    }
    // A body the short path does not take (a schema message in it) is read, with the
    // schema put back, by arrow's reader: here an error, never a panic.
    let e = read_ipc_v1_body(v1_schema_message(), usize::MAX, usize::MAX);
    assert!(e.is_err());
}

/// `stream` (uncompressed) with the second buffer of its first record batch moved past
/// the end of the message body.
fn with_buffer_outside_body(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut moved = false;
    for m in crate::encode::messages::Messages::new(stream) {
        let m = m.unwrap();
        let Some(rb) = m.msg.header_as_record_batch().filter(|_| !moved) else {
            out.extend_from_slice(m.raw);
            continue;
        };
        moved = true;
        let mut buffers: Vec<arrow_ipc::Buffer> = rb.buffers().unwrap().iter().copied().collect();
        buffers[1] = arrow_ipc::Buffer::new(m.body.len() as i64, 8);
        let nodes: Vec<arrow_ipc::FieldNode> = rb.nodes().unwrap().iter().copied().collect();
        let body_len = m.body.len() as i64;
        let fbb = record_batch_message(
            m.msg.version(),
            rb.length(),
            &nodes,
            &buffers,
            None,
            body_len,
        );
        write_message(&mut out, fbb.finished_data(), m.body).unwrap();
    }
    out
}

/// arrow-ipc 60 slices a message body at a buffer's offset without checking it, and
/// panics on a buffer past the body's end: refused before it is read, on both paths.
#[test]
fn a_buffer_outside_the_body_is_refused_before_arrow_reads_it() {
    let b = events_to_batch(&events(5));
    let plain = stream(std::slice::from_ref(&b), IpcWriteOptions::default());
    let bad = with_buffer_outside_body(&plain);
    assert!(bad.starts_with(v1_schema_message()));
    let e = crate::scan_ipc(&bad).unwrap_err().to_string();
    assert!(e.contains("buffer outside the message body"), "{e}");
    let e = read_ipc(&bad, 100).unwrap_err().to_string();
    assert!(e.contains("buffer outside the message body"), "{e}");
    let body = &bad[v1_schema_message().len()..];
    assert!(read_v1(body, 100, usize::MAX).is_none());
    let e = read_ipc_v1_body(body, 100, usize::MAX)
        .unwrap_err()
        .to_string();
    assert!(e.contains("buffer outside the message body"), "{e}");
}
