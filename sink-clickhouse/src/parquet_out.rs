//! Embedded mode's output: each loaded chunk of a spool segment becomes one Parquet
//! file under `<data-dir>/parquet/`, written to a temporary name, fsynced, renamed,
//! and the directory fsynced — so a file is either complete or absent. The name is
//! derived from the segment and the record range, so replaying a segment after a crash
//! rewrites the same file: exactly-once in this mode.

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;

/// Writes Parquet files into one directory.
#[derive(Debug, Clone)]
pub struct ParquetOut {
    dir: PathBuf,
}

impl ParquetOut {
    /// Creates the directory if needed.
    pub fn new(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(ParquetOut { dir })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `batches` as `events-<created ms>-<segment>-<first>-<last>.parquet`;
    /// returns its path once it is durable.
    pub fn write(
        &self,
        created_at_ms: i64,
        segment: u64,
        first: u32,
        last: u32,
        batches: &[RecordBatch],
    ) -> io::Result<PathBuf> {
        let name = format!("events-{created_at_ms}-{segment:020}-{first}-{last}.parquet");
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let f = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        ingest_core::write_parquet(&mut w, batches).map_err(|e| io::Error::other(e.to_string()))?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        crate::spool::fsync_dir(&self.dir)?;
        Ok(path)
    }
}
