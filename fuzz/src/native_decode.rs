//! An independent reader of ClickHouse's Native format and of its compressed-frame
//! framing, written from the format's description (ClickHouse docs, "Native" format and
//! the `?decompress=1` body framing), not from the sink's encoder: the oracle the
//! `native_encode` target checks `sink_clickhouse::clickhouse::encode_native` and
//! `compress_lz4_frames` against.
//!
//! Block: varuint column count, varuint row count, then per column its name and type
//! (varuint length + bytes) and its data:
//! - fixed-width numbers, `DateTime` (UInt32 seconds), `DateTime64` (Int64 ticks):
//!   little-endian, one per row;
//! - `UUID`: two little-endian UInt64 halves, the high half first;
//! - `String`: varuint length + bytes per row;
//! - `Nullable(T)`: one byte per row (1 = NULL), then a full `T` column;
//! - `Array(T)`: one UInt64 cumulative end offset per row, then the `T` column of all
//!   elements;
//! - `LowCardinality(String)`: UInt64 key-serialization version (1), then one granule:
//!   UInt64 flags (index width in the low byte: 0 = UInt8 … 3 = UInt64; bit 9 = the
//!   granule carries its own dictionary, bit 10 = dictionary update), UInt64 dictionary
//!   size and the dictionary as a `String` column, UInt64 row count and one index per
//!   row.
//!
//! Frame: 16-byte CityHash128 (v1.0.2) of the rest of the frame (high 64 bits then low,
//! each little-endian), method byte (0x82 = LZ4), UInt32 size of the frame from the
//! method byte on, UInt32 uncompressed size, the LZ4 block.

/// One decoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// NULL in a `Nullable` column.
    Null,
    /// Any integer type, `DateTime`, `DateTime64`.
    Int(i128),
    /// `Float32`, by its bits (so NaN compares).
    F32(u32),
    /// `Float64`, by its bits.
    F64(u64),
    /// `String` bytes.
    Str(Vec<u8>),
    /// A `UUID`, in its canonical (text-order) bytes.
    Uuid([u8; 16]),
    /// An `Array` row.
    Array(Vec<Value>),
}

/// A decoded column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Type text as sent.
    pub type_name: String,
    /// One value per row.
    pub values: Vec<Value>,
}

/// Why decoding failed.
pub type Error = String;

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.at.checked_add(n).ok_or("length overflow")?;
        let s = self
            .b
            .get(self.at..end)
            .ok_or_else(|| format!("{n} bytes wanted at {} of {}", self.at, self.b.len()))?;
        self.at = end;
        Ok(s)
    }

    fn varuint(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varuint longer than 10 bytes".into())
    }

    fn le(&mut self, n: usize) -> Result<u128, Error> {
        let s = self.take(n)?;
        Ok(s.iter()
            .rev()
            .fold(0u128, |acc, &b| (acc << 8) | u128::from(b)))
    }

    fn string(&mut self) -> Result<Vec<u8>, Error> {
        let n = self.varuint()?;
        Ok(self
            .take(usize::try_from(n).map_err(|_| "huge string")?)?
            .to_vec())
    }
}

/// Splits `T(args)` into `("T", "args")`.
fn wrapper(ty: &str) -> Option<(&str, &str)> {
    let open = ty.find('(')?;
    let inner = ty.strip_suffix(')')?.get(open + 1..)?;
    Some((&ty[..open], inner))
}

fn column(r: &mut Reader<'_>, ty: &str, rows: usize) -> Result<Vec<Value>, Error> {
    let ty = ty.trim();
    let fixed = |r: &mut Reader<'_>, n: usize, signed: bool| -> Result<Vec<Value>, Error> {
        (0..rows)
            .map(|_| {
                let u = r.le(n)?;
                let bits = n * 8;
                let v = if signed && bits < 128 && u >> (bits - 1) & 1 == 1 {
                    u as i128 - (1i128 << bits)
                } else {
                    u as i128
                };
                Ok(Value::Int(v))
            })
            .collect()
    };
    match ty {
        "UInt8" => fixed(r, 1, false),
        "UInt16" => fixed(r, 2, false),
        "UInt32" => fixed(r, 4, false),
        "UInt64" => fixed(r, 8, false),
        "Int8" => fixed(r, 1, true),
        "Int16" => fixed(r, 2, true),
        "Int32" => fixed(r, 4, true),
        "Int64" => fixed(r, 8, true),
        "Float32" => (0..rows).map(|_| Ok(Value::F32(r.le(4)? as u32))).collect(),
        "Float64" => (0..rows).map(|_| Ok(Value::F64(r.le(8)? as u64))).collect(),
        "String" => (0..rows).map(|_| Ok(Value::Str(r.string()?))).collect(),
        "UUID" => (0..rows)
            .map(|_| {
                let high = r.le(8)? as u64;
                let low = r.le(8)? as u64;
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&high.to_be_bytes());
                b[8..].copy_from_slice(&low.to_be_bytes());
                Ok(Value::Uuid(b))
            })
            .collect(),
        t if t == "DateTime" || t.starts_with("DateTime(") => fixed(r, 4, false),
        t if t.starts_with("DateTime64(") => fixed(r, 8, true),
        t => match wrapper(t) {
            Some(("Nullable", inner)) => {
                let map = r.take(rows)?.to_vec();
                let vals = column(r, inner, rows)?;
                map.iter()
                    .zip(vals)
                    .map(|(&m, v)| match m {
                        0 => Ok(v),
                        1 => Ok(Value::Null),
                        x => Err(format!("null map byte {x}")),
                    })
                    .collect()
            }
            Some(("Array", inner)) => {
                let mut ends = Vec::with_capacity(rows);
                let mut prev = 0u64;
                for _ in 0..rows {
                    let e = r.le(8)? as u64;
                    if e < prev {
                        return Err(format!("array offsets go back: {e} after {prev}"));
                    }
                    ends.push(e);
                    prev = e;
                }
                let total = usize::try_from(prev).map_err(|_| "huge array")?;
                if total > r.b.len() {
                    return Err(format!("{total} array elements in {} bytes", r.b.len()));
                }
                let mut items = column(r, inner, total)?.into_iter();
                let mut start = 0u64;
                Ok(ends
                    .into_iter()
                    .map(|e| {
                        let row: Vec<Value> = items.by_ref().take((e - start) as usize).collect();
                        start = e;
                        Value::Array(row)
                    })
                    .collect())
            }
            Some(("LowCardinality", "String")) => low_cardinality(r, rows),
            _ => Err(format!("type {t} not understood by the test decoder")),
        },
    }
}

