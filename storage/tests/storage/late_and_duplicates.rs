//! Late data lands in its own time partition; a point written twice is stored once.

use pinhouse_storage::Point;

use crate::common::*;

const DAY: i64 = 86_400_000_000;
/// 2026-11-25T00:00:00Z
const NOV25: i64 = 1_795_564_800_000_000;

fn partition_of(path: &std::path::Path) -> String {
    path.parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn late_points_land_in_the_partition_of_their_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let now: Vec<Point> = (0..50)
        .map(|i| Point::number(1, 7, 0, NOV25 + 3 * DAY + i, i as f64))
        .collect();
    s.write(now.clone()).unwrap();
    s.flush().unwrap();
    // A device's offline buffer from three days earlier arrives after newer data was flushed.
    let late: Vec<Point> = (0..20)
        .map(|i| Point::number(1, 7, 0, NOV25 + 12 * 3_600_000_000 + i, 100.0 + i as f64))
        .collect();
    s.write(late.clone()).unwrap();
    s.flush().unwrap();
    let snap = s.snapshot();
    let mut parts: Vec<(String, i64, i64)> = snap
        .files
        .iter()
        .map(|f| (partition_of(&f.path), f.min_ts_us, f.max_ts_us))
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        [
            ("date=2026-11-25".to_string(), late[0].ts_us, late[19].ts_us),
            ("date=2026-11-28".to_string(), now[0].ts_us, now[49].ts_us),
        ]
    );
    // The late points do not replace the newer last value.
    assert_eq!(s.last_value(1, 7, 0).unwrap().ts_us, now[49].ts_us);
    let all: Vec<Point> = now.iter().chain(&late).cloned().collect();
    assert_eq!(all_rows(&s), expected(&all));
}

#[test]
fn a_point_written_twice_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = batch(1, 200, 1_000);
    s.write(a.clone()).unwrap();
    // The whole batch again (a device re-sending its buffer), then a mix of repeats and news.
    s.write(a.clone()).unwrap();
    let mut mixed: Vec<Point> = a[50..80].to_vec();
    let fresh = batch(1, 10, 5_000);
    mixed.extend(fresh.iter().cloned());
    mixed.extend(a[190..].iter().cloned());
    // Same key, other value: a different point, kept.
    let other = Point::number(1, a[10].device_id, a[10].pin, a[10].ts_us, -1.0);
    mixed.push(other.clone());
    s.write(mixed).unwrap();
    let mut want: Vec<Point> = a.iter().chain(&fresh).cloned().collect();
    want.push(other);
    assert_eq!(all_rows(&s), expected(&want), "in the memtable");
    assert_eq!(s.stats().duplicates_dropped, 200 + 30 + 10);

    s.flush().unwrap();
    assert_eq!(all_rows(&s), expected(&want), "in Parquet");
    // A repeat of the newest values after the flush is still recognised.
    let newest: Vec<Point> = fresh[5..].to_vec();
    s.write(newest).unwrap();
    assert_eq!(all_rows(&s), expected(&want), "newest repeated after flush");
    s.close().unwrap();

    // Replaying a WAL that holds the repeats gives the same rows.
    let s = open(dir.path());
    assert_eq!(all_rows(&s), expected(&want), "after restart");
}

#[test]
fn repeats_in_the_wal_are_dropped_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = batch(2, 100, 0);
    s.write(a.clone()).unwrap();
    s.write(a[..40].to_vec()).unwrap();
    s.close().unwrap(); // nothing flushed: all of it is replayed
    let s = open(dir.path());
    assert_eq!(s.recovery().wal_records, 2);
    assert_eq!(all_rows(&s), expected(&a));
    s.flush().unwrap();
    assert_eq!(all_rows(&s), expected(&a));
}
