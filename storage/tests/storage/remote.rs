//! The Parquet tier in a bucket (`pinhouse_storage::remote`), here a `file://` bucket (the
//! same `object_store` code path as S3; the server's end-to-end test runs it against a real
//! S3-compatible server).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pinhouse_storage::objects::{ObjectLocation, Objects};
use pinhouse_storage::{ParquetRemote, RemoteFuture, Storage, StorageConfig, StorageError};

use crate::common::*;

/// A bucket in `dir`; its operations fail while `down` is set.
fn bucket(dir: &Path, down: Arc<AtomicBool>) -> ParquetRemote {
    let objects = Objects::open(&ObjectLocation::Local(dir.to_owned())).unwrap();
    ParquetRemote::new(
        objects,
        Arc::new(move |fut: RemoteFuture<'_>| {
            if down.load(Ordering::SeqCst) {
                return Err(StorageError::ObjectStore("bucket unreachable".into()));
            }
            poll_inline(fut)
        }),
    )
}

/// Without a tokio runtime the local store completes its futures inline: polling with a
/// no-op waker until ready runs them.
fn poll_inline(fut: RemoteFuture<'_>) -> pinhouse_storage::Result<()> {
    use std::task::{Context, Poll, Waker};
    let mut fut = fut;
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

fn remote_config(data: &Path, bucket_dir: &Path, down: &Arc<AtomicBool>) -> StorageConfig {
    let mut c = config(data);
    c.compact_min_files = 0;
    c.obsolete_file_grace = Duration::ZERO;
    c.parquet_remote = Some(bucket(bucket_dir, Arc::clone(down)));
    c
}

/// Relative paths of the Parquet files under `root/parquet`.
fn parquet_files(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(parts) = std::fs::read_dir(root.join("parquet")) else {
        return out;
    };
    for part in parts {
        let part = part.unwrap().path();
        for f in std::fs::read_dir(&part).unwrap() {
            let f: PathBuf = f.unwrap().path();
            out.insert(f.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
    out
}

fn cataloged(s: &Storage) -> BTreeSet<String> {
    s.snapshot()
        .files
        .iter()
        .map(|f| {
            f.path
                .strip_prefix(s.data_dir())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

const T0: i64 = 1_764_028_800_000_000; // 2025-11-25T00:00:00Z

#[test]
fn files_and_catalog_live_in_the_bucket_and_a_lost_disk_is_restored_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, bucket_dir) = (dir.path().join("data"), dir.path().join("bucket"));
    let up = Arc::new(AtomicBool::new(false));
    let s = Storage::open(remote_config(&data, &bucket_dir, &up)).unwrap();
    let mut points = Vec::new();
    for i in 0..3 {
        let b = batch(1, 500, T0 + i * 86_400_000_000);
        s.write(b.clone()).unwrap();
        s.flush().unwrap();
        points.extend(b);
    }
    assert_eq!(
        parquet_files(&bucket_dir),
        cataloged(&s),
        "every file is in the bucket"
    );
    // Compaction's replaced files leave the bucket too.
    let before = cataloged(&s);
    s.write(batch(1, 100, T0 + 3)).unwrap();
    points.extend(batch(1, 100, T0 + 3));
    s.compact().unwrap();
    s.compact().unwrap(); // sweeps what the first one replaced
    let after = cataloged(&s);
    assert_ne!(before, after);
    assert_eq!(parquet_files(&bucket_dir), after);
    assert!(bucket_dir.join("catalog.json").is_file());
    let want = expected(&points);
    assert_eq!(all_rows(&s), want);
    let last = s.last_value(1, 1, 1);
    assert!(last.is_some());
    s.close().unwrap();
    drop(s);

    // The disk is lost: a new data directory on the same bucket.
    std::fs::remove_dir_all(&data).unwrap();
    let s = Storage::open(remote_config(&data, &bucket_dir, &up)).unwrap();
    let r = s.recovery();
    assert!(r.catalog_restored);
    assert_eq!(r.files_downloaded, after.len());
    assert_eq!((r.files_uploaded, r.bucket_orphans_deleted), (0, 0));
    assert_eq!(all_rows(&s), want, "every flushed row is back");
    assert_eq!(s.last_value(1, 1, 1), last, "and the last values");
    // Writing goes on after a restore.
    s.write(batch(2, 10, T0)).unwrap();
    s.flush().unwrap();
    assert_eq!(parquet_files(&bucket_dir), cataloged(&s));
}

#[test]
fn an_existing_store_is_uploaded_and_objects_outside_the_catalog_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (data, bucket_dir) = (dir.path().join("data"), dir.path().join("bucket"));
    let s = Storage::open(config(&data)).unwrap();
    s.write(batch(1, 300, T0)).unwrap();
    s.flush().unwrap();
    let files = cataloged(&s);
    s.close().unwrap();
    drop(s);
    // An upload whose flush never committed.
    let orphan = bucket_dir.join("parquet/date=2025-11-25/00000000000000009999.parquet");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"never committed").unwrap();

    let up = Arc::new(AtomicBool::new(false));
    let s = Storage::open(remote_config(&data, &bucket_dir, &up)).unwrap();
    let r = s.recovery();
    assert!(!r.catalog_restored);
    assert_eq!(r.files_uploaded, files.len());
    assert_eq!(r.bucket_orphans_deleted, 1);
    assert_eq!(parquet_files(&bucket_dir), files);
    assert_eq!(all_rows(&s), expected(&batch(1, 300, T0)));
}

#[test]
fn a_flush_waits_for_the_bucket_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, bucket_dir) = (dir.path().join("data"), dir.path().join("bucket"));
    let down = Arc::new(AtomicBool::new(false));
    let s = Storage::open(remote_config(&data, &bucket_dir, &down)).unwrap();
    let points = batch(1, 200, T0);
    s.write(points.clone()).unwrap();
    down.store(true, Ordering::SeqCst);
    assert!(
        s.flush().is_err(),
        "no file is cataloged before it is in the bucket"
    );
    assert!(s.snapshot().files.is_empty());
    assert!(parquet_files(&data).is_empty(), "the local copy is removed");
    assert_eq!(
        all_rows(&s),
        expected(&points),
        "the rows stay in the memtable"
    );
    down.store(false, Ordering::SeqCst);
    s.flush().unwrap();
    assert_eq!(parquet_files(&bucket_dir), cataloged(&s));
    assert_eq!(all_rows(&s), expected(&points));
    s.close().unwrap();
    drop(s);
    let s = Storage::open(remote_config(&data, &bucket_dir, &down)).unwrap();
    assert_eq!(all_rows(&s), expected(&points), "once, after a restart");
}

#[test]
fn a_data_directory_older_than_the_bucket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (data, bucket_dir) = (dir.path().join("data"), dir.path().join("bucket"));
    let up = Arc::new(AtomicBool::new(false));
    let s = Storage::open(remote_config(&data, &bucket_dir, &up)).unwrap();
    s.write(batch(1, 100, T0)).unwrap();
    s.flush().unwrap();
    let stale_catalog = std::fs::read(data.join("catalog.json")).unwrap();
    s.write(batch(1, 100, T0 + 1_000)).unwrap();
    s.flush().unwrap();
    s.close().unwrap();
    drop(s);
    std::fs::write(data.join("catalog.json"), stale_catalog).unwrap();
    let err = Storage::open(remote_config(&data, &bucket_dir, &up)).unwrap_err();
    assert!(err.to_string().contains("is newer than"), "{err}");
}

