use super::*;
use crate::{events_to_batch, read_ipc, write_ipc, Event};
use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use std::borrow::Cow;

/// `n` events that differ in every kind of column (strings of many lengths, nulls and
/// values in the optional ones, props on some), deterministic.
pub(crate) fn events(n: usize) -> Vec<Event<'static>> {
    (0..n)
        .map(|i| {
            let mut e = Event {
                received_at_ms: 1_764_000_000_000 + i as i64 * 37,
                site_id: Cow::Owned(format!("site{}.example", i % 7)),
                hostname: Cow::Owned(format!("www.site{}.example", i % 7)),
                pathname: Cow::Owned(format!("/blog/{}/{}", i % 113, "x".repeat(i % 90))),
                referrer_host: Cow::Owned(if i % 3 == 0 {
                    String::new()
                } else {
                    format!("r{}.com", i % 11)
                }),
                utm_source: Cow::Owned(if i % 5 == 0 {
                    "newsletter".into()
                } else {
                    String::new()
                }),
                browser: Cow::Borrowed(if i % 2 == 0 { "Chrome" } else { "Firefox" }),
                screen_width: (320 + i % 1600) as u16,
                visitor_id: (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                scroll_depth: (i % 4 != 0).then_some((i % 101) as u8),
                engagement_ms: (i % 3 == 1).then_some(i as u32 * 11),
                ..Event::default()
            };
            e.event_id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            e.timings.lcp_ms = (i % 2 == 0).then_some(i as u32 % 4000);
            if i % 10 == 0 {
                e.props = vec![(Cow::Borrowed("plan"), Cow::Owned(format!("p{}", i % 3)))];
            }
            e
        })
        .collect()
}

/// What arrow-ipc's reader alone makes of `bytes` (its own LZ4 decoding).
fn arrow_only(bytes: &[u8]) -> Result<Vec<RecordBatch>, String> {
    StreamReader::try_new(bytes, None)
        .map_err(|e| e.to_string())?
        .map(|b| b.map_err(|e| e.to_string()))
        .collect()
}

#[test]
fn rewritten_streams_decode_to_the_batches_written() {
    // 1 row, an edge batch (100), and one whose string buffers pass 64 KiB, so that
    // their frames hold several blocks.
    let batches: Vec<RecordBatch> = [1, 100, 3_000, 40_000]
        .iter()
        .map(|&n| events_to_batch(&events(n)))
        .collect();
    for b in &batches {
        let bytes = write_ipc(std::slice::from_ref(b)).unwrap();
        let plain = decompress_stream(&bytes).expect("a stream of arrow-ipc's LZ4 frames");
        assert_eq!(&arrow_only(&plain).unwrap(), std::slice::from_ref(b));
        assert_eq!(&arrow_only(&bytes).unwrap(), std::slice::from_ref(b));
        assert_eq!(
            &read_ipc(&bytes, usize::MAX).unwrap(),
            std::slice::from_ref(b)
        );
    }
    // Several batches in one stream.
    let bytes = write_ipc(&batches).unwrap();
    assert_eq!(
        arrow_only(&decompress_stream(&bytes).unwrap()).unwrap(),
        batches
    );
    assert_eq!(read_ipc(&bytes, usize::MAX).unwrap(), batches);
}

#[test]
fn streams_without_compressed_buffers_are_left_as_they_are() {
    let b = events_to_batch(&events(50));
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &b.schema()).unwrap();
    w.write(&b).unwrap();
    let bytes = w.into_inner().unwrap();
    assert!(decompress_stream(&bytes).is_none());
    assert_eq!(read_ipc(&bytes, 100).unwrap(), vec![b]);
}

#[test]
fn frames_of_other_kinds_are_left_to_arrow() {
    let frame = |info: lz4_flex::frame::FrameInfo, data: &[u8]| {
        use std::io::Write;
        let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    };
    let data: Vec<u8> = (0..5_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let mut out = vec![0u8; data.len()];
    // arrow-ipc's kind decodes exactly; a wrong length does not.
    let plain = frame(lz4_flex::frame::FrameInfo::new(), &data);
    assert!(decode_frame(&plain, &mut out).is_some());
    assert_eq!(out, data);
    assert!(decode_frame(&plain, &mut vec![0u8; data.len() - 1]).is_none());
    assert!(decode_frame(&plain, &mut vec![0u8; data.len() + 1]).is_none());
    // Checksums, linked blocks: not taken.
    for info in [
        lz4_flex::frame::FrameInfo::new().block_checksums(true),
        lz4_flex::frame::FrameInfo::new().content_checksum(true),
        lz4_flex::frame::FrameInfo::new().block_mode(lz4_flex::frame::BlockMode::Linked),
    ] {
        assert!(decode_frame(&frame(info, &data), &mut out).is_none());
    }
    // A declared content size is taken, and must match.
    let sized = frame(
        lz4_flex::frame::FrameInfo::new().content_size(Some(data.len() as u64)),
        &data,
    );
    assert!(decode_frame(&sized, &mut out).is_some());
    assert!(decode_frame(&sized, &mut [0u8; 10]).is_none());
    // Trailing bytes after the end mark.
    let mut trailing = plain.clone();
    trailing.push(0);
    assert!(decode_frame(&trailing, &mut out).is_none());
}

#[test]
fn damaged_streams_decode_as_arrow_decodes_them_or_fail() {
    // Every byte of a small stream changed in turn, and every truncation: `read_ipc`
    // answers an error, or (where arrow-ipc alone reads it too) the same batches. What
    // only this path accepts: a frame whose header checksum byte is wrong (it is not
    // checked; the frame's data still decodes to exactly its declared length).
    let b = events_to_batch(&events(20));
    let bytes = write_ipc(std::slice::from_ref(&b)).unwrap();
    let mut both_ok = 0;
    for i in 0..bytes.len() {
        // One change a byte (the sign bit, or every bit), to keep the test's time.
        for flip in [if i % 2 == 0 { 0xFFu8 } else { 0x80 }] {
            let mut bad = bytes.clone();
            bad[i] ^= flip;
            // Never a panic here (arrow-ipc alone panics on a few of these: a negative
            // fixed width in the schema; `check_fields` refuses them).
            let Ok(ours) = read_ipc(&bad, usize::MAX) else {
                continue;
            };
            if let Ok(Ok(theirs)) = std::panic::catch_unwind(|| arrow_only(&bad)) {
                assert_eq!(ours, theirs, "byte {i} ^ {flip:#x}");
                both_ok += 1;
            }
        }
    }
    for end in 0..bytes.len() {
        let _ = read_ipc(&bytes[..end], usize::MAX);
    }
    assert!(both_ok > 0, "some changes (in values) still decode");
}
