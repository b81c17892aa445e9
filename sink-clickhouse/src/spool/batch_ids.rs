//! The persistent record of recent `/v1/batches` batch ids, so a redelivered batch is
//! answered "already stored" and stored once.
//!
//! File `batch-ids` in the spool dir: a sequence of `u8 length + id bytes` (ids are
//! never empty, so a zero length is the end: a tail of zeros left by a crash is cut).
//!
//! When an id is durable where: from its batch's acknowledgement, in the record header
//! of the segment that holds the batch (fsynced before the answer). The spool writer
//! appends each round's ids to this file after the round's fsync, without an fsync of
//! its own, and fsyncs the file before it renames the segment to sealed
//! ([`BatchIds::sync`]); only a sealed segment is loaded, and deleted, so a segment's
//! ids are durable here before it can leave the spool. When that fsync fails the
//! segment is left unsealed (`.open`, not loaded) and the spool refuses writes; so is
//! a segment whose failed round could not be cut back. After a failed append or fsync
//! the file's tail is not trusted: nothing more is appended, and the next
//! [`BatchIds::sync`] rewrites the file from memory instead. A failed append is logged,
//! not the round's failure: its rows and ids are stored.
//!
//! At start-up, before it cuts, renames or quarantines any segment, recovery fsyncs
//! the file (after a `kill -9` its last appends may be in the page cache only) and
//! writes back to it the ids of every segment it finds unsealed — the one open at the
//! crash — since those were never fsynced here (of a damaged one, the ids of every
//! record that verifies, after the damage too, though the segment is quarantined). Ids
//! of sealed segments are in the file already; where it lacks them (it was lost, or they fell out of the window) they are
//! remembered as the oldest and the file is rewritten from memory. If that write-back
//! fails (a full disk), the segments found unsealed stay unsealed — damaged ones are not
//! quarantined either, which would take their ids out of the next start's sight — and
//! the sink still starts and drains the sealed ones.
//!
//! The file is rewritten (tmp + rename + dir fsync) when it holds twice the configured
//! number of ids; the oldest are forgotten.
use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// File name inside the spool dir.
pub const FILE_NAME: &str = "batch-ids";
/// Longest accepted batch id, in bytes (it is stored with a one-byte length).
pub const MAX_BATCH_ID_LEN: usize = 255;
/// Most ids one `/v1/batches` request may carry (`X-Batch-Ids`, one per record batch):
/// the ceiling of `--max-batch-ids`. A group-commit round stops taking requests
/// [`MAX_IDS_PER_REQUEST`] short of the most ids a record holds, so one request always
/// fits the round that takes it.
pub const MAX_IDS_PER_REQUEST: usize = 10_000;

/// Recent batch ids, in memory and on disk.
pub struct BatchIds {
    path: PathBuf,
    dir: PathBuf,
    file: File,
    set: HashSet<Box<[u8]>>,
    order: VecDeque<Box<[u8]>>,
    on_disk: usize,
    /// Bytes may have been appended since the last fsync of the file.
    unsynced: bool,
    /// An append or an fsync failed: the file's tail is not trusted, and the next
    /// [`BatchIds::sync`] rewrites the file from memory.
    poisoned: bool,
    keep: usize,
}

