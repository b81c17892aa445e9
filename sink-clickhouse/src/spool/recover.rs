//! What [`super::Spool::open`] finds on disk: the segments (torn tails cut, damaged
//! ones quarantined, the batch ids they hold put where `batch_ids` says), and the
//! spool's identity — its random id and the segment ids it may use — so that no dedup
//! token is ever issued twice.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::batch_ids::BatchIds;
use super::record;
use super::segment::{parse_name, records_after, scan, segment_path, AfterDamage};
use super::{
    cut_path, fsync_dir, remove_if_there, write_durably, Recovered, SpoolConfig, RECYCLED_EXT,
};

/// The spool id and the first segment id to use, given the segments recovered (`rec`,
/// and the id after the highest one found, `found_next`).
///
/// Segment ids (and with the spool id, every dedup token) are never used twice: they
/// continue from the reserved high-water mark, which the writer moves ahead durably
/// before it uses an id past it. A spool without that file (made by an older build)
/// that holds no segment gets a new spool id, since the ids of segments loaded and
/// deleted before cannot be known.
pub(super) fn identity(dir: &Path, rec: &Recovered, found_next: u64) -> io::Result<(String, u64)> {
    let reserved = read_next_segment(dir)?;
    let spool_id = if reserved.is_none() && rec.segments == 0 {
        create_id(dir)?
    } else {
        load_or_create_id(dir)?
    };
    Ok((spool_id, found_next.max(reserved.unwrap_or(0))))
}

fn load_or_create_id(dir: &Path) -> io::Result<String> {
    let p = dir.join("spool-id");
    if let Ok(s) = fs::read_to_string(&p) {
        let s = s.trim();
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(s.to_owned());
        }
    }
    create_id(dir)
}

/// File (in the spool dir) holding the first segment id not yet reserved.
pub(crate) const NEXT_SEGMENT_FILE: &str = "next-segment";

/// The reserved high-water mark of segment ids, if the file is there (a damaged file is
/// an error: guessing could reuse an id).
fn read_next_segment(dir: &Path) -> io::Result<Option<u64>> {
    match fs::read_to_string(dir.join(NEXT_SEGMENT_FILE)) {
        Ok(s) => s.trim().parse().map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{NEXT_SEGMENT_FILE}: {e}: {s:?}"),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reserves segment ids below `next` (tmp + rename + dir fsync).
pub(crate) fn write_next_segment(dir: &Path, next: u64) -> io::Result<()> {
    write_durably(
        &dir.join(format!("{NEXT_SEGMENT_FILE}.tmp")),
        &dir.join(NEXT_SEGMENT_FILE),
        next.to_string().as_bytes(),
    )
}

/// A new random spool id, written durably.
fn create_id(dir: &Path) -> io::Result<String> {
    let p = dir.join("spool-id");
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| io::Error::other(e.to_string()))?;
    let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
    write_durably(&dir.join("spool-id.tmp"), &p, id.as_bytes())?;
    Ok(id)
}

pub(super) fn quarantine_file(cfg: &SpoolConfig, path: &Path, reason: &str) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let mut to = cfg.quarantine_dir.join(&name);
    let mut n = 1;
    while to.exists() {
        to = cfg.quarantine_dir.join(format!("{name}.{n}"));
        n += 1;
    }
    let name = to
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    fs::rename(path, &to)?;
    // A quarantined segment is replayed by hand, whole: its cut has no use left.
    remove_if_there(&cut_path(path))?;
    fs::write(cfg.quarantine_dir.join(format!("{name}.reason")), reason)?;
    fsync_dir(&cfg.quarantine_dir)?;
    fsync_dir(&cfg.dir)?;
    tracing::error!(segment = %path.display(), to = %to.display(), reason, "spool segment quarantined");
    Ok(to)
}

/// The loaded segments' files kept for reuse (`<id>.free`): the first
/// `--spool-recycle` of them are kept, the others deleted. Returns them with the id
/// after the highest their names and headers hold: a kept file's records verify with
/// its old segment's id, which must never name a new segment (were the `next-segment`
/// file lost).
pub(super) fn recycled(cfg: &SpoolConfig) -> io::Result<(Vec<PathBuf>, u64)> {
    let mut found = Vec::new();
    for e in fs::read_dir(&cfg.dir)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == RECYCLED_EXT) {
            found.push(path);
        }
    }
    found.sort();
    let mut next = 0u64;
    let mut kept = Vec::new();
    let mut removed = false;
    for path in found {
        let named = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok());
        let mut head = [0u8; record::SEGMENT_HEADER_LEN];
        let header = fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .ok()
            .and_then(|()| record::SegmentHeader::decode(&head));
        for id in [named, header.map(|h| h.id)].into_iter().flatten() {
            next = next.max(id.saturating_add(1));
        }
        if kept.len() < cfg.recycle && header.is_some() {
            kept.push(path);
        } else {
            fs::remove_file(&path)?;
            removed = true;
        }
    }
    if removed {
        fsync_dir(&cfg.dir)?;
    }
    Ok((kept, next))
}

