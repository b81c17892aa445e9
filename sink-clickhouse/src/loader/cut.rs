//! The end of a burst: the last sealed segment cut in two halves, inserted at once, the
//! cut recorded on disk before the first insert so that a replay cuts the same way.

use std::time::Duration;

use super::Loader;
use crate::spool::segment::record_rows;
use crate::spool::Sealed;

/// Rows each half of a cut segment has at least: below, the second insert saves less
/// than the server's cost of one more part.
pub const SPLIT_MIN_ROWS: u64 = 10_000;

/// How long no event may have reached the spool before a lone segment is cut.
pub const QUIET: Duration = Duration::from_millis(20);

/// The record that starts the second half of a segment of records of `rows` rows:
/// the first at which half the rows are behind. `None` when a half would have fewer
/// than `min` rows.
fn half_way(rows: &[u32], min: u64) -> Option<u32> {
    let total: u64 = rows.iter().map(|&r| u64::from(r)).sum();
    let mut before = 0u64;
    for (i, &r) in rows.iter().enumerate() {
        if before * 2 >= total {
            return (before >= min && total - before >= min)
                .then(|| u32::try_from(i).ok())
                .flatten();
        }
        before += u64::from(r);
    }
    None
}

impl Loader {
    /// Where `seg` is cut in two, if it is: the cut recorded on an earlier pass, or a
    /// new one when no segment was sealed after it, no event has arrived for
    /// [`QUIET`] (the end of a burst, not a lull between two seals of a steady
    /// load) and each half has at least [`SPLIT_MIN_ROWS`] rows. Its two halves are
    /// then inserted at once, by two server threads instead of one; a steady load
    /// keeps whole segments, which cost the server less per row (BENCHMARKS.md). The
    /// cut is on disk before the first insert, so a replay cuts the same way.
    pub(super) async fn cut_of(&self, seg: &Sealed, last_sealed: bool) -> Option<u32> {
        match self.spool.read_cut(seg) {
            Ok(Some(cut)) => return Some(cut),
            Ok(None) => {}
            Err(e) => {
                // Not written by us as it is: load whole rather than guess.
                tracing::error!(error = %e, segment = %seg.path.display(), "unreadable segment cut; loading the segment whole");
                return None;
            }
        }
        if !last_sealed || self.cfg.concurrency < 2 {
            return None;
        }
        let path = seg.path.clone();
        let rows = match tokio::task::spawn_blocking(move || record_rows(&path)).await {
            Ok(Ok(rows)) => rows,
            _ => return None,
        };
        let cut = half_way(&rows, SPLIT_MIN_ROWS)?;
        // Under a steady load a round comes every few ms: the wait ends at the first.
        // The quiet is counted from the last round written, not from now: a segment
        // sealed for idleness (`--flush-idle`, 25 ms) has been quiet that long already,
        // and is cut at once (the wait was 20 ms more at the end of every burst).
        let rounds = self.spool.written().1;
        loop {
            let quiet = self.spool.quiet_for();
            if quiet >= QUIET {
                break;
            }
            tokio::time::sleep((QUIET - quiet).min(QUIET / 10)).await;
            if self.spool.written().1 != rounds {
                return None;
            }
        }
        let (spool, s) = (self.spool.clone(), seg.clone());
        match tokio::task::spawn_blocking(move || spool.write_cut(&s, cut)).await {
            Ok(Ok(())) => Some(cut),
            other => {
                tracing::warn!(segment = %seg.path.display(), result = ?other, "recording a segment cut failed; loading it whole");
                // Whole only if the cut is surely not on disk (else a replay cuts it).
                match self.spool.read_cut(seg) {
                    Ok(None) => None,
                    _ => Some(cut),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::half_way;

    #[test]
    fn the_cut_is_where_half_the_rows_are_behind() {
        assert_eq!(half_way(&[10; 6], 10), Some(3));
        // 30 of 60 rows behind at record 1.
        assert_eq!(half_way(&[30, 10, 10, 10], 10), Some(1));
        assert_eq!(half_way(&[50, 5, 5], 1), Some(1));
        // Half the rows are behind only past the last record: no second half.
        assert_eq!(half_way(&[5, 5, 50], 1), None);
        // A half below the minimum, or one record: whole.
        assert_eq!(half_way(&[10; 6], 31), None);
        assert_eq!(half_way(&[50, 5, 5], 11), None);
        assert_eq!(half_way(&[100_000], 1), None);
        assert_eq!(half_way(&[], 0), None);
    }
}
