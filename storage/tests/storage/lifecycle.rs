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
