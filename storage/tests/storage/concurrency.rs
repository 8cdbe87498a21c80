//! Many writers at once: group commit acknowledges every batch and loses none.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pinhouse_storage::{FsyncPolicy, Point, Storage};

use crate::common::*;

fn run_writers(policy: FsyncPolicy) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.fsync = policy;
    c.memtable_max_rows = 1500; // background flushes while writing
    c.wal_segment_bytes = 32 * 1024;
    let s = Storage::open(c).unwrap();
    const THREADS: u32 = 6;
    const WRITES: i64 = 60;
    const PER: i64 = 10;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let s = s.clone();
            scope.spawn(move || {
                for w in 0..WRITES {
                    let pts = (0..PER)
                        .map(|i| Point::number(1, t, 0, w * PER + i, 1.0))
                        .collect();
                    s.write(pts).unwrap();
                }
            });
        }
    });
    let expect = THREADS as usize * (WRITES * PER) as usize;
    let st = s.stats();
    eprintln!("{policy:?}: {st:?}");
    assert_eq!(st.wal_records, THREADS as u64 * WRITES as u64);
    assert!(st.wal_groups <= st.wal_records && st.wal_groups > 0);
    match policy {
        // One fsync per group at most (plus none when nothing was written).
        FsyncPolicy::Always => assert!(st.wal_fsyncs <= st.wal_groups && st.wal_fsyncs > 0),
        FsyncPolicy::Interval(_) => assert!(st.wal_fsyncs <= st.wal_groups),
        FsyncPolicy::Never => assert_eq!(st.wal_fsyncs, 0),
    }
    assert_eq!(st.write_errors, 0);
    let rows = all_rows(&s);
    assert_eq!(rows.len(), expect, "{policy:?}");
    assert_eq!(counts(&rows).len(), expect, "no duplicates ({policy:?})");
    for t in 0..THREADS {
        assert_eq!(s.last_value(1, t, 0).unwrap().ts_us, WRITES * PER - 1);
    }
    s.close().unwrap();
    let s = Storage::open(config(dir.path())).unwrap();
    assert_eq!(all_rows(&s), rows, "{policy:?} after reopen");
}

#[test]
fn concurrent_writers_fsync_always() {
    run_writers(FsyncPolicy::Always);
}

#[test]
fn concurrent_writers_fsync_interval() {
    run_writers(FsyncPolicy::Interval(Duration::from_millis(5)));
}

#[test]
fn concurrent_writers_fsync_never() {
    run_writers(FsyncPolicy::Never);
}

#[test]
fn write_with_calls_back_once_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let ok = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = crossbeam_channel::unbounded();
    for k in 0..200 {
        let ok = ok.clone();
        let tx = tx.clone();
        s.write_with(
            vec![Point::number(2, 1, 1, k, k as f64)],
            Box::new(move |r| {
                r.unwrap();
                ok.fetch_add(1, Ordering::SeqCst);
                tx.send(()).unwrap();
            }),
        );
    }
    for _ in 0..200 {
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    assert_eq!(ok.load(Ordering::SeqCst), 200);
    assert_eq!(all_rows(&s).len(), 200);
    assert_eq!(s.last_value(2, 1, 1).unwrap().ts_us, 199);
}

#[test]
fn memtable_budget_holds_writers_back_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.memtable_max_rows = 200;
    c.memtable_budget_rows = 400;
    c.compact_min_files = 0;
    let s = pinhouse_storage::Storage::open(c).unwrap();
    // Writes with `Never` take microseconds; every flush writes and fsyncs a file and the
    // catalog, so the flusher falls behind and the budget is what bounds memory.
    let all: Vec<Vec<Point>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4u32)
            .map(|t| {
                let s = s.clone();
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for k in 0..100i64 {
                        let b = batch(t + 1, 50, k * 1000);
                        s.write(b.clone()).unwrap();
                        mine.extend(b);
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stats = s.stats();
    // One group can freeze several memtables past the budget before the next check.
    assert!(
        stats.frozen_rows_peak <= 400 + 200 + 4 * 50,
        "peak {} rows frozen",
        stats.frozen_rows_peak
    );
    assert!(stats.backpressure_waits > 0, "{stats:?}");
    assert_eq!(all_rows(&s), expected(&all.concat()));
    s.flush().unwrap();
    assert_eq!(all_rows(&s), expected(&all.concat()));
}
