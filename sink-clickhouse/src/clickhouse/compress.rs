//! Whether insert bodies are compressed ([`WireCompression`]), and ClickHouse's
//! compressed block framing for `?decompress=1` request bodies.
//!
//! Each frame: 16-byte checksum, method byte (0x82 = LZ4), UInt32 LE compressed size
//! including the 9-byte header, UInt32 LE uncompressed size, then the LZ4 block. The
//! checksum is CityHash128 **v1.0.2** (the version ClickHouse froze) over the method
//! byte through the end of the payload, written as high 64 bits then low 64 bits,
//! each little-endian. Hand-written because no kept crate produces this framing; the
//! pieces (LZ4 block, CityHash v1.0.2) come from `lz4_flex` and `cityhash-rs`.

/// Whether insert bodies are sent LZ4-framed (`?decompress=1`) or as plain Native.
///
/// LZ4 saves network bytes at a CPU cost on both ends: on the sink it was ≈ 7% of its
/// CPU in the end-to-end benchmark (`compress_internal` under the loader), for bytes that
/// on loopback only cross a memory copy. A sink next to its ClickHouse gains nothing from
/// it; a sink across a network does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WireCompression {
    /// LZ4 to a server on another host, none to a loopback address (`localhost`,
    /// `127.0.0.0/8`, `::1`); decided per URL.
    #[default]
    Auto,
    /// Always LZ4-framed.
    Lz4,
    /// Always plain Native.
    None,
}

impl WireCompression {
    /// Whether inserts to `url` (already validated) are LZ4-framed.
    pub fn lz4_for(self, url: &reqwest::Url) -> bool {
        match self {
            WireCompression::Lz4 => true,
            WireCompression::None => false,
            WireCompression::Auto => !is_loopback(url),
        }
    }
}

/// `url`'s host is this machine: `localhost` or a loopback IP address.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Uncompressed bytes per frame (ClickHouse's own default block size is 1 MiB).
pub const FRAME_CHUNK: usize = 1 << 20;

const METHOD_LZ4: u8 = 0x82;
const HEADER: usize = 9;

/// Bodies of at least this many bytes are framed on several threads.
pub const PARALLEL_MIN_BYTES: usize = 2 * FRAME_CHUNK;
/// At most this many threads frame one body.
pub const MAX_FRAMING_THREADS: usize = 4;

/// Appends `raw` to `out` as LZ4 frames of at most [`FRAME_CHUNK`] input bytes each.
///
/// Frames are independent, so a body of [`PARALLEL_MIN_BYTES`] or more is cut at frame
/// boundaries into one run of frames per core (up to [`MAX_FRAMING_THREADS`]), framed
/// in parallel and appended in order: the bytes are exactly the serial ones. LZ4 itself
/// runs at a few hundred MB/s here, 1.8x the cost of the Native encoding, and the
/// server sits idle while a body is being framed, so the second core is free.
pub fn compress_lz4_frames(raw: &[u8], out: &mut Vec<u8>) {
    let frames = raw.len().div_ceil(FRAME_CHUNK);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_FRAMING_THREADS)
        .min(frames);
    if raw.len() < PARALLEL_MIN_BYTES || threads < 2 {
        return frame_serial(raw, out);
    }
    let per_thread = frames.div_ceil(threads) * FRAME_CHUNK;
    let parts: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = raw
            .chunks(per_thread)
            .map(|part| {
                s.spawn(move || {
                    let mut v = Vec::with_capacity(part.len() / 2);
                    frame_serial(part, &mut v);
                    v
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("LZ4 framing thread panicked"))
            .collect()
    });
    out.reserve(parts.iter().map(Vec::len).sum());
    for p in parts {
        out.extend_from_slice(&p);
    }
}

/// `raw` as one LZ4-framed request body (what `decompress=1` expects).
pub(super) fn lz4_body(raw: &[u8]) -> bytes::Bytes {
    let mut framed = Vec::with_capacity(raw.len() / 3 + 64);
    compress_lz4_frames(raw, &mut framed);
    bytes::Bytes::from(framed)
}

fn frame_serial(raw: &[u8], out: &mut Vec<u8>) {
    for chunk in raw.chunks(FRAME_CHUNK) {
        let start = out.len();
        out.extend_from_slice(&[0u8; 16]);
        out.push(METHOD_LZ4);
        out.extend_from_slice(&[0u8; 8]); // sizes, filled below
        let payload_start = out.len();
        out.resize(
            payload_start + lz4_flex::block::get_maximum_output_size(chunk.len()),
            0,
        );
        let n = lz4_flex::block::compress_into(chunk, &mut out[payload_start..])
            .expect("output sized by get_maximum_output_size");
        out.truncate(payload_start + n);
        let compressed = (HEADER + n) as u32;
        out[start + 17..start + 21].copy_from_slice(&compressed.to_le_bytes());
        out[start + 21..start + 25].copy_from_slice(&(chunk.len() as u32).to_le_bytes());
        let sum = checksum(&out[start + 16..]);
        out[start..start + 16].copy_from_slice(&sum);
    }
}