/// Scans every segment: keeps good ones (sealing the newest), cuts a torn tail of the
/// newest, quarantines the rest. Returns (report, bytes on disk, next segment id).
pub(super) fn recover(cfg: &SpoolConfig, ids: &mut BatchIds) -> io::Result<(Recovered, u64, u64)> {
    let mut segs = Vec::new();
    for e in fs::read_dir(&cfg.dir)? {
        let e = e?;
        if let Some((id, sealed)) = e.file_name().to_str().and_then(parse_name) {
            segs.push((id, sealed, e.path()));
        }
    }
    segs.sort_by_key(|s| s.0);
    let newest = segs.last().map(|s| s.0);
    let mut rec = Recovered::default();
    let mut bytes = 0u64;
    // Every segment is scanned before anything is cut, renamed or quarantined, so that
    // the batch ids are where `batch_ids` says first: those of segments found unsealed
    // (open at a crash), never fsynced in the batch-ids file, are written back to it;
    // those of sealed segments are in it, and where it lacks them (it was lost, or they
    // fell out of its window) they are remembered as the oldest, and the file rewritten.
    // Only the newest `batch_ids_keep` ids of sealed segments are held meanwhile, so
    // that memory does not grow with the spool.
    //
    // A damaged segment's ids are those of every record that verifies, after the
    // damage too (`records_after`), not only those of the valid prefix: a segment
    // damaged in the middle is quarantined whole below, the records after the damage
    // with it, and those were fsynced and acknowledged. Were their ids forgotten (the
    // scan stops at the first bad record, and the writer's unfsynced appends to the
    // batch-ids file do not outlive a power loss), a retry of those batches would be
    // stored a second time, the first copy sitting in quarantine. Remembered, the retry
    // is answered "already stored", as it is for the ids of the prefix and for a sealed
    // segment the loader quarantines (its ids are in the batch-ids file): the
    // quarantined file is then the one copy of those rows, and its reason says so. (A
    // wrong id would take bytes inside a damaged payload that frame a whole record with
    // its CRC32C and name a batch not yet sent. Event strings are stored raw, so a
    // client could plant such bytes, but they count only if damage then falls right
    // before them, and the id must be one the edge will use — its queue's message ids.
    // Not a case worth a certain duplicate. Since format version 2 the checksum covers
    // the segment id too, which such bytes would have to match as well; the record's
    // index it does not cover.)
    let mut scans = Vec::with_capacity(segs.len());
    let mut sealed_ids = std::collections::VecDeque::new();
    let mut unsealed_ids = Vec::new();
    for (id, sealed, path) in &segs {
        let mut s = scan(path)?;
        // The records after damage verify with the header's seed. Should the header's
        // id be damaged, they are looked for with the seed of the id the name says as
        // well; with the header unreadable, with that one and with none (format 1).
        // Never with none under a readable version-2 header: a reused file may hold
        // a format-1 segment's records past this one's.
        let mut seeds = match s.header {
            Some(h) if h.version >= 2 => vec![h.record_seed(), record::record_seed(*id)],
            Some(h) => vec![h.record_seed()],
            None => vec![record::record_seed(*id), 0],
        };
        seeds.dedup();
        let after_damage = |off: u64| -> io::Result<AfterDamage> {
            let mut best = AfterDamage::default();
            for &seed in &seeds {
                let found = records_after(path, off, seed)?;
                if found.records > best.records {
                    best = found;
                }
            }
            Ok(best)
        };
        let mut after = match s.bad {
            // Best effort: a read error past the damage (another bad sector) must not
            // keep the sink from starting; the segment is then quarantined whole.
            Some((off, _)) => after_damage(off).unwrap_or_else(|e| {
                tracing::error!(segment = %path.display(), error = %e, "reading past the damage failed; the segment is quarantined whole");
                AfterDamage {
                    unreadable: true,
                    ..AfterDamage::default()
                }
            }),
            None => AfterDamage::default(),
        };
        let found = std::mem::take(&mut s.batch_ids)
            .into_iter()
            .chain(std::mem::take(&mut after.batch_ids));
        if *sealed {
            for b in found {
                sealed_ids.push_back(b);
                if sealed_ids.len() > cfg.batch_ids_keep.max(1) {
                    sealed_ids.pop_front();
                }
            }
        } else {
            unsealed_ids.extend(found);
        }
        scans.push((s, after));
    }
    // Newest first, so that the oldest end up at the front.
    let mut lacked = false;
    for b in sealed_ids.iter().rev() {
        lacked |= ids.remember_oldest(b);
    }
    drop(sealed_ids);
    let missing: Vec<&[u8]> = unsealed_ids
        .iter()
        .map(Vec::as_slice)
        .filter(|b| ids.remember(b))
        .collect();
    let written_back = if lacked {
        ids.rewrite()
    } else {
        ids.persist(&missing)
    };
    // A full disk must not keep the sink from starting and draining the spool: the
    // segments found unsealed then stay so (not loaded) until a start that can write
    // their ids back; the ids are known in memory meanwhile.
    let keep_unsealed = match written_back {
        Ok(()) => false,
        Err(e) => {
            tracing::error!(error = %e, "writing batch ids back to the batch-ids file failed; segments found unsealed stay unsealed until a restart");
            true
        }
    };
    let quarantine = |rec: &mut Recovered, path: &Path, reason: String| -> io::Result<()> {
        quarantine_file(cfg, path, &reason)?;
        rec.quarantined.push((path.to_owned(), reason));
        Ok(())
    };
    for ((id, sealed, path), (s, after)) in segs.iter().cloned().zip(scans) {
        let is_newest_open = !sealed && Some(id) == newest;
        if let Some((off, reason)) = s.bad {
            let torn_tail = is_newest_open
                && (s.header.is_some() || s.file_len < record::SEGMENT_HEADER_LEN as u64)
                && after.records == 0
                && !after.unreadable;
            if !torn_tail && !sealed && keep_unsealed {
                // Its ids are in memory only: quarantined now, the segment would take
                // them out of the next start's sight. It stays (not loaded, being
                // unsealed) until a start that can write them back quarantines it.
                tracing::error!(segment = %path.display(), offset = off, reason, "damaged spool segment found unsealed; quarantined at a restart that can write its batch ids back");
                bytes += s.file_len;
                continue;
            }
            if !torn_tail {
                // Damage before records that verify is not a torn tail: the whole
                // segment is quarantined (DESIGN.md: "anywhere else it MUST quarantine
                // the segment"), as the loader does with a damaged sealed one, rather
                // than the records that verify kept. Records carry no index (nor,
                // before format version 2, their segment), so a record found past
                // damage by searching for one cannot be told from bytes inside a
                // damaged payload that happen to frame one, nor the records lost in
                // the damage counted; and
                // an operator replaying the file by hand gets every byte the sink
                // wrote. Nothing is deleted, and the ids of the records that verify
                // are remembered (above).
                let reason = match after.records {
                    0 => format!("{reason} at offset {off}"),
                    n => format!(
                        "{reason} at offset {off}; after it {n} record(s) ({} rows) verify \
                         and their batch ids are remembered (retries answered already \
                         stored): this file is their only copy",
                        after.rows
                    ),
                };
                quarantine(&mut rec, &path, reason)?;
                continue;
            }
            tracing::warn!(segment = %path.display(), offset = off, cut = s.file_len - s.valid_len, reason, "cutting torn tail of the newest spool segment");
            rec.cut_bytes += s.file_len - s.valid_len;
            if s.header.is_some() {
                let f = fs::OpenOptions::new().write(true).open(&path)?;
                f.set_len(s.valid_len)?;
                f.sync_all()?;
            }
        }
        if s.records == 0 {
            fs::remove_file(&path)?;
            fsync_dir(&cfg.dir)?;
            continue;
        }
        if !sealed {
            if keep_unsealed {
                bytes += s.valid_len;
                continue;
            }
            fs::rename(&path, segment_path(&cfg.dir, id, true))?;
            fsync_dir(&cfg.dir)?;
        }
        rec.segments += 1;
        rec.rows += s.rows;
        bytes += s.valid_len;
    }
    // Ids of quarantined segments are never reused: their dedup tokens may be known to
    // the server already.
    let mut next = segs.iter().map(|s| s.0 + 1).max().unwrap_or(1);
    for e in fs::read_dir(&cfg.quarantine_dir)? {
        if let Some((id, _)) = e?.file_name().to_str().and_then(parse_name) {
            next = next.max(id + 1);
        }
    }
    Ok((rec, bytes, next))
}
