//! Compaction, retention and device deletion: what stays is identical before and after (and
//! after a restart), files a snapshot reads do not vanish under it.

use std::collections::HashMap;
use std::time::Duration;

use pinhouse_storage::{Point, RetentionRules, Storage, StorageConfig};

use crate::common::*;

const DAY: i64 = 86_400_000_000;
/// 2026-11-25T00:00:00Z
const NOV25: i64 = 1_795_564_800_000_000;

fn maint_config(dir: &std::path::Path) -> StorageConfig {
    let mut c = config(dir);
    c.compact_min_files = 0; // only explicit compaction
    c.obsolete_file_grace = Duration::ZERO;
    c
}

/// Points of `orgs` × 3 devices × 2 pins, one per minute over `days` days from NOV25.
fn fleet(orgs: &[u32], days: i64, minute_step: i64) -> Vec<Point> {
    let mut v = Vec::new();
    for &org in orgs {
        for dev in 0..3u32 {
            for pin in 0..2u16 {
                let mut t = NOV25;
                while t < NOV25 + days * DAY {
                    v.push(Point::number(
                        org,
                        org * 100 + dev,
                        pin,
                        t,
                        (t / 60_000_000 % 977) as f64 / 4.0,
                    ));
                    t += minute_step * 60_000_000;
                }
            }
        }
    }
    v
}

fn write_in_flushes(s: &Storage, pts: &[Point], flushes: usize) {
    for chunk in pts.chunks(pts.len().div_ceil(flushes)) {
        s.write(chunk.to_vec()).unwrap();
        s.flush().unwrap();
    }
}

#[test]
fn compaction_merges_files_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(maint_config(dir.path())).unwrap();
    let mut pts = fleet(&[1, 2], 2, 7);
    // Interleave so every flush touches both days.
    pts.sort_by_key(|p| (p.device_id, p.ts_us % DAY));
    write_in_flushes(&s, &pts, 5);
    // A late re-send of already flushed rows, flushed into yet another file.
    s.write(pts[10..60].to_vec()).unwrap();
    s.flush().unwrap();
    let before = s.snapshot();
    assert!(before.files.len() >= 10, "{}", before.files.len());
    let want = expected(&pts);
    let mut rows = snapshot_rows(&before);
    rows.sort();
    assert!(
        rows.len() > want.len(),
        "the late repeats are in a separate file"
    );

    let held = s.snapshot(); // a reader still using the old files
    let report = s.compact().unwrap();
    assert_eq!(report.files_written, 2, "one file per day partition");
    assert_eq!(report.duplicates_removed, 50);
    let after = s.snapshot();
    assert_eq!(after.files.len(), 2);
    assert_eq!(all_rows(&s), want);
    // The held snapshot still reads its files: they are deleted only after it is dropped.
    let mut held_rows = snapshot_rows(&held);
    held_rows.sort();
    assert_eq!(held_rows, rows);
    drop(held);
    drop(before);
    // Replaced files go away at the next maintenance run once nobody holds them.
    s.compact().unwrap();
    let parquet_files = walk(&dir.path().join("parquet"));
    assert_eq!(parquet_files.len(), 2, "{parquet_files:?}");
    s.close().unwrap();
    let s = Storage::open(maint_config(dir.path())).unwrap();
    assert_eq!(all_rows(&s), want, "after restart");
    assert_eq!(s.recovery().orphan_files_removed, 0);
}

/// `(org_id, device_id, pin, ts)` of a row.
type Key = (u32, u32, u16, i64);

/// The key columns of a data file's rows in the order they are stored, and the key columns its
/// metadata declares it sorted by.
fn file_keys(path: &std::path::Path) -> (Vec<Key>, Vec<i32>) {
    let mut rows = Vec::new();
    for b in read_parquet(path) {
        rows_of_batch(&b, &mut rows);
    }
    let file = std::fs::File::open(path).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let declared = builder.metadata().row_group(0).sorting_columns().unwrap();
    (
        rows.into_iter().map(|r| (r.0, r.1, r.2, r.3)).collect(),
        declared.iter().map(|c| c.column_idx).collect(),
    )
}

