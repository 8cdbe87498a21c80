//! The write-ahead log: a directory of segment files holding checksummed records, one record per
//! write batch. [`WalWriter`] appends groups of records with one `write` (and at most one fsync,
//! decided by the committer); [`replay`] reads everything back on open. Byte format:
//! `docs/wal.md`.

pub(crate) mod record;
pub(crate) mod replay;
pub(crate) mod segment;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Result, StorageError};
use crate::fsutil;

pub(crate) use replay::replay;

/// A segment that is no longer written to. It is deleted once every record in it is covered by
/// durable Parquet files (`max_seq <= catalog.flushed_wal_seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClosedSegment {
    pub id: u64,
    pub path: PathBuf,
    /// Highest record sequence number in the segment (or lower than every later record when the
    /// segment is empty).
    pub max_seq: u64,
}

/// Closed segments, shared between the committer (which closes them) and the flusher (which
/// deletes them).
#[derive(Debug, Default)]
pub(crate) struct ClosedSegments {
    inner: Mutex<Vec<ClosedSegment>>,
}

impl ClosedSegments {
    pub(crate) fn push(&self, seg: ClosedSegment) {
        self.inner.lock().push(seg);
    }

    /// Deletes every closed segment whose records all have `seq <= flushed_seq`. Returns how many
    /// were deleted. A failed deletion is logged and retried next time.
    pub(crate) fn delete_covered(&self, flushed_seq: u64) -> usize {
        let covered: Vec<ClosedSegment> = {
            let mut segs = self.inner.lock();
            let (covered, keep) = segs.drain(..).partition(|s| s.max_seq <= flushed_seq);
            *segs = keep;
            covered
        };
        let mut deleted = 0;
        for seg in covered {
            match std::fs::remove_file(&seg.path) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => deleted += 1,
                Err(e) => {
                    tracing::warn!(path = %seg.path.display(), error = %e, "could not delete WAL segment; will retry");
                    self.push(seg);
                }
            }
        }
        if deleted > 0 {
            tracing::debug!(
                deleted,
                flushed_seq,
                "deleted WAL segments covered by Parquet"
            );
        }
        deleted
    }

    #[cfg(test)]
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.inner.lock().iter().map(|s| s.id).collect()
    }
}

/// Appends record groups to the active segment and rotates segments.
pub(crate) struct WalWriter {
    dir: PathBuf,
    file: File,
    segment_id: u64,
    segment_path: PathBuf,
    /// Bytes in the active segment (header included).
    segment_len: u64,
    /// Records in the active segment.
    segment_records: u64,
    segment_limit: u64,
    /// fsync a segment before it is closed (all policies except `Never`).
    sync_on_rotate: bool,
    next_seq: u64,
    /// Bytes written since the last `sync`.
    unsynced: bool,
    closed: Arc<ClosedSegments>,
    buf: Vec<u8>,
}

impl WalWriter {
    /// Creates segment `segment_id` in `dir` (which must exist) and fsyncs it and the directory.
    pub(crate) fn create(
        dir: &Path,
        segment_id: u64,
        next_seq: u64,
        segment_limit: u64,
        sync_on_rotate: bool,
        closed: Arc<ClosedSegments>,
    ) -> Result<WalWriter> {
        let (file, segment_path) = create_segment(dir, segment_id)?;
        Ok(WalWriter {
            dir: dir.to_owned(),
            file,
            segment_id,
            segment_path,
            segment_len: segment::SEGMENT_HEADER_LEN as u64,
            segment_records: 0,
            segment_limit,
            sync_on_rotate,
            next_seq,
            unsynced: false,
            closed,
            buf: Vec::new(),
        })
    }

