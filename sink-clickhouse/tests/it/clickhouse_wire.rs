//! What the client puts on the wire, read by a listener that captures each HTTP
//! request instead of a ClickHouse: which body each compression sends, and how
//! `block_rows` cuts an insert into Native blocks. The real-server tests in
//! `clickhouse_loader` check that ClickHouse takes these bodies.

use arrow_array::RecordBatch;
use ingest_core::events_to_batch;
use sink_clickhouse::clickhouse::{
    encode_native_parts, table_columns, ClickHouseConfig, Client, ServerVersion, TableLayout,
    WireCompression, MAX_BLOCK_ROWS, MIN_BLOCK_ROWS,
};
use std::time::Duration;

use crate::support::fixtures::{client_blocks, client_with, rt, sample_events, BLOCK_ROWS};

/// Answers `n` HTTP/1.1 requests on `listener` with an empty `200` and returns each
/// one's head and body (de-chunked): what a client put on the wire. Not a ClickHouse —
/// the real-server tests check that the server takes these bodies; this checks
/// which body went.
fn capture(listener: std::net::TcpListener, n: usize) -> Vec<(String, Vec<u8>)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut got = Vec::new();
    while got.len() < n {
        let (conn, _) = listener.accept().unwrap();
        let mut r = BufReader::new(conn.try_clone().unwrap());
        let mut w = conn;
        while got.len() < n {
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            if head.is_empty() {
                break; // the client closed this connection
            }
            let lower = head.to_ascii_lowercase();
            let mut body = Vec::new();
            if lower.contains("transfer-encoding: chunked") {
                loop {
                    let mut size = String::new();
                    r.read_line(&mut size).unwrap();
                    let size =
                        usize::from_str_radix(size.trim().split(';').next().unwrap(), 16).unwrap();
                    let mut chunk = vec![0; size + 2];
                    r.read_exact(&mut chunk).unwrap();
                    if size == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..size]);
                }
            } else if let Some(len) = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
            {
                body.resize(len.trim().parse().unwrap(), 0);
                r.read_exact(&mut body).unwrap();
            }
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            got.push((head, body));
        }
    }
    got
}

/// On the wire, `none` and `auto` to loopback send the Native bytes themselves without
/// `decompress=1`, and `lz4` sends ClickHouse LZ4 frames of those bytes with it — for an
/// insert of one block and for one of two.
#[test]
fn the_wire_carries_plain_native_or_lz4_frames_as_the_compression_says() {
    let layout =
        TableLayout::from_describe(&table_columns(&ServerVersion::parse("18.16.1").unwrap()))
            .unwrap();
    let native = |parts: &[RecordBatch]| {
        let mut v = Vec::new();
        encode_native_parts(&layout, parts, &mut v).unwrap();
        v
    };
    let small = events_to_batch(&sample_events(50));
    let big = events_to_batch(&sample_events(BLOCK_ROWS + 10));
    let want_small = native(std::slice::from_ref(&small));
    let mut want_big = native(&[big.slice(0, BLOCK_ROWS)]);
    want_big.extend(native(&[big.slice(BLOCK_ROWS, 10)]));
    for (compression, lz4) in [
        (WireCompression::Auto, false),
        (WireCompression::None, false),
        (WireCompression::Lz4, true),
    ] {
        for (batch, want) in [(&small, &want_small), (&big, &want_big)] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
            // The known-settings query, then the insert.
            let server = std::thread::spawn(move || capture(listener, 2));
            let c = client_with(vec![url], "analytics", "events", compression);
            rt().block_on(c.insert(&layout, batch, None)).unwrap();
            let requests = server.join().unwrap();
            let (head, body) = &requests[1];
            let what = format!("{compression:?}, {} rows", batch.num_rows());
            assert!(head.contains("INSERT"), "{what}: {head}");
            assert_eq!(head.contains("decompress=1"), lz4, "{what}: {head}");
            if !lz4 {
                assert!(body == want, "{what}: the body is not the Native bytes");
                continue;
            }
            // Frames: 16-byte checksum, method 0x82, compressed size (with the 9-byte
            // header), uncompressed size; they tile the body and cover every Native byte.
            let (mut at, mut raw) = (0, 0);
            while at < body.len() {
                assert_eq!(body[at + 16], 0x82, "{what}: frame at {at} is not LZ4");
                let size = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().unwrap());
                raw += size(at + 21) as usize;
                at += 16 + size(at + 17) as usize;
            }
            assert_eq!(at, body.len(), "{what}: frames do not tile the body");
            assert_eq!(
                raw,
                want.len(),
                "{what}: frames hold other than the Native bytes"
            );
            assert!(body != want, "{what}");
        }
    }
}

/// `block_rows` decides the blocks: the batch of [`BLOCK_ROWS`] + 10 rows that a
/// client of [`BLOCK_ROWS`] sends as two blocks (above) goes as one block from a client
/// whose blocks are larger than it; either way the body is streamed (chunked), column
/// by column, never built whole first. Out-of-range sizes are refused.
#[test]
fn an_insert_up_to_block_rows_is_one_native_block() {
    let layout =
        TableLayout::from_describe(&table_columns(&ServerVersion::parse("18.16.1").unwrap()))
            .unwrap();
    let big = events_to_batch(&sample_events(BLOCK_ROWS + 10));
    let mut one_block = Vec::new();
    encode_native_parts(&layout, std::slice::from_ref(&big), &mut one_block).unwrap();
    let mut two_blocks = Vec::new();
    encode_native_parts(&layout, &[big.slice(0, BLOCK_ROWS)], &mut two_blocks).unwrap();
    encode_native_parts(&layout, &[big.slice(BLOCK_ROWS, 10)], &mut two_blocks).unwrap();
    assert_ne!(one_block, two_blocks);
    for (block_rows, want) in [(BLOCK_ROWS + 10, &one_block), (BLOCK_ROWS, &two_blocks)] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let server = std::thread::spawn(move || capture(listener, 2));
        let c = client_blocks(
            vec![url],
            "analytics",
            "events",
            WireCompression::None,
            block_rows,
        );
        rt().block_on(c.insert(&layout, &big, None)).unwrap();
        let requests = server.join().unwrap();
        let (head, body) = &requests[1];
        assert!(
            body == want,
            "block_rows {block_rows}: other blocks than expected"
        );
        let streamed = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        assert!(streamed, "block_rows {block_rows}: {head}");
    }
    for bad in [0, MIN_BLOCK_ROWS - 1, MAX_BLOCK_ROWS + 1] {
        let e = Client::new(ClickHouseConfig {
            urls: vec!["http://127.0.0.1:9".into()],
            database: "analytics".into(),
            table: "events".into(),
            user: "default".into(),
            password: String::new(),
            timeout: Duration::from_secs(1),
            compression: WireCompression::None,
            block_rows: bad,
            sort_inserts: true,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("block_rows"), "{bad}: {e}");
    }
}