/// A new store sorts its files pin first; a store created before (catalog format 2) keeps
/// sorting device first through flushes, compaction and restarts, and stays at format 2.
#[test]
fn stores_keep_their_key_order_through_flush_and_compaction() {
    for format_2 in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        if format_2 {
            let doc = r#"{"format_version":2,"next_file_id":1,"flushed_wal_seq":0,"files":[]}"#;
            std::fs::write(dir.path().join("catalog.json"), doc).unwrap();
        }
        let s = Storage::open(maint_config(dir.path())).unwrap();
        let mut pts = fleet(&[1, 2], 1, 7);
        pts.sort_by_key(|p| p.ts_us);
        write_in_flushes(&s, &pts, 3);
        assert_eq!(s.compact().unwrap().files_written, 1);
        s.write(pts[..20].to_vec()).unwrap(); // repeats, flushed after the compaction
        s.flush().unwrap();
        s.close().unwrap();
        let s = Storage::open(maint_config(dir.path())).unwrap();
        let report = s.compact().unwrap();
        assert_eq!((report.files_written, report.duplicates_removed), (1, 20));
        assert_eq!(all_rows(&s), expected(&pts), "format 2: {format_2}");
        let files = s.snapshot().files.clone();
        assert_eq!(files.len(), 1);
        let (keys, declared) = file_keys(&files[0].path);
        if format_2 {
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "device first");
            assert_eq!(declared, [0, 1, 2, 3]);
        } else {
            let pin_first = |k: &Key| (k.0, k.2, k.1, k.3);
            assert!(
                keys.windows(2).all(|w| pin_first(&w[0]) < pin_first(&w[1])),
                "pin first"
            );
            assert_eq!(declared, [0, 2, 1, 3]);
        }
        s.close().unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("catalog.json")).unwrap())
                .unwrap();
        assert_eq!(doc["format_version"], if format_2 { 2 } else { 3 });
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn automatic_compaction_after_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = maint_config(dir.path());
    c.compact_min_files = 4;
    let s = Storage::open(c).unwrap();
    let pts = fleet(&[1], 1, 3);
    write_in_flushes(&s, &pts, 8);
    s.write(vec![Point::number(1, 1, 0, NOV25 + 1, 0.5)])
        .unwrap();
    s.flush().unwrap();
    let mut want = pts.clone();
    want.push(Point::number(1, 1, 0, NOV25 + 1, 0.5));
    // Nine small files of one partition: the compactor thread merges every 4 of them, so the
    // partition settles below 4 files.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s.snapshot().files.len() >= 4 {
        assert!(std::time::Instant::now() < deadline, "no compaction");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(s.stats().rewrites >= 2, "{:?}", s.stats());
    // Rows are identical whatever compaction did.
    assert_eq!(all_rows(&s), expected(&want));
    s.compact().unwrap();
    assert_eq!(s.snapshot().files.len(), 1);
    assert_eq!(all_rows(&s), expected(&want));
}

/// A long merge runs on the compactor thread: flushes (and so ingest, which waits for
/// flushes once the memtable budget is used) go on meanwhile.
#[test]
fn flushes_do_not_wait_for_a_running_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(maint_config(dir.path())).unwrap();
    // 2.4 M rows in 6 files of one partition: a merge of seconds in a debug build.
    let mut pts = Vec::with_capacity(2_400_000);
    for dev in 0..2_000u32 {
        for pin in 0..4u16 {
            for i in 0..300i64 {
                pts.push(Point::number(1, dev, pin, NOV25 + i * 60_000_000, i as f64));
            }
        }
    }
    write_in_flushes(&s, &pts, 6);
    let started = std::time::Instant::now();
    let compaction = std::thread::spawn({
        let s = s.clone();
        move || {
            let report = s.compact().unwrap();
            (report, std::time::Instant::now())
        }
    });
    // Let the compaction start (its own flush comes first), then flush a new row.
    std::thread::sleep(Duration::from_millis(100));
    s.write(vec![Point::number(1, 7, 0, NOV25 + DAY / 2, 1.0)])
        .unwrap();
    s.flush().unwrap();
    let flushed = std::time::Instant::now();
    let (report, compacted) = compaction.join().unwrap();
    assert!(report.files_removed >= 6, "{report:?}");
    assert!(
        flushed < compacted,
        "the flush waited for the compaction: flush after {:?}, compaction done after {:?}",
        flushed - started,
        compacted - started
    );
    eprintln!(
        "flush done after {:?}, compaction after {:?}",
        flushed - started,
        compacted - started
    );
    pts.push(Point::number(1, 7, 0, NOV25 + DAY / 2, 1.0));
    assert_eq!(all_rows(&s).len(), pts.len());
}