    /// The sequence number the next record will get.
    #[cfg(test)]
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends one record per body with a single `write` (rotating first when the active segment
    /// is full). Returns the sequence number of the first record; the others follow
    /// consecutively. On error nothing of the group remains in the segment, or, when that cannot
    /// be guaranteed, a `Poisoned` error is returned.
    pub(crate) fn append_group(&mut self, bodies: &[&[u8]]) -> Result<u64> {
        if self.segment_len >= self.segment_limit && self.segment_records > 0 {
            self.rotate()?;
        }
        self.buf.clear();
        let first_seq = self.next_seq;
        for (i, body) in bodies.iter().enumerate() {
            record::append_record(&mut self.buf, first_seq + i as u64, body);
        }
        let start = self.segment_len;
        if let Err(e) = self.file.write_all(&self.buf) {
            // Take back whatever part of the group reached the file, so that later records do
            // not land after a torn one.
            let undo = self
                .file
                .set_len(start)
                .and_then(|()| self.file.seek(SeekFrom::Start(start)).map(|_| ()));
            return Err(match undo {
                Ok(()) => StorageError::IoPath {
                    path: self.segment_path.clone(),
                    source: e,
                },
                Err(undo_err) => StorageError::Poisoned(format!(
                    "WAL write failed ({e}) and the partial write could not be removed ({undo_err})"
                )),
            });
        }
        self.segment_len += self.buf.len() as u64;
        self.segment_records += bodies.len() as u64;
        self.next_seq += bodies.len() as u64;
        self.unsynced = true;
        if self.buf.capacity() > 64 << 20 {
            self.buf = Vec::new();
        }
        Ok(first_seq)
    }

    /// fsyncs the active segment if anything was written since the last sync; returns whether
    /// an fsync happened.
    pub(crate) fn sync(&mut self) -> Result<bool> {
        if !self.unsynced {
            return Ok(false);
        }
        self.file
            .sync_data()
            .map_err(StorageError::io_path(&self.segment_path))?;
        self.unsynced = false;
        Ok(true)
    }

    fn rotate(&mut self) -> Result<()> {
        if self.sync_on_rotate {
            // A failed fsync leaves the page cache in an unknown state: never continue after it.
            self.sync()
                .map_err(|e| StorageError::Poisoned(format!("fsync of WAL segment failed: {e}")))?;
        }
        let new_id = self.segment_id + 1;
        let (file, path) = create_segment(&self.dir, new_id)?;
        let old = ClosedSegment {
            id: self.segment_id,
            path: std::mem::replace(&mut self.segment_path, path),
            max_seq: self.next_seq - 1,
        };
        tracing::debug!(
            segment = old.id,
            max_seq = old.max_seq,
            bytes = self.segment_len,
            "WAL segment closed"
        );
        self.closed.push(old);
        self.file = file;
        self.segment_id = new_id;
        self.segment_len = segment::SEGMENT_HEADER_LEN as u64;
        self.segment_records = 0;
        self.unsynced = false;
        Ok(())
    }
}

fn create_segment(dir: &Path, id: u64) -> Result<(File, PathBuf)> {
    let path = dir.join(segment::segment_file_name(id));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(StorageError::io_path(&path))?;
    file.write_all(&segment::encode_header(id))
        .and_then(|()| file.sync_data())
        .map_err(StorageError::io_path(&path))?;
    fsutil::sync_dir(dir)?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_deletes_covered() {
        let dir = tempfile::tempdir().unwrap();
        let closed = Arc::new(ClosedSegments::default());
        let mut w = WalWriter::create(dir.path(), 1, 1, 100, true, closed.clone()).unwrap();
        let body = record::encode_body(&[crate::Point::number(1, 1, 1, 1, 1.0)]);
        for _ in 0..10 {
            w.append_group(&[&body, &body]).unwrap();
            w.sync().unwrap();
        }
        assert_eq!(w.next_seq(), 21);
        let ids = closed.ids();
        assert!(ids.len() >= 3, "{ids:?}");
        let files = segment::list_segments(dir.path()).unwrap();
        assert_eq!(files.len(), ids.len() + 1);
        // Nothing is covered at seq 0; everything closed is covered at seq 20.
        assert_eq!(closed.delete_covered(0), 0);
        assert_eq!(closed.delete_covered(20), ids.len());
        assert_eq!(segment::list_segments(dir.path()).unwrap().len(), 1);
    }
}
