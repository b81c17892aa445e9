//! The persistent record of recent `/v1/batches` batch ids, so a redelivered batch is
//! answered "already stored" and stored once.
//!
//! File `batch-ids` in the spool dir: a sequence of `u8 length + id bytes`. An id is
//! durable from its batch's acknowledgement in the record header of the segment that
//! holds the batch (fsynced before the answer; recovery reads the ids back from the
//! segments still on disk). The spool writer appends each round's ids to this file
//! after the round's fsync without an fsync of its own, and fsyncs the file before it
//! seals the segment ([`BatchIds::sync`]): a segment is loaded, and then deleted, only
//! once sealed, so its ids are durable here before they leave the spool. Recovery
//! appends and fsyncs whatever ids it found in segments but not here. The file is
//! rewritten (tmp + rename + dir fsync) when it holds twice the configured number of
//! ids; the oldest are forgotten.
use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// File name inside the spool dir.
pub const FILE_NAME: &str = "batch-ids";
/// Longest accepted batch id, in bytes (it is stored with a one-byte length).
pub const MAX_BATCH_ID_LEN: usize = 255;

/// Recent batch ids, in memory and on disk.
pub struct BatchIds {
    path: PathBuf,
    dir: PathBuf,
    file: File,
    set: HashSet<Box<[u8]>>,
    order: VecDeque<Box<[u8]>>,
    on_disk: usize,
    /// Ids appended since the last fsync of the file.
    unsynced: bool,
    keep: usize,
}

impl BatchIds {
    /// Loads `dir/batch-ids` (a torn last entry is ignored), keeping at most `keep` ids.
    pub fn open(dir: &Path, keep: usize) -> io::Result<Self> {
        let path = dir.join(FILE_NAME);
        let mut bytes = Vec::new();
        if let Ok(mut f) = File::open(&path) {
            f.read_to_end(&mut bytes)?;
        }
        let mut ids = BatchIds {
            file: OpenOptions::new().create(true).append(true).open(&path)?,
            path,
            dir: dir.to_owned(),
            set: HashSet::new(),
            order: VecDeque::new(),
            on_disk: 0,
            unsynced: false,
            keep: keep.max(1),
        };
        let mut i = 0;
        while i < bytes.len() {
            let n = bytes[i] as usize;
            let Some(id) = bytes.get(i + 1..i + 1 + n) else {
                break;
            };
            ids.remember(id);
            ids.on_disk += 1;
            i += 1 + n;
        }
        if i < bytes.len() {
            // A torn append: rewrite without it so later appends stay aligned.
            ids.compact()?;
        }
        Ok(ids)
    }

    /// True if `id` was stored recently.
    pub fn contains(&self, id: &[u8]) -> bool {
        self.set.contains(id)
    }

    /// Adds an id in memory only (recovery from segment records, or before `append`);
    /// true if it was not known.
    pub fn remember(&mut self, id: &[u8]) -> bool {
        let new = self.set.insert(id.into());
        if new {
            self.order.push_back(id.into());
            while self.order.len() > self.keep {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
        new
    }

    /// Appends `ids` to the file, without an fsync ([`BatchIds::sync`] makes them
    /// durable); compacts (durably) when the file grew too long.
    pub fn append(&mut self, ids: &[&[u8]]) -> io::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for id in ids {
            buf.push(id.len() as u8);
            buf.extend_from_slice(id);
        }
        self.file.write_all(&buf)?;
        self.unsynced = true;
        self.on_disk += ids.len();
        if self.on_disk > 2 * self.keep {
            self.compact()?;
        }
        Ok(())
    }

    /// Fsyncs the ids appended since the last call, if any.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// [`BatchIds::append`] then [`BatchIds::sync`].
    pub fn persist(&mut self, ids: &[&[u8]]) -> io::Result<()> {
        self.append(ids)?;
        self.sync()
    }

    fn compact(&mut self) -> io::Result<()> {
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let mut buf = Vec::new();
        for id in &self.order {
            buf.push(id.len() as u8);
            buf.extend_from_slice(id);
        }
        super::write_durably(&tmp, &self.path, &buf)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.on_disk = self.order.len();
        self.unsynced = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_forgets_the_oldest() {
        let d = tempfile::tempdir().unwrap();
        let mut ids = BatchIds::open(d.path(), 3).unwrap();
        for id in [&b"a"[..], b"b", b"c", b"d"] {
            ids.remember(id);
            ids.persist(&[id]).unwrap();
        }
        assert!(!ids.contains(b"a") && ids.contains(b"d"));
        drop(ids);
        let ids = BatchIds::open(d.path(), 3).unwrap();
        assert!(!ids.contains(b"a"));
        assert!(ids.contains(b"b") && ids.contains(b"c") && ids.contains(b"d"));
    }

    #[test]
    fn a_torn_last_entry_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE_NAME), b"\x01x\x05ab").unwrap();
        let mut ids = BatchIds::open(d.path(), 10).unwrap();
        assert!(ids.contains(b"x"));
        ids.remember(b"yy");
        ids.persist(&[b"yy"]).unwrap();
        drop(ids);
        let ids = BatchIds::open(d.path(), 10).unwrap();
        assert!(ids.contains(b"x") && ids.contains(b"yy"));
    }
}
