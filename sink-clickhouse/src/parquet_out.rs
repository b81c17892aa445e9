//! Embedded mode's output: each loaded chunk of a spool segment becomes one Parquet
//! file under `<data-dir>/parquet/`, written to a temporary name, fsynced, renamed,
//! and the directory fsynced — so a file is either complete or absent. The name is
//! derived from the segment and the record range, so replaying a segment after a crash
//! rewrites the same file: exactly-once in this mode.

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;

/// Writes Parquet files into one directory.
#[derive(Debug, Clone)]
pub struct ParquetOut {
    dir: PathBuf,
}

impl ParquetOut {
    /// Creates the directory if needed, and removes the temporary files a crash left
    /// (`.<name>.<attempt>.tmp`: never a file a reader takes).
    pub fn new(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                fs::remove_file(e.path())?;
            }
        }
        Ok(ParquetOut { dir })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `batches` as `events-<created ms>-<segment>-<first>-<last>.parquet`;
    /// returns its path once it is durable. Each attempt writes its own temporary file
    /// (an attempt abandoned at shutdown may still be writing when the drain writes the
    /// same chunk again), removed if the attempt fails. Batches the encoder refuses are
    /// an [`io::ErrorKind::InvalidData`] error (the data's fault: no retry helps).
    pub fn write(
        &self,
        created_at_ms: i64,
        segment: u64,
        first: u32,
        last: u32,
        batches: &[RecordBatch],
    ) -> io::Result<PathBuf> {
        static ATTEMPT: AtomicU64 = AtomicU64::new(0);
        let name = format!("events-{created_at_ms}-{segment:020}-{first}-{last}.parquet");
        let path = self.dir.join(&name);
        let attempt = ATTEMPT.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".{name}.{}-{attempt}.tmp", std::process::id()));
        let written = (|| {
            let f = File::options().write(true).create_new(true).open(&tmp)?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            ingest_core::write_parquet(&mut w, batches)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        crate::spool::fsync_dir(&self.dir)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int32Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A crash's temporary files are removed at start-up; a write leaves only its file;
    /// batches the encoder refuses are `InvalidData` and leave nothing behind.
    #[test]
    fn temporary_files_never_stay_and_encoder_errors_are_invalid_data() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(".events-1-2-0-0.parquet.77-0.tmp"), b"half").unwrap();
        fs::write(d.path().join("keep.parquet"), b"a user's").unwrap();
        let out = ParquetOut::new(d.path().to_owned()).unwrap();
        assert_eq!(files(d.path()), ["keep.parquet"]);
        let int = |v: i32| {
            let s = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
            RecordBatch::try_new(s, vec![Arc::new(Int32Array::from(vec![v]))]).unwrap()
        };
        let path = out.write(1, 2, 0, 1, &[int(1), int(2)]).unwrap();
        assert_eq!(
            files(d.path()),
            ["events-1-00000000000000000002-0-1.parquet", "keep.parquet"]
        );
        assert!(path.exists());
        let s = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, false)]));
        let text = RecordBatch::try_new(s, vec![Arc::new(StringArray::from(vec!["a"]))]).unwrap();
        let err = out.write(1, 3, 0, 1, &[int(1), text]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert_eq!(files(d.path()).len(), 2, "no temporary file left");
    }
}