/// The generations of the last-value log in the bucket, with their objects' offsets.
fn bucket_logs(bucket_dir: &Path) -> Vec<(String, Vec<String>)> {
    let Ok(gens) = std::fs::read_dir(bucket_dir.join("last_values")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<String>)> = gens
        .map(|g| {
            let g = g.unwrap().path();
            let mut offsets: Vec<String> = std::fs::read_dir(&g)
                .unwrap()
                .map(|o| o.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            offsets.sort();
            (
                g.file_name().unwrap().to_string_lossy().into_owned(),
                offsets,
            )
        })
        .collect();
    out.sort();
    out
}

/// Each commit sends the bucket only what it added to the last-value log (one object per
/// append, not the whole state), and a restore from the bucket reassembles the log: the last
/// values after several flushes and a device deletion come back exactly.
#[test]
fn last_values_reach_the_bucket_by_appends_and_are_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (data, bucket_dir) = (dir.path().join("data"), dir.path().join("bucket"));
    let up = Arc::new(AtomicBool::new(false));
    let s = Storage::open(remote_config(&data, &bucket_dir, &up)).unwrap();
    for i in 0..4 {
        s.write(batch(1, 50, T0 + i * 1_000_000)).unwrap();
        s.write(batch(2, 50, T0 + i * 1_000_000 + 7)).unwrap();
        s.flush().unwrap();
    }
    let logs = bucket_logs(&bucket_dir);
    assert_eq!(logs.len(), 1, "one generation: {logs:?}");
    assert_eq!(
        logs[0].1.len(),
        4,
        "the first copy and three appends: {logs:?}"
    );
    s.delete_devices(&[(2, 3)]).unwrap();
    let want: Vec<_> = [(1, 0), (1, 3), (2, 0), (2, 3), (2, 4)]
        .iter()
        .map(|&(org, dev)| s.last_values(org, dev))
        .collect();
    assert!(want[3].is_empty() && !want[4].is_empty());
    s.close().unwrap();
    drop(s);
    assert_eq!(
        bucket_logs(&bucket_dir)[0].1.len(),
        5,
        "the deletion is an append"
    );

    std::fs::remove_dir_all(&data).unwrap();
    let s = Storage::open(remote_config(&data, &bucket_dir, &up)).unwrap();
    assert!(s.recovery().catalog_restored);
    let back: Vec<_> = [(1, 0), (1, 3), (2, 0), (2, 3), (2, 4)]
        .iter()
        .map(|&(org, dev)| s.last_values(org, dev))
        .collect();
    assert_eq!(back, want);
}
