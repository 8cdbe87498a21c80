//! Write, reopen, replay.

use pinhouse_storage::{LastValue, Point, Value};

use crate::common::*;

#[test]
fn reopen_replays_rows_and_last_values() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut written = Vec::new();
    for k in 0..10 {
        let b = batch(7, 50, k * 1000);
        written.extend(b.clone());
        s.write(b).unwrap();
    }
    let before = all_rows(&s);
    assert_eq!(before, expected(&written));
    let lv_before: Vec<_> = (0..5).map(|d| s.last_values(7, d)).collect();
    s.close().unwrap();

    let s = open(dir.path());
    assert_eq!(s.recovery().wal_records, 10);
    assert_eq!(s.recovery().wal_points, 500);
    assert!(s.recovery().torn_tails.is_empty());
    assert_eq!(all_rows(&s), before);
    let lv_after: Vec<_> = (0..5).map(|d| s.last_values(7, d)).collect();
    assert_eq!(lv_after, lv_before);
    // Device 0 pin 0 gets i = 0, 15, 30, 45 (i % 15 == 0); newest is i = 45, ts 9045, a number.
    assert_eq!(
        s.last_value(7, 0, 0),
        Some(LastValue {
            ts_us: 9045,
            value: Value::Number(22.5)
        })
    );
}

#[test]
fn last_values_ignore_late_points_and_survive_flush_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write(vec![
        Point::number(1, 1, 1, 100, 1.0),
        Point::from_text(1, 1, 2, 100, "on"),
    ])
    .unwrap();
    s.write(vec![Point::number(1, 1, 1, 50, 2.0)]).unwrap(); // late, older
    s.flush().unwrap();
    s.write(vec![Point::number(1, 1, 3, 10, 3.0)]).unwrap(); // only in the WAL
    s.write(vec![Point::from_text(1, 1, 2, 100, "off")])
        .unwrap(); // same ts, later write wins
    let expect = vec![
        (
            1,
            LastValue {
                ts_us: 100,
                value: Value::Number(1.0),
            },
        ),
        (
            2,
            LastValue {
                ts_us: 100,
                value: Value::Text("off".into()),
            },
        ),
        (
            3,
            LastValue {
                ts_us: 10,
                value: Value::Number(3.0),
            },
        ),
    ];
    assert_eq!(s.last_values(1, 1), expect);
    s.close().unwrap();

    let s = open(dir.path());
    assert_eq!(s.last_values(1, 1), expect);
    assert_eq!(s.last_value(1, 1, 9), None);
    assert_eq!(s.last_values(1, 2), vec![]);
    s.close().unwrap();

    // Last values also come back when everything is in Parquet and the WAL holds nothing new.
    let s = open(dir.path());
    s.flush().unwrap();
    s.close().unwrap();
    let s = open(dir.path());
    assert_eq!(s.recovery().wal_records, 0);
    assert_eq!(s.last_values(1, 1), expect);
}

#[test]
fn many_reopens_keep_sequence_numbers_growing() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    for round in 0..6 {
        let s = open(dir.path());
        let b = batch(1, 20, round * 100);
        written.extend(b.clone());
        s.write(b).unwrap();
        if round % 2 == 0 {
            s.flush().unwrap();
        }
        assert_eq!(all_rows(&s), expected(&written), "round {round}");
        s.close().unwrap();
    }
    let s = open(dir.path());
    assert_eq!(all_rows(&s), expected(&written));
}

#[test]
fn sequence_continues_after_every_segment_was_deleted() {
    // write → flush → reopen (deletes the covered segment) → reopen (empty WAL) → write → reopen:
    // the new records must get sequence numbers above the catalog's flushed position, or the
    // next replay would skip them as "already in Parquet".
    let dir = tempfile::tempdir().unwrap();
    let a = batch(1, 10, 0);
    let b = batch(1, 10, 100);
    let s = open(dir.path());
    s.write(a.clone()).unwrap();
    s.write(
        a.clone()
            .into_iter()
            .map(|mut p| {
                p.org_id = 2;
                p
            })
            .collect(),
    )
    .unwrap();
    s.flush().unwrap();
    s.close().unwrap();
    open(dir.path()).close().unwrap();
    let s = open(dir.path());
    assert_eq!(
        s.recovery().wal_records + s.recovery().wal_records_skipped,
        0,
        "WAL is empty"
    );
    s.write(b.clone()).unwrap();
    s.close().unwrap();
    let s = open(dir.path());
    assert_eq!(s.recovery().wal_records, 1);
    let org1: Vec<_> = all_rows(&s).into_iter().filter(|r| r.0 == 1).collect();
    let all: Vec<Point> = a.iter().chain(&b).cloned().collect();
    assert_eq!(org1, expected(&all));
}