impl BatchIds {
    /// Loads `dir/batch-ids`, keeping at most `keep` ids. A torn last entry, or a zero
    /// length and all after it, is cut (the file is rewritten without it).
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
            // What a killed process appended may be in the page cache only.
            unsynced: !bytes.is_empty(),
            poisoned: false,
            keep: keep.max(1),
        };
        let mut i = 0;
        while i < bytes.len() {
            let n = bytes[i] as usize;
            if n == 0 {
                break;
            }
            let Some(id) = bytes.get(i + 1..i + 1 + n) else {
                break;
            };
            ids.remember(id);
            ids.on_disk += 1;
            i += 1 + n;
        }
        if i < bytes.len() {
            // A torn append or a tail of zeros: rewrite without it so later appends
            // stay aligned.
            ids.rewrite()?;
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

    /// Adds an id in memory as the oldest one, if the window has room for it and it
    /// is not known (recovery, for the ids of sealed segments that the file lacks): it
    /// never pushes a newer id out.
    /// True if it was added.
    pub fn remember_oldest(&mut self, id: &[u8]) -> bool {
        let added = self.order.len() < self.keep && self.set.insert(id.into());
        if added {
            self.order.push_front(id.into());
        }
        added
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
        if self.poisoned {
            // The file's tail is not trusted: nothing more goes after it. The ids are in
            // memory and in their segment's records, and the next `sync` rewrites the
            // file from memory.
            return Ok(());
        }
        self.unsynced = true;
        if let Err(e) = self.file.write_all(&buf) {
            self.poisoned = true;
            return Err(e);
        }
        self.on_disk += ids.len();
        if self.on_disk > 2 * self.keep {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Makes every id appended so far durable: an fsync of the file if anything was
    /// appended since the last one — or, once an append or an fsync has failed, a
    /// rewrite of the file from memory (a later fsync of the same file could report
    /// success for pages the failed one lost).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.poisoned {
            return self.rewrite();
        }
        if self.unsynced {
            if let Err(e) = self.file.sync_data() {
                self.poisoned = true;
                return Err(e);
            }
            self.unsynced = false;
        }
        Ok(())
    }

    /// [`BatchIds::append`] then [`BatchIds::sync`].
    pub fn persist(&mut self, ids: &[&[u8]]) -> io::Result<()> {
        self.append(ids)?;
        self.sync()
    }

    /// Rewrites the file from memory, durably (tmp + rename + dir fsync): the window's
    /// ids, oldest first. Compacts it, and replaces a tail that is not trusted.
    pub fn rewrite(&mut self) -> io::Result<()> {
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let mut buf = Vec::new();
        for id in &self.order {
            buf.push(id.len() as u8);
            buf.extend_from_slice(id);
        }
        let rewritten = super::write_durably(&tmp, &self.path, &buf)
            .and_then(|()| OpenOptions::new().append(true).open(&self.path));
        match rewritten {
            Ok(file) => self.file = file,
            Err(e) => {
                self.poisoned = true;
                return Err(e);
            }
        }
        self.on_disk = self.order.len();
        self.unsynced = false;
        self.poisoned = false;
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

    /// What a killed process appended may be in the page cache only: a file found
    /// non-empty is fsynced at the next `sync`, even with nothing appended since.
    #[test]
    fn a_file_found_non_empty_counts_as_unsynced() {
        let d = tempfile::tempdir().unwrap();
        assert!(!BatchIds::open(d.path(), 10).unwrap().unsynced, "empty");
        std::fs::write(d.path().join(FILE_NAME), b"\x01x").unwrap();
        let mut ids = BatchIds::open(d.path(), 10).unwrap();
        assert!(ids.unsynced);
        ids.persist(&[]).unwrap();
        assert!(!ids.unsynced);
    }

    /// Once an append failed (stood in for by the flag), nothing more is written after
    /// the untrusted tail until the file is rewritten.
    #[test]
    fn nothing_is_appended_after_a_failure() {
        let d = tempfile::tempdir().unwrap();
        let mut ids = BatchIds::open(d.path(), 10).unwrap();
        ids.remember(b"a");
        ids.append(&[b"a"]).unwrap();
        ids.poisoned = true;
        ids.remember(b"b");
        ids.append(&[b"b"]).unwrap();
        assert_eq!(std::fs::read(d.path().join(FILE_NAME)).unwrap(), b"\x01a");
        ids.sync().unwrap();
        assert_eq!(
            std::fs::read(d.path().join(FILE_NAME)).unwrap(),
            b"\x01a\x01b"
        );
    }

    /// A crash can leave zeros where appends were not yet written: a zero length ends
    /// the file (no id is empty), and the rest is cut.
    #[test]
    fn a_zero_length_ends_the_file_and_the_rest_is_cut() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE_NAME), b"\x01x\x00\x00\x00\x02yy").unwrap();
        let ids = BatchIds::open(d.path(), 10).unwrap();
        assert!(ids.contains(b"x") && !ids.contains(b"yy") && !ids.contains(b""));
        assert_eq!(ids.order.len(), 1);
        assert_eq!(std::fs::read(d.path().join(FILE_NAME)).unwrap(), b"\x01x");
    }

    /// After a failed append or fsync the file is not trusted: the next `sync` rewrites
    /// it from memory (here the failure is stood in for by garbage on the file's tail).
    #[test]
    fn after_a_failure_sync_rewrites_the_file_from_memory() {
        let d = tempfile::tempdir().unwrap();
        let mut ids = BatchIds::open(d.path(), 10).unwrap();
        for id in [&b"a"[..], b"bb"] {
            ids.remember(id);
        }
        ids.append(&[b"a", b"bb"]).unwrap();
        ids.file.write_all(b"\x07zz").unwrap();
        ids.poisoned = true;
        ids.sync().unwrap();
        assert!(!ids.poisoned && !ids.unsynced);
        assert_eq!(
            std::fs::read(d.path().join(FILE_NAME)).unwrap(),
            b"\x01a\x02bb"
        );
        // Appends go on from the rewritten file.
        ids.remember(b"c");
        ids.persist(&[b"c"]).unwrap();
        drop(ids);
        let ids = BatchIds::open(d.path(), 10).unwrap();
        assert!(ids.contains(b"a") && ids.contains(b"bb") && ids.contains(b"c"));
    }

    /// `remember_oldest` fills the window from the old end and never pushes out a
    /// newer id.
    #[test]
    fn remembering_the_oldest_never_evicts_a_newer_id() {
        let d = tempfile::tempdir().unwrap();
        let mut ids = BatchIds::open(d.path(), 3).unwrap();
        ids.remember(b"new");
        ids.remember_oldest(b"old-2");
        ids.remember_oldest(b"old-1");
        ids.remember_oldest(b"older");
        assert!(ids.contains(b"new") && ids.contains(b"old-1") && ids.contains(b"old-2"));
        assert!(!ids.contains(b"older"), "the window was full");
        // The next new id pushes out the oldest, "old-1".
        ids.remember(b"newer");
        assert!(!ids.contains(b"old-1") && ids.contains(b"old-2") && ids.contains(b"new"));
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
