//! ClickHouse's compressed block framing for `?decompress=1` request bodies.
//!
//! Each frame: 16-byte checksum, method byte (0x82 = LZ4), UInt32 LE compressed size
//! including the 9-byte header, UInt32 LE uncompressed size, then the LZ4 block. The
//! checksum is CityHash128 **v1.0.2** (the version ClickHouse froze) over the method
//! byte through the end of the payload, written as high 64 bits then low 64 bits,
//! each little-endian. Hand-written because no kept crate produces this framing; the
//! pieces (LZ4 block, CityHash v1.0.2) come from `lz4_flex` and `cityhash-rs`.

/// Uncompressed bytes per frame (ClickHouse's own default block size is 1 MiB).
pub const FRAME_CHUNK: usize = 1 << 20;

const METHOD_LZ4: u8 = 0x82;
const HEADER: usize = 9;

/// Appends `raw` to `out` as LZ4 frames of at most [`FRAME_CHUNK`] input bytes each.
pub fn compress_lz4_frames(raw: &[u8], out: &mut Vec<u8>) {
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
        let sum = cityhash_rs::cityhash_102_128(&out[start + 16..]);
        out[start..start + 8].copy_from_slice(&((sum >> 64) as u64).to_le_bytes());
        out[start + 8..start + 16].copy_from_slice(&(sum as u64).to_le_bytes());
    }
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
            let sum = cityhash_rs::cityhash_102_128(&body[16..16 + size]);
            assert_eq!(&body[..8], &((sum >> 64) as u64).to_le_bytes());
            assert_eq!(&body[8..16], &(sum as u64).to_le_bytes());
            assert_eq!(body[16], METHOD_LZ4);
            let block = lz4_flex::block::decompress(&body[25..16 + size], raw).unwrap();
            out.extend_from_slice(&block);
            body = &body[16 + size..];
        }
        out
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
}
