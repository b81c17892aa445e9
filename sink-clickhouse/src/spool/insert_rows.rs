//! Which `--insert-rows` each segment is cut with: recorded in `spool/insert-rows`, so
//! that a replay after a restart with another `--insert-rows` cuts a segment into the
//! chunks its first attempt wrote — the same dedup tokens, and in Parquet mode the same
//! file names (overwritten, not written again beside the first).
//!
//! The file holds one line `<first segment id> <rows>` per setting, oldest first: a
//! segment is cut with the rows of the last line at or below its id. A start whose
//! setting differs from the last line's appends a line from its first segment id, so
//! the segments a run writes are cut with that run's setting, and those of earlier
//! runs keep theirs, on every pass, whoever loads them.
//!
//! Why per spool and not beside each segment (in its `.cut`): the chunks depend on the
//! setting for every segment of more than one record — a smaller setting splits even a
//! segment first loaded as one chunk — so a per-segment record would have to be durable
//! before the first insert of nearly every segment: two more fsyncs per segment on the
//! loader's hot path. This costs one small read per start, and one durable write per
//! start that changes the setting. The price: a backlog written before such a restart
//! is loaded with the setting it was written under, also its segments whose load had
//! not started (their sizes were fixed by `--flush-rows` at that time anyway).

use std::fs;
use std::io;
use std::path::Path;

use super::segment::parse_name;
use super::{write_durably, Spool};

/// File (in the spool dir) of the settings.
pub(crate) const INSERT_ROWS_FILE: &str = "insert-rows";

/// The rows per chunk of each segment (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertRows {
    /// `(first segment id, rows)`, ids ascending; never empty.
    from: Vec<(u64, usize)>,
}

impl InsertRows {
    /// `rows` for every segment.
    pub fn only(rows: usize) -> Self {
        InsertRows {
            from: vec![(0, rows)],
        }
    }

    /// The rows per chunk of segment `id`.
    pub fn of(&self, id: u64) -> usize {
        self.from[self.entry(id)].1
    }

    /// The entry `id` is cut with: the last at or below it (the first for an id below
    /// them all).
    fn entry(&self, id: u64) -> usize {
        self.from
            .iter()
            .rposition(|&(from, _)| from <= id)
            .unwrap_or(0)
    }

    fn parse(s: &str) -> Result<Self, String> {
        let mut from = Vec::new();
        for line in s.lines().filter(|l| !l.trim().is_empty()) {
            let mut f = line.split_whitespace().map(str::parse::<u64>);
            let (Some(Ok(id)), Some(Ok(rows)), None) = (f.next(), f.next(), f.next()) else {
                return Err(format!("not `<segment id> <rows>`: {line:?}"));
            };
            if rows == 0 || from.last().is_some_and(|&(last, _)| last >= id) {
                return Err(format!("out of order or zero rows: {line:?}"));
            }
            from.push((id, usize::try_from(rows).unwrap_or(usize::MAX)));
        }
        if from.is_empty() {
            return Err("empty".into());
        }
        Ok(InsertRows { from })
    }

    fn text(&self) -> String {
        self.from
            .iter()
            .map(|(id, rows)| format!("{id} {rows}\n"))
            .collect()
    }

    /// These settings with `rows` for the segments from `first` on, keeping only the
    /// entries a segment in `present` (ids below `first`) is cut with.
    fn then(&self, present: &[u64], first: u64, rows: usize) -> Self {
        let mut present = present.to_vec();
        present.sort_unstable();
        let mut from: Vec<(u64, usize)> = Vec::new();
        let mut last = None;
        for id in present {
            let i = self.entry(id);
            if last != Some(i) {
                last = Some(i);
                // An id below every entry is cut with the first: it starts there now,
                // so that every kept entry starts below `first`.
                let (at, r) = self.from[i];
                from.push((at.min(id), r));
            }
        }
        from.push((first, rows));
        InsertRows { from }
    }
}