#[test]
fn retention_drops_partitions_per_organization() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(maint_config(dir.path())).unwrap();
    let pts = fleet(&[1, 2, 3], 4, 30); // four days, three orgs
    write_in_flushes(&s, &pts, 3);
    let now = NOV25 + 4 * DAY + 3_600_000_000; // one hour into the fifth day
    let rules = RetentionRules {
        default: None, // org 3: forever
        per_org: HashMap::from([
            (1, Duration::from_secs(2 * 86_400)), // keeps days 3 and 4
            (2, Duration::from_secs(86_400 / 2)), // keeps day 4 only
        ]),
    };
    let report = s.apply_retention(&rules, now).unwrap();
    assert!(report.files_removed > 0);
    let keep = |p: &Point| match p.org_id {
        1 => p.ts_us >= NOV25 + 2 * DAY,
        2 => p.ts_us >= NOV25 + 3 * DAY,
        _ => true,
    };
    let want: Vec<Point> = pts.iter().filter(|p| keep(p)).cloned().collect();
    assert_eq!(all_rows(&s), expected(&want));
    // Idempotent, and what is left survives a restart.
    let again = s.apply_retention(&rules, now).unwrap();
    assert_eq!(again.files_removed, 0);
    s.close().unwrap();
    let s = Storage::open(maint_config(dir.path())).unwrap();
    assert_eq!(all_rows(&s), expected(&want));
    // Retention of an org that owns whole files drops them without rewriting.
    let all_gone = RetentionRules {
        default: Some(Duration::from_secs(60)),
        per_org: HashMap::new(),
    };
    s.apply_retention(&all_gone, now + 2 * DAY).unwrap();
    assert!(all_rows(&s).is_empty());
    assert!(s.snapshot().files.is_empty());
}

#[test]
fn deleting_a_device_removes_its_rows_and_last_values() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(maint_config(dir.path())).unwrap();
    let pts = fleet(&[1, 2], 2, 10);
    write_in_flushes(&s, &pts[..pts.len() / 2], 2);
    s.write(pts[pts.len() / 2..].to_vec()).unwrap(); // the rest only in the memtable
    assert!(s.last_value(1, 101, 0).is_some());
    let report = s.delete_device(1, 101).unwrap();
    assert!(report.files_removed > 0);
    let want: Vec<Point> = pts
        .iter()
        .filter(|p| !(p.org_id == 1 && p.device_id == 101))
        .cloned()
        .collect();
    assert_eq!(all_rows(&s), expected(&want));
    assert!(s.last_value(1, 101, 0).is_none());
    assert!(s.last_value(1, 102, 0).is_some());
    s.close().unwrap();
    let s = Storage::open(maint_config(dir.path())).unwrap();
    assert_eq!(all_rows(&s), expected(&want), "after restart");
    assert!(
        s.last_value(1, 101, 0).is_none(),
        "not restored from the catalog"
    );
}

#[test]
fn deleting_several_devices_rewrites_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(maint_config(dir.path())).unwrap();
    let pts = fleet(&[1, 2], 2, 10);
    write_in_flushes(&s, &pts, 2);
    let files_before = s.snapshot().files.len();
    let gone = [(1, 101), (2, 202), (1, 999)]; // the last one has no rows
    let report = s.delete_devices(&gone).unwrap();
    // Every file holds rows of both organizations' devices: each is rewritten once, not once
    // per device.
    assert_eq!(report.files_removed, files_before);
    assert_eq!(report.files_written, files_before);
    let want: Vec<Point> = pts
        .iter()
        .filter(|p| !gone.contains(&(p.org_id, p.device_id)))
        .cloned()
        .collect();
    assert_eq!(report.rows_after, want.len() as u64);
    assert_eq!(all_rows(&s), expected(&want));
    assert!(s.last_value(1, 101, 0).is_none());
    assert!(s.last_value(2, 202, 1).is_none());
    assert!(s.last_value(2, 201, 0).is_some());
    assert_eq!(
        s.delete_devices(&[]).unwrap(),
        pinhouse_storage::MaintenanceReport::default()
    );
}
