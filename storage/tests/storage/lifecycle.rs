//! Open, close, locking, edge cases of the API.

use pinhouse_storage::{Point, Storage, StorageError, schema};

use crate::common::*;

#[test]
fn writes_after_close_fail_and_close_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write(batch(1, 3, 0)).unwrap();
    let clone = s.clone();
    s.close().unwrap();
    s.close().unwrap();
    assert!(matches!(
        clone.write(batch(1, 3, 10)),
        Err(StorageError::Closed)
    ));
    assert!(matches!(clone.write(vec![]), Err(StorageError::Closed)));
    assert!(matches!(clone.flush(), Err(StorageError::Closed)));
    // Reads keep working on the closed handle.
    assert_eq!(all_rows(&clone).len(), 3);
    drop(clone);
    let s = open(dir.path());
    assert_eq!(all_rows(&s).len(), 3);
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert!(matches!(
        Storage::open(config(dir.path())),
        Err(StorageError::Locked(_))
    ));
    drop(s); // dropping the last handle closes
    let s = open(dir.path());
    s.write(batch(1, 1, 0)).unwrap();
}

#[test]
fn empty_write_and_empty_flush_are_fine() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write(vec![]).unwrap();
    s.flush().unwrap();
    let snap = s.snapshot();
    assert!(snap.batches.is_empty() && snap.files.is_empty());
    assert!(s.data_dir().is_absolute());
    assert_eq!(schema().fields().len(), 6);
}

#[test]
fn relative_data_dir_is_made_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(dir.path(), &cwd);
    let s = Storage::open(config(&rel)).unwrap();
    assert!(s.data_dir().is_absolute());
    s.write(vec![Point::number(1, 1, 1, 1, 1.0)]).unwrap();
    s.flush().unwrap();
    assert!(s.snapshot().files[0].path.is_absolute());
}

/// `target` relative to `base` (both absolute), via `..` components.
fn pathdiff(target: &std::path::Path, base: &std::path::Path) -> std::path::PathBuf {
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

#[test]
fn closing_from_a_completion_callback_under_load_does_not_hang() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, mpsc};
    use std::time::Duration;
    // Writes too large to share a WAL group (over 16 MiB each): the first completion closes
    // the store from the store's own thread while the others are still queued or being
    // written.
    const WRITES: i64 = 7;
    const POINTS: usize = 17_000;
    let text = "x".repeat(1_000); // ~17 MB per write
    let big = |i: i64| -> Vec<Point> {
        (0..POINTS as i64)
            .map(|j| Point::from_text(1, (j % 50) as u32, 0, i * POINTS as i64 + j, &text))
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let done = Arc::new(AtomicUsize::new(0));
    let submitted = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    for i in 0..WRITES {
        let (store, done, submitted, tx) = (
            s.clone(),
            Arc::clone(&done),
            Arc::clone(&submitted),
            tx.clone(),
        );
        s.write_with(
            big(i),
            Box::new(move |result| {
                if done.fetch_add(1, Ordering::SeqCst) == 0 {
                    // Every write is queued before the close.
                    while !submitted.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    store.close().unwrap();
                }
                let _ = tx.send(result.is_ok());
            }),
        );
    }
    submitted.store(true, Ordering::SeqCst);
    let mut ok = 0;
    for _ in 0..WRITES {
        let acked = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("every write completes");
        ok += usize::from(acked);
    }
    assert!(ok > 0);
    drop(s);
    // Closed: the directory opens again, with every acknowledged write.
    let s = reopen_when_unlocked(dir.path());
    assert_eq!(all_rows(&s).len(), ok * POINTS);
}

/// Opens the store once the closing threads have let the directory lock go.
fn reopen_when_unlocked(dir: &std::path::Path) -> Storage {
    for _ in 0..100 {
        match Storage::open(config(dir)) {
            Ok(s) => return s,
            Err(StorageError::Locked(_)) => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the directory stayed locked");
}

/// Nice value of a thread of this process, from `/proc/self/task/<tid>/stat`.
#[cfg(target_os = "linux")]
fn thread_nice(task: &std::path::Path) -> Option<(String, i32)> {
    let comm = std::fs::read_to_string(task.join("comm")).ok()?;
    let stat = std::fs::read_to_string(task.join("stat")).ok()?;
    // Fields after "(comm)": state is field 3, nice field 19.
    let after = &stat[stat.rfind(')')? + 2..];
    let nice = after.split(' ').nth(16)?.parse().ok()?;
    Some((comm.trim().to_owned(), nice))
}

/// The flush thread runs `background_nice` steps below the process, the compaction thread 9
/// more (the WAL thread, on every write's path, runs at the process's priority).
#[cfg(target_os = "linux")]
#[test]
fn flush_and_compaction_threads_run_at_a_lower_priority() {
    let base = thread_nice(std::path::Path::new("/proc/thread-self"))
        .unwrap()
        .1;
    let dir = tempfile::tempdir().unwrap();
    let mut config = pinhouse_storage::StorageConfig::new(dir.path());
    config.background_nice = 7; // other tests' stores use the default (10)
    let s = Storage::open(config).unwrap();
    let want = |name: &str| match name {
        "pinhouse-compac" => (base + 16).min(19),
        _ => (base + 7).min(19),
    };
    let threads = || -> Vec<(String, i32)> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| thread_nice(&t.unwrap().path()))
            .collect()
    };
    let lowered = |threads: &[(String, i32)], name: &str| {
        threads
            .iter()
            .any(|(n, nice)| n == name && *nice == want(name))
    };
    // Each thread lowers its own priority when it starts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = threads();
    while !(lowered(&seen, "pinhouse-flush") && lowered(&seen, "pinhouse-compac"))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
        seen = threads();
    }
    for name in ["pinhouse-flush", "pinhouse-compac"] {
        assert!(
            lowered(&seen, name),
            "{name} at nice {}: {seen:?}",
            want(name)
        );
    }
    assert!(
        seen.iter()
            .filter(|(n, _)| n == "pinhouse-wal")
            .all(|(_, nice)| *nice == base),
        "{seen:?}"
    );
    s.close().unwrap();
}