impl Spool {
    /// The rows per chunk of each segment, this run's `--insert-rows` being `rows`
    /// (recorded before it is first used; see the module doc). Decided once per spool
    /// opened: a second loader of the same spool gets the first one's settings, whose
    /// chunks may be in flight. Blocking (reads, maybe writes, a small file).
    ///
    /// An error only when the file exists and cannot be read (then nothing is settled,
    /// and the caller tries again: a history taken for absent could cut a segment
    /// loaded in part differently, and store its rows twice). A file that cannot be
    /// written leaves the recorded settings in force for this run too (the next start
    /// can record the new one); a file that does not parse is written anew with `rows`
    /// for every segment, as a spool from a build before this file is.
    pub fn insert_rows(&self, rows: usize) -> io::Result<InsertRows> {
        let first = self.shared.first_segment;
        if let Some(got) = self.shared.insert_rows.get() {
            if got.of(first) != rows {
                tracing::warn!(
                    rows,
                    in_force = got.of(first),
                    "--insert-rows not applied: a loader of this spool settled another value"
                );
            }
            return Ok(got.clone());
        }
        let settled = settle(&self.shared.cfg.dir, first, rows)?;
        Ok(self.shared.insert_rows.get_or_init(|| settled).clone())
    }
}

fn settle(dir: &Path, first: u64, rows: usize) -> io::Result<InsertRows> {
    let path = dir.join(INSERT_ROWS_FILE);
    let old = match fs::read_to_string(&path) {
        Ok(s) => match InsertRows::parse(&s) {
            Ok(old) => Some(old),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "unreadable insert-rows file; writing it anew (replays of segments loaded in part before may be cut differently)");
                None
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let new = match &old {
        Some(old) if old.of(first) == rows => return Ok(old.clone()),
        Some(old) => match present_before(dir, first) {
            Ok(present) => old.then(&present, first, rows),
            Err(e) => {
                tracing::warn!(error = %e, "listing the spool failed; --insert-rows is applied from the next start");
                return Ok(old.clone());
            }
        },
        None => InsertRows::only(rows),
    };
    match write_durably(
        &dir.join(format!("{INSERT_ROWS_FILE}.tmp")),
        &path,
        new.text().as_bytes(),
    ) {
        Ok(()) => {
            if let Some(old) = &old {
                tracing::info!(
                    rows,
                    was = old.of(first),
                    from_segment = first,
                    "--insert-rows changed: segments written before keep the value they were written under"
                );
            }
            Ok(new)
        }
        Err(e) => {
            tracing::warn!(error = %e, "recording --insert-rows failed; it is applied from a start that can record it");
            Ok(old.unwrap_or(new))
        }
    }
}

/// The ids of the segments (open or sealed) in `dir` below `first`: those of earlier
/// runs.
fn present_before(dir: &Path, first: u64) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for e in fs::read_dir(dir)? {
        if let Some((id, _)) = e?.file_name().to_str().and_then(parse_name) {
            if id < first {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_is_cut_with_the_last_setting_at_or_below_its_id() {
        let r = InsertRows::parse("0 100\n10 20\n25 7\n").unwrap();
        assert_eq!(
            [r.of(0), r.of(9), r.of(10), r.of(24), r.of(25)],
            [100, 100, 20, 20, 7]
        );
        assert_eq!(r.of(u64::MAX), 7);
        // Below every entry (they were pruned): the first.
        let r = InsertRows::parse("5 3\n").unwrap();
        assert_eq!(r.of(1), 3);
        assert_eq!(InsertRows::parse(&r.text()).unwrap(), r);
        for bad in ["", "5", "5 x", "5 3 1", "5 0", "5 3\n5 4", "6 3\n5 4"] {
            assert!(InsertRows::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_new_setting_keeps_only_the_entries_present_segments_use() {
        let r = InsertRows::parse("0 100\n10 20\n25 7\n").unwrap();
        // Segments 12 and 13 (cut with 20) remain; 0..10 and 25.. are gone.
        let n = r.then(&[12, 13], 40, 50);
        assert_eq!(n.text(), "10 20\n40 50\n");
        assert_eq!([n.of(12), n.of(13), n.of(40)], [20, 20, 50]);
        assert_eq!(r.then(&[], 40, 50).text(), "40 50\n");
        assert_eq!(r.then(&[30, 3], 40, 50).text(), "0 100\n25 7\n40 50\n");
        // A segment below every entry (put back by hand, say) keeps the first, which
        // then starts at it; an entry from this run's first id is replaced.
        let r = InsertRows::parse("10 20\n40 7\n").unwrap();
        let n = r.then(&[4, 12], 40, 50);
        assert_eq!(n.text(), "4 20\n40 50\n");
        assert_eq!(InsertRows::parse(&n.text()).unwrap(), n);
    }
}
