//! The acknowledgement rule: under `Always` and `Interval` a write is acknowledged only after an
//! fsync covering its WAL record has completed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pinhouse_storage::{DEFAULT_FSYNC, FsyncPolicy, Storage, StorageConfig};

use crate::common::*;

/// Writes from several threads with `write_with`; every completion checks that the number of
/// acknowledged records never exceeds the number of records covered by a completed fsync.
/// Returns (acknowledged, violations seen).
fn acks_vs_syncs(policy: FsyncPolicy) -> (u64, bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.fsync = policy;
    let s = Storage::open(c).unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let violated = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        for t in 0..4u32 {
            let (s, acked, violated) = (s.clone(), acked.clone(), violated.clone());
            scope.spawn(move || {
                let (tx, rx) = std::sync::mpsc::channel();
                for k in 0..40i64 {
                    let (s2, acked, violated, tx) =
                        (s.clone(), acked.clone(), violated.clone(), tx.clone());
                    s.write_with(
                        batch(t + 1, 20, k * 100),
                        Box::new(move |r| {
                            r.unwrap();
                            // Completions run one at a time on the committer thread.
                            let n = acked.fetch_add(1, Ordering::SeqCst) + 1;
                            if n > s2.stats().wal_synced_records {
                                violated.store(true, Ordering::SeqCst);
                            }
                            drop(s2);
                            let _ = tx.send(());
                        }),
                    );
                }
                for _ in 0..40 {
                    rx.recv().unwrap();
                }
            });
        }
    });
    let n = acked.load(Ordering::SeqCst);
    let v = violated.load(Ordering::SeqCst);
    s.close().unwrap();
    (n, v)
}

#[test]
fn always_acknowledges_only_synced_writes() {
    assert_eq!(acks_vs_syncs(FsyncPolicy::Always), (160, false));
}

#[test]
fn interval_acknowledges_only_synced_writes() {
    assert_eq!(
        acks_vs_syncs(FsyncPolicy::Interval(Duration::from_millis(5))),
        (160, false)
    );
}

#[test]
fn never_acknowledges_before_any_sync() {
    // The counter the other tests rely on does discriminate: under `Never` writes are
    // acknowledged with no fsync at all.
    assert_eq!(acks_vs_syncs(FsyncPolicy::Never), (160, true));
}

#[test]
fn default_policy_is_interval() {
    assert!(
        matches!(DEFAULT_FSYNC, FsyncPolicy::Interval(d) if d >= Duration::from_millis(10) && d <= Duration::from_millis(100))
    );
    assert_eq!(StorageConfig::new("x").fsync, DEFAULT_FSYNC);
}
