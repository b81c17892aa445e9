//! When the open segment is sealed: by rows, by age, when idle (with the row floor
//! for a trickle, without it for the rest of a burst).

use super::*;

#[tokio::test]
async fn seals_by_rows_and_by_age() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_max_rows = 3;
    c.segment_max_age = Duration::from_millis(200);
    let (spool, _) = Spool::open(c).unwrap();
    spool.append_events(batch(&[1, 2, 3])).await.unwrap();
    assert_eq!(sealed_soon(&spool, 1).await, 1, "sealed at 3 rows");
    spool.append_events(batch(&[4])).await.unwrap();
    assert_eq!(spool.sealed().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(spool.sealed().unwrap().len(), 2, "sealed by age");
    assert_eq!(read_all(&spool), vec![1, 2, 3, 4]);
}

/// An idle segment is sealed once it holds `segment_idle_min_rows` rows and nothing
/// was written for `segment_idle`; below those rows, or while writes keep coming
/// faster than that, it stays open (the age seal is an hour away here).
#[tokio::test]
async fn seals_when_idle_with_rows_enough_and_not_while_written_to() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_idle = Duration::from_millis(200);
    c.segment_idle_min_rows = 3;
    let (spool, _) = Spool::open(c).unwrap();
    spool.append_events(batch(&[1, 2])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(spool.sealed().unwrap().len(), 0, "2 rows < 3: not sealed");
    // Writes every 20 ms (far under the 200 ms idle) for 400 ms: the segment stays open.
    for i in 3..23 {
        spool.append_events(batch(&[i])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(spool.sealed().unwrap().len(), 0, "sealed while written to");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(spool.sealed().unwrap().len(), 1, "sealed when idle");
    assert_eq!(read_all(&spool), (1..23).collect::<Vec<_>>());
}

/// The rest of a burst that filled a segment is sealed at the idle time whatever its
/// size; the same few rows without a full segment before them wait (a trickle).
#[tokio::test]
async fn the_rest_of_a_burst_is_sealed_when_idle_however_small() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_idle = Duration::from_millis(100);
    c.segment_idle_min_rows = 1000;
    c.segment_max_rows = 5;
    let (spool, _) = Spool::open(c).unwrap();
    spool.append_events(batch(&[1, 2])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        spool.sealed().unwrap().len(),
        0,
        "a trickle waits for rows or age"
    );
    spool.append_events(batch(&[3, 4, 5])).await.unwrap();
    assert_eq!(sealed_soon(&spool, 1).await, 1, "sealed full at 5 rows");
    spool.append_events(batch(&[6, 7])).await.unwrap();
    assert_eq!(
        sealed_soon(&spool, 2).await,
        2,
        "the burst's 2 last rows, when idle"
    );
    assert_eq!(read_all(&spool), (1..8).collect::<Vec<_>>());
}

/// Traffic over the row floor that fills no segment (single events at tens of
/// thousands a second: segments sealed by age) is no trickle either: its last rows are
/// sealed when idle, not at their segment's age.
#[tokio::test]
async fn the_rest_of_traffic_over_the_floor_is_sealed_when_idle() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_idle = Duration::from_millis(100);
    c.segment_idle_min_rows = 5;
    c.segment_max_age = Duration::from_millis(1500);
    let (spool, _) = Spool::open(c).unwrap();
    spool.append_events(batch(&[0])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(spool.sealed().unwrap().len(), 0, "a trickle waits");
    // A row every 20 ms, never idle, until the segment's age seals it.
    let mut next = 1;
    while spool.sealed().unwrap().is_empty() {
        assert!(next < 200, "never sealed by age");
        spool.append_events(batch(&[next])).await.unwrap();
        next += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(next > 5, "sealed by age with {next} rows: over the floor");
    spool.append_events(batch(&[next])).await.unwrap();
    // `sealed_soon` gives up after 1 s, before this segment's 1.5 s age.
    assert_eq!(sealed_soon(&spool, 2).await, 2, "the last row, when idle");
    assert_eq!(read_all(&spool), (0..=next).collect::<Vec<_>>());
}