fn low_cardinality(r: &mut Reader<'_>, rows: usize) -> Result<Vec<Value>, Error> {
    if r.le(8)? != 1 {
        return Err("LowCardinality key serialization version is not 1".into());
    }
    if rows == 0 && r.at == r.b.len() {
        return Ok(Vec::new());
    }
    let flags = r.le(8)? as u64;
    if flags & (1 << 9) == 0 {
        return Err("LowCardinality granule without its own dictionary".into());
    }
    let width = match flags & 0xff {
        0 => 1,
        1 => 2,
        2 => 4,
        3 => 8,
        w => return Err(format!("LowCardinality index width code {w}")),
    };
    let keys = r.le(8)? as u64;
    let keys = usize::try_from(keys).map_err(|_| "huge dictionary")?;
    if keys > r.b.len() {
        return Err(format!("{keys} dictionary keys in {} bytes", r.b.len()));
    }
    let dict: Vec<Vec<u8>> = (0..keys).map(|_| r.string()).collect::<Result<_, _>>()?;
    let n = r.le(8)? as u64;
    if n != rows as u64 {
        return Err(format!(
            "LowCardinality granule of {n} rows in a {rows}-row block"
        ));
    }
    (0..rows)
        .map(|_| {
            let i = r.le(width)? as usize;
            dict.get(i)
                .map(|k| Value::Str(k.clone()))
                .ok_or_else(|| format!("index {i} past a {keys}-key dictionary"))
        })
        .collect()
}

/// Decodes one Native block that must fill `bytes` exactly.
pub fn decode_block(bytes: &[u8]) -> Result<(usize, Vec<Column>), Error> {
    let mut r = Reader { b: bytes, at: 0 };
    let ncols = r.varuint()?;
    let rows = usize::try_from(r.varuint()?).map_err(|_| "huge row count")?;
    let mut cols = Vec::new();
    for _ in 0..ncols {
        let name = String::from_utf8(r.string()?).map_err(|_| "column name not UTF-8")?;
        let type_name = String::from_utf8(r.string()?).map_err(|_| "type not UTF-8")?;
        let values = column(&mut r, &type_name, rows)?;
        cols.push(Column {
            name,
            type_name,
            values,
        });
    }
    if r.at != bytes.len() {
        return Err(format!("{} bytes after the block", bytes.len() - r.at));
    }
    Ok((rows, cols))
}

/// Undoes the compressed-frame framing: checks each frame's checksum, method and
/// sizes, and returns the concatenated uncompressed bytes.
pub fn unframe(mut bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 25 {
            return Err(format!(
                "a frame header needs 25 bytes, {} left",
                bytes.len()
            ));
        }
        let size = u32::from_le_bytes(bytes[17..21].try_into().unwrap()) as usize;
        let raw = u32::from_le_bytes(bytes[21..25].try_into().unwrap()) as usize;
        if size < 9 || 16 + size > bytes.len() {
            return Err(format!("frame size {size} with {} bytes left", bytes.len()));
        }
        let (frame, rest) = bytes.split_at(16 + size);
        let sum = cityhash_rs::cityhash_102_128(&frame[16..]);
        let mut want = [0u8; 16];
        want[..8].copy_from_slice(&((sum >> 64) as u64).to_le_bytes());
        want[8..].copy_from_slice(&(sum as u64).to_le_bytes());
        if frame[..16] != want {
            return Err("frame checksum mismatch".into());
        }
        if frame[16] != 0x82 {
            return Err(format!("frame method {:#x}, not LZ4", frame[16]));
        }
        let block = lz4_flex::block::decompress(&frame[25..], raw)
            .map_err(|e| format!("LZ4 block: {e}"))?;
        if block.len() != raw {
            return Err(format!("frame says {raw} bytes, block has {}", block.len()));
        }
        out.extend_from_slice(&block);
        bytes = rest;
    }
    Ok(out)
}