/// The 16 checksum bytes of a frame whose method byte, sizes and payload are `body`:
/// CityHash128 v1.0.2, high 64 bits then low 64 bits, each little-endian.
fn checksum(body: &[u8]) -> [u8; 16] {
    let sum = cityhash_rs::cityhash_102_128(body);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&((sum >> 64) as u64).to_le_bytes());
    out[8..].copy_from_slice(&(sum as u64).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes frames the way the server does (checksum first), for the round trip.
    fn decode(mut body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !body.is_empty() {
            let size = u32::from_le_bytes(body[17..21].try_into().unwrap()) as usize;
            let raw = u32::from_le_bytes(body[21..25].try_into().unwrap()) as usize;
            assert_eq!(body[..16], checksum(&body[16..16 + size]), "checksum");
            assert_eq!(body[16], METHOD_LZ4);
            let block = lz4_flex::block::decompress(&body[25..16 + size], raw).unwrap();
            out.extend_from_slice(&block);
            body = &body[16 + size..];
        }
        out
    }

    /// A frame written by the real server: the `s.bin` column file of a 18.16 MergeTree
    /// part after `INSERT INTO v VALUES ('ClickHouse LZ4 frame'), ('ClickHouse LZ4
    /// frame'), ('abc')` (a column file uses the same framing as `decompress=1`).
    const SERVER_FRAME: [u8; 57] = [
        0xaf, 0xf0, 0xfa, 0x33, 0xd5, 0xa9, 0x94, 0x06, 0x69, 0x4f, 0xa0, 0x7a, 0x08, 0xa0, 0x3a,
        0xad, 0x82, 0x29, 0x00, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x00, 0xff, 0x06, 0x14, 0x43, 0x6c,
        0x69, 0x63, 0x6b, 0x48, 0x6f, 0x75, 0x73, 0x65, 0x20, 0x4c, 0x5a, 0x34, 0x20, 0x66, 0x72,
        0x61, 0x6d, 0x65, 0x15, 0x00, 0x01, 0x50, 0x65, 0x03, 0x61, 0x62, 0x63,
    ];

    fn server_raw() -> Vec<u8> {
        let mut raw = Vec::new();
        for s in ["ClickHouse LZ4 frame", "ClickHouse LZ4 frame", "abc"] {
            raw.push(s.len() as u8);
            raw.extend_from_slice(s.as_bytes());
        }
        raw
    }

    #[test]
    fn checksum_matches_a_frame_written_by_clickhouse() {
        assert_eq!(decode(&SERVER_FRAME), server_raw());
        // Our frame of the same bytes carries the checksum of its own payload (lz4_flex
        // may pick other matches than the server's LZ4), in the same layout.
        let mut ours = Vec::new();
        compress_lz4_frames(&server_raw(), &mut ours);
        assert_eq!(decode(&ours), server_raw());
        assert_eq!(ours[16], METHOD_LZ4);
        assert_eq!(&ours[21..25], &46u32.to_le_bytes());
    }

    #[test]
    fn frames_round_trip_across_chunk_boundaries() {
        let raw: Vec<u8> = (0..FRAME_CHUNK * 2 + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut out = Vec::new();
        compress_lz4_frames(&raw, &mut out);
        assert!(out.len() < raw.len());
        assert_eq!(decode(&out), raw);
        let mut empty = Vec::new();
        compress_lz4_frames(&[], &mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn parallel_framing_gives_exactly_the_serial_bytes() {
        for len in [
            PARALLEL_MIN_BYTES - 1,
            PARALLEL_MIN_BYTES,
            FRAME_CHUNK * 7 + 5,
        ] {
            let raw: Vec<u8> = (0..len).map(|i| ((i * 7) % 253) as u8).collect();
            let (mut par, mut ser) = (b"prefix".to_vec(), b"prefix".to_vec());
            compress_lz4_frames(&raw, &mut par);
            frame_serial(&raw, &mut ser);
            assert!(par == ser, "{len} bytes framed differently in parallel");
            assert_eq!(decode(&par[6..]), raw);
        }
    }

    #[test]
    fn auto_compression_is_lz4_except_to_loopback() {
        let lz4 = |c: WireCompression, u: &str| c.lz4_for(&reqwest::Url::parse(u).unwrap());
        for local in [
            "http://127.0.0.1:8123",
            "http://127.1.2.3:8123",
            "http://localhost:8123",
            "https://LOCALHOST",
            "http://[::1]:8123",
        ] {
            assert!(!lz4(WireCompression::Auto, local), "{local}");
            assert!(lz4(WireCompression::Lz4, local), "{local}");
        }
        for remote in [
            "http://10.0.0.5:8123",
            "https://ch.example.com:8443",
            "http://[2001:db8::1]:8123",
            "http://localhost.example.com",
        ] {
            assert!(lz4(WireCompression::Auto, remote), "{remote}");
            assert!(!lz4(WireCompression::None, remote), "{remote}");
        }
    }
}
