//! The catalog: `<data_dir>/catalog.json`, the list of durable Parquet files, the WAL position
//! they cover, and where the last value of every series as of that position is (the committed
//! part of the last-value log, [`crate::last_log`]).
//!
//! It is replaced atomically (temp file, fsync, rename, directory fsync) after the Parquet files
//! it adds and the last values it names are durable. WAL records with `seq <= flushed_wal_seq`
//! are in Parquet, so replay skips them and segments holding only such records can be deleted.
//! Its size grows with the number of files, not with the number of series.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::fsutil;
use crate::last_log::{Change, LastLog, LastValues, LogRef, SortedValues, Written};
use crate::last_value::LastValue;
use crate::parquet_writer::SeriesKey;
use crate::point::Value;
use crate::remote::ParquetRemote;
use crate::schema::KeyOrder;
use crate::snapshot::FileMeta;

/// File name of the catalog inside the data directory.
pub(crate) const CATALOG_FILE: &str = "catalog.json";
/// Folder of the Parquet tree inside the data directory.
pub(crate) const PARQUET_DIR: &str = "parquet";
/// Version 3 (new stores) sorts data files by [`KeyOrder::PinDevice`]; version 2 names the
/// last-value log and sorts files by [`KeyOrder::DevicePin`]; version 1 (read, and migrated to
/// version 2 on open) carried every last value inline. A store keeps its order: files are
/// never re-sorted, and a binary that knows only versions 1 and 2 refuses a version 3 store
/// (it would write files in the other order).
const FORMAT_VERSION: u32 = 3;

/// The key order of the files of a store with catalog format `version`.
fn key_order_of(version: u32) -> KeyOrder {
    if version >= 3 {
        KeyOrder::PinDevice
    } else {
        KeyOrder::DevicePin
    }
}

/// One Parquet file as recorded in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    pub id: u64,
    /// Relative to the data directory, `/`-separated.
    pub path: String,
    pub min_ts_us: i64,
    pub max_ts_us: i64,
    pub min_device_id: u32,
    pub max_device_id: u32,
    pub org_ids: Vec<u32>,
    pub rows: u64,
    pub bytes: u64,
    /// WAL records `wal_seq_min..=wal_seq_max` were flushed together into this file (and
    /// possibly into sibling files of other days).
    pub wal_seq_min: u64,
    pub wal_seq_max: u64,
}

/// One last value as stored inline by catalog format version 1. Numbers are kept as Rust's
/// shortest round-trip decimal text (`"21.5"`, `"NaN"`, `"inf"`), which JSON numbers cannot
/// always carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LastEntry {
    org_id: u32,
    device_id: u32,
    pin: u16,
    ts_us: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CatalogDoc {
    format_version: u32,
    next_file_id: u64,
    flushed_wal_seq: u64,
    files: Vec<FileEntry>,
    /// Version 1 only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    last_values: Vec<LastEntry>,
    /// Version 2: the committed part of the last-value log.
    #[serde(default)]
    last_values_log: LogRef,
}

/// The in-memory catalog, owned by the flusher.
#[derive(Debug)]
pub(crate) struct Catalog {
    data_dir: PathBuf,
    /// The bucket that also keeps the files and the catalog, if any.
    remote: Option<ParquetRemote>,
    next_file_id: u64,
    flushed_wal_seq: u64,
    files: Vec<FileEntry>,
    /// The last values read on load, in key order, until [`Catalog::take_last_values`] (their
    /// durable form is `last_log`; they are not kept in memory after open).
    last: SortedValues,
    last_log: LastLog,
    /// The order of the rows in the store's data files.
    key_order: KeyOrder,
    /// Generations of the last-value log replaced locally whose objects stay in the bucket until
    /// the bucket's catalog no longer names them.
    bucket_stale_logs: Vec<u64>,
}

/// The catalog document as stored.
fn encode(doc: &CatalogDoc) -> Result<Vec<u8>> {
    serde_json::to_vec(doc)
        .map_err(|e| StorageError::InvalidInput(format!("catalog serialisation failed: {e}")))
}

impl Catalog {
    /// Loads `<data_dir>/catalog.json`; a missing file is an empty catalog.
    pub(crate) fn load(data_dir: &Path, remote: Option<ParquetRemote>) -> Result<Catalog> {
        let path = data_dir.join(CATALOG_FILE);
        let empty = || -> Result<Catalog> {
            Ok(Catalog {
                data_dir: data_dir.to_owned(),
                remote: remote.clone(),
                next_file_id: 1,
                flushed_wal_seq: 0,
                files: Vec::new(),
                last: SortedValues::new(),
                last_log: LastLog::open(data_dir, LogRef::default())?.0,
                key_order: key_order_of(FORMAT_VERSION),
                bucket_stale_logs: Vec::new(),
            })
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return empty(),
            Err(e) => return Err(StorageError::IoPath { path, source: e }),
        };
        let doc: CatalogDoc = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::corrupt(&path, format!("unparsable catalog: {e}")))?;
        if !(1..=FORMAT_VERSION).contains(&doc.format_version) {
            return Err(StorageError::UnsupportedVersion {
                path,
                version: doc.format_version,
            });
        }
        let (last_log, last) = LastLog::open(data_dir, doc.last_values_log)?;
        // Format 1: the values inline.
        let mut inline = LastValues::default();
        inline.reserve(doc.last_values.len());
        for e in doc.last_values {
            let value = match (e.number, e.text) {
                (Some(n), None) => Value::Number(
                    n.parse()
                        .map_err(|_| StorageError::corrupt(&path, format!("bad number {n:?}")))?,
                ),
                (None, Some(t)) => Value::Text(t),
                _ => {
                    return Err(StorageError::corrupt(
                        &path,
                        "last value needs exactly one of number/text",
                    ));
                }
            };
            inline.insert(
                (e.org_id, e.device_id, e.pin),
                LastValue {
                    ts_us: e.ts_us,
                    value,
                },
            );
        }
        for f in &doc.files {
            if f.path.starts_with('/') || f.path.split('/').any(|c| c == "..") {
                return Err(StorageError::corrupt(
                    &path,
                    format!("file path {:?} escapes the data directory", f.path),
                ));
            }
        }
        let mut catalog = Catalog {
            data_dir: data_dir.to_owned(),
            remote,
            next_file_id: doc.next_file_id,
            flushed_wal_seq: doc.flushed_wal_seq,
            files: doc.files,
            last,
            last_log,
            key_order: key_order_of(doc.format_version),
            bucket_stale_logs: Vec::new(),
        };
        if doc.format_version == 1 {
            // Move the inline last values to the log (the bucket follows when the store
            // reconciles with it on open).
            let written = catalog.last_log.write_full(&inline)?;
            let files = catalog.files.clone();
            catalog.store(files, Some(written), catalog.flushed_wal_seq, false)?;
            catalog.last = inline.into_iter().collect();
            catalog.last.sort_unstable_by_key(|(k, _)| *k);
            tracing::info!(
                path = %path.display(),
                series = catalog.last.len(),
                "catalog migrated to format version 2: last values moved to the last-value log"
            );
        }
        Ok(catalog)
    }

    /// The order of the rows in the store's data files.
    pub(crate) fn key_order(&self) -> KeyOrder {
        self.key_order
    }

    /// The bucket that also keeps the files, if any.
    pub(crate) fn remote(&self) -> Option<&ParquetRemote> {
        self.remote.as_ref()
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The catalog document as stored.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>> {
        encode(&self.doc(
            self.files.clone(),
            self.last_log.committed(),
            self.flushed_wal_seq,
        ))
    }

    /// The committed part of the last-value log.
    pub(crate) fn last_values_log(&self) -> LogRef {
        self.last_log.committed()
    }

    /// The committed bytes of the last-value log (`None` when there is none), read from disk.
    pub(crate) fn last_values_bytes(&self) -> Result<Option<Vec<u8>>> {
        self.last_log.committed_bytes()
    }

    pub(crate) fn flushed_wal_seq(&self) -> u64 {
        self.flushed_wal_seq
    }

    #[cfg(test)]
    pub(crate) fn next_file_id(&self) -> u64 {
        self.next_file_id
    }

    /// A new file id, never handed out before (persisted with the next commit; an id handed
    /// out but never committed is simply skipped, its file removed as an orphan on open).
    pub(crate) fn allocate_file_id(&mut self) -> u64 {
        let id = self.next_file_id;
        self.next_file_id += 1;
        id
    }

    /// Relative path of a new file.
    pub(crate) fn file_rel_path(partition: &str, id: u64) -> String {
        format!("{PARQUET_DIR}/{partition}/{id:020}.parquet")
    }

    pub(crate) fn abs_path(&self, rel: &str) -> PathBuf {
        rel.split('/').fold(self.data_dir.clone(), |p, c| p.join(c))
    }

    /// Files for snapshots.
    pub(crate) fn file_metas(&self) -> Vec<FileMeta> {
        self.files.iter().map(|f| self.file_meta(f)).collect()
    }

    pub(crate) fn file_meta(&self, f: &FileEntry) -> FileMeta {
        FileMeta {
            path: self.abs_path(&f.path),
            min_ts_us: f.min_ts_us,
            max_ts_us: f.max_ts_us,
            min_device_id: f.min_device_id,
            max_device_id: f.max_device_id,
            org_ids: f.org_ids.clone(),
            rows: f.rows,
            bytes: f.bytes,
        }
    }

    /// The last values as of `flushed_wal_seq` when the catalog was loaded (once: the catalog
    /// does not keep them).
    pub(crate) fn take_last_values(&mut self) -> SortedValues {
        std::mem::take(&mut self.last)
    }

    /// Durably records `files` (already durable on disk) and the last values of their rows, and
    /// advances the flushed WAL position to `flushed_wal_seq`. The in-memory catalog changes
    /// only when the new catalog file is durable.
    pub(crate) fn commit(
        &mut self,
        files: Vec<FileEntry>,
        last_values: Vec<(SeriesKey, LastValue)>,
        flushed_wal_seq: u64,
    ) -> Result<()> {
        debug_assert!(flushed_wal_seq >= self.flushed_wal_seq);
        let written = self.last_log.write(&Change::Set(last_values))?;
        let mut all_files = self.files.clone();
        all_files.extend(files);
        self.store(all_files, written, flushed_wal_seq, true)
    }

    /// Durably replaces the files with ids in `removed` by `added` (already durable on disk)
    /// and forgets the last values of the devices in `forget` — one atomic catalog update
    /// (compaction, retention, device deletion).
    pub(crate) fn commit_replace(
        &mut self,
        removed: &HashSet<u64>,
        added: Vec<FileEntry>,
        forget: &[(u32, u32)],
    ) -> Result<()> {
        let mut files: Vec<FileEntry> = self
            .files
            .iter()
            .filter(|f| !removed.contains(&f.id))
            .cloned()
            .collect();
        files.extend(added);
        let written = self.last_log.write(&Change::Forget(forget.to_vec()))?;
        self.store(files, written, self.flushed_wal_seq, true)
    }

    /// The files, in commit order.
    pub(crate) fn entries(&self) -> &[FileEntry] {
        &self.files
    }

    /// The partition folder name of a file entry (`date=2026-11-25`).
    pub(crate) fn partition_of(entry: &FileEntry) -> &str {
        entry.path.split('/').nth(1).unwrap_or_default()
    }

    /// Replaces `catalog.json` with one naming `written` (a durable, uncommitted write of the
    /// last-value log, if any); on failure nothing changes. With `to_bucket`, the log's new
    /// bytes and then the catalog go to the bucket (if any).
    fn store(
        &mut self,
        all_files: Vec<FileEntry>,
        written: Option<Written>,
        flushed_wal_seq: u64,
        to_bucket: bool,
    ) -> Result<()> {
        let log = written
            .as_ref()
            .map_or(self.last_log.committed(), |w| w.log);
        let doc = self.doc(all_files, log, flushed_wal_seq);
        let stored = encode(&doc).and_then(|json| {
            fsutil::write_atomic(&self.data_dir.join(CATALOG_FILE), &json)?;
            Ok(json)
        });
        if let Some(w) = &written {
            self.last_log.finish(w, stored.is_ok());
        }
        let json = stored?;
        if let Some(old) = written.as_ref().and_then(Written::replaced) {
            self.bucket_stale_logs.push(old);
        }
        self.files = doc.files;
        self.flushed_wal_seq = flushed_wal_seq;
        if to_bucket && let Some(remote) = self.remote.clone() {
            self.sync_bucket(&remote, &json, written.as_ref());
        }
        Ok(())
    }

    /// Sends a committed change to the bucket: the log's new bytes, then the catalog; then
    /// deletes replaced log generations the bucket's catalog no longer names. A failure is
    /// logged and repaired at a later commit (the bucket's catalog stays at an older, complete
    /// state meanwhile).
    fn sync_bucket(&mut self, remote: &ParquetRemote, json: &[u8], written: Option<&Written>) {
        if let Some(w) = written
            && let Err(e) = remote.put_last_values(w.log.generation, w.offset, &w.bytes)
        {
            tracing::warn!(error = %e, location = %remote.location(), "uploading last values to the bucket failed; a full copy goes at the next commit");
            // The bucket misses bytes of this generation: the next commit starts a new one.
            self.last_log.force_rewrite();
            remote.mark_catalog_stale();
            return;
        }
        remote.put_catalog(json);
        if remote.catalog_in_sync() {
            self.bucket_stale_logs
                .retain(|&generation| match remote.delete_last_values(generation) {
                    Ok(()) => false,
                    Err(e) => {
                        tracing::warn!(generation, error = %e, "could not delete a replaced last-value log from the bucket; retried later");
                        true
                    }
                });
        }
    }

    fn doc(&self, all_files: Vec<FileEntry>, log: LogRef, flushed_wal_seq: u64) -> CatalogDoc {
        CatalogDoc {
            format_version: match self.key_order {
                KeyOrder::PinDevice => 3,
                KeyOrder::DevicePin => 2,
            },
            next_file_id: self.next_file_id,
            flushed_wal_seq,
            files: all_files,
            last_values: Vec::new(),
            last_values_log: log,
        }
    }

    /// Removes what a crash can leave behind: temporary files, and Parquet files that never made
    /// it into the catalog (their rows are still in the WAL and will be flushed again). Returns
    /// how many files were removed.
    pub(crate) fn remove_orphans(&self) -> Result<usize> {
        let mut removed = self.last_log.remove_orphans()?;
        let tmp = self.data_dir.join(format!("{CATALOG_FILE}.tmp"));
        if tmp.exists() {
            std::fs::remove_file(&tmp).map_err(StorageError::io_path(&tmp))?;
            removed += 1;
        }
        let root = self.data_dir.join(PARQUET_DIR);
        if !root.is_dir() {
            return Ok(removed);
        }
        let known: HashSet<PathBuf> = self.files.iter().map(|f| self.abs_path(&f.path)).collect();
        for part in std::fs::read_dir(&root).map_err(StorageError::io_path(&root))? {
            let part = part.map_err(StorageError::io_path(&root))?.path();
            if !part.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&part).map_err(StorageError::io_path(&part))? {
                let path = entry.map_err(StorageError::io_path(&part))?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                let orphan = name.ends_with(".parquet.tmp")
                    || (name.ends_with(".parquet") && !known.contains(&path));
                if orphan {
                    tracing::warn!(path = %path.display(), "removing Parquet file left by an interrupted flush");
                    std::fs::remove_file(&path).map_err(StorageError::io_path(&path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    #[cfg(test)]
    pub(crate) fn files(&self) -> &[FileEntry] {
        &self.files
    }
}

/// The last-value log a catalog document names, read without loading the rest (for the
/// bucket: which log objects a catalog needs).
pub(crate) fn log_of(json: &[u8], what: &Path) -> Result<LogRef> {
    #[derive(Deserialize)]
    struct Only {
        #[serde(default)]
        last_values_log: LogRef,
    }
    let only: Only = serde_json::from_slice(json)
        .map_err(|e| StorageError::corrupt(what, format!("unparsable catalog: {e}")))?;
    Ok(only.last_values_log)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64) -> FileEntry {
        FileEntry {
            id,
            path: Catalog::file_rel_path("date=1970-01-01", id),
            min_ts_us: 1,
            max_ts_us: 2,
            min_device_id: 3,
            max_device_id: 4,
            org_ids: vec![5],
            rows: 6,
            bytes: 7,
            wal_seq_min: 1,
            wal_seq_max: 9,
        }
    }

    #[test]
    fn commit_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::load(dir.path(), None).unwrap();
        assert_eq!((c.flushed_wal_seq(), c.next_file_id()), (0, 1));
        let lv = |ts, v: Value| LastValue {
            ts_us: ts,
            value: v,
        };
        assert_eq!((c.allocate_file_id(), c.allocate_file_id()), (1, 2));
        c.commit(
            vec![entry(1)],
            vec![
                ((1, 2, 3), lv(10, Value::Number(0.1))),
                ((1, 2, 4), lv(10, Value::Number(f64::INFINITY))),
            ],
            9,
        )
        .unwrap();
        c.commit(
            vec![entry(2)],
            vec![
                ((1, 2, 3), lv(5, Value::Number(1.0))),
                ((1, 2, 4), lv(11, Value::Text("t".into()))),
            ],
            12,
        )
        .unwrap();
        let mut r = Catalog::load(dir.path(), None).unwrap();
        assert_eq!((r.flushed_wal_seq(), r.next_file_id()), (12, 3));
        assert_eq!(r.files(), c.files());
        let mut last: Vec<_> = r.take_last_values().into_iter().collect();
        last.sort_by_key(|(k, _)| *k);
        assert_eq!(
            last,
            vec![
                ((1, 2, 3), lv(10, Value::Number(0.1))),
                ((1, 2, 4), lv(11, Value::Text("t".into())))
            ]
        );
        let metas = r.file_metas();
        assert!(metas[0].path.starts_with(dir.path()));
        assert!(
            metas[0]
                .path
                .ends_with("parquet/date=1970-01-01/00000000000000000001.parquet")
        );
    }

    /// The catalog names the last-value log instead of holding the values: its size does not
    /// grow with the number of series, and a device deletion forgets its values durably.
    #[test]
    fn catalog_size_does_not_grow_with_series() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::load(dir.path(), None).unwrap();
        c.allocate_file_id();
        let values = |devices: u32, ts| -> Vec<(SeriesKey, LastValue)> {
            (0..devices)
                .flat_map(|d| {
                    (0..4u16).map(move |p| {
                        (
                            (1, d, p),
                            LastValue {
                                ts_us: ts,
                                value: Value::Number(f64::from(d) + 0.25),
                            },
                        )
                    })
                })
                .collect()
        };
        c.commit(vec![entry(1)], values(10, 1), 9).unwrap();
        let small = std::fs::metadata(dir.path().join(CATALOG_FILE))
            .unwrap()
            .len();
        c.allocate_file_id();
        c.commit(vec![entry(2)], values(20_000, 2), 10).unwrap();
        let large = std::fs::metadata(dir.path().join(CATALOG_FILE))
            .unwrap()
            .len();
        assert!(large < small + 1024, "{small} → {large} bytes");
        assert_eq!(
            Catalog::load(dir.path(), None)
                .unwrap()
                .take_last_values()
                .len(),
            80_000
        );
        c.commit_replace(&HashSet::new(), vec![], &[(1, 3), (1, 5)])
            .unwrap();
        let mut r = Catalog::load(dir.path(), None).unwrap();
        let last = r.take_last_values();
        assert_eq!(last.len(), 80_000 - 8);
        assert!(last.iter().all(|((_, d, _), _)| *d != 3 && *d != 5));
        assert_eq!(r.files(), c.files());
    }

    /// A format-1 catalog (last values inline) is read and migrated on open.
    #[test]
    fn format_1_catalog_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = serde_json::json!({
            "format_version": 1,
            "next_file_id": 4,
            "flushed_wal_seq": 17,
            "files": [entry(3)],
            "last_values": [
                {"org_id": 1, "device_id": 2, "pin": 3, "ts_us": 10, "number": "21.5"},
                {"org_id": 1, "device_id": 2, "pin": 4, "ts_us": 11, "text": "on"},
                {"org_id": 1, "device_id": 9, "pin": 0, "ts_us": 12, "number": "NaN"}
            ]
        });
        std::fs::write(dir.path().join(CATALOG_FILE), v1.to_string()).unwrap();
        let check = |mut c: Catalog| {
            assert_eq!((c.flushed_wal_seq(), c.next_file_id()), (17, 4));
            assert_eq!(c.files(), &[entry(3)]);
            let last: LastValues = c.take_last_values().into_iter().collect();
            assert_eq!(last.len(), 3);
            assert_eq!(last[&(1, 2, 3)].value, Value::Number(21.5));
            assert_eq!(last[&(1, 2, 4)].value, Value::Text("on".into()));
        };
        check(Catalog::load(dir.path(), None).unwrap());
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(CATALOG_FILE)).unwrap()).unwrap();
        assert_eq!(doc["format_version"], 2);
        assert!(doc.get("last_values").is_none(), "{doc}");
        assert_eq!(doc["last_values_log"]["generation"], 1);
        check(Catalog::load(dir.path(), None).unwrap());
    }

    #[test]
    fn corrupt_catalog_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CATALOG_FILE), b"{not json").unwrap();
        assert!(matches!(
            Catalog::load(dir.path(), None),
            Err(StorageError::Corrupt { .. })
        ));
    }

    #[test]
    fn removes_orphans_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::load(dir.path(), None).unwrap();
        let part = dir.path().join("parquet/date=1970-01-01");
        std::fs::create_dir_all(&part).unwrap();
        c.allocate_file_id();
        c.commit(vec![entry(1)], vec![], 9).unwrap();
        std::fs::write(c.abs_path(&entry(1).path), b"kept").unwrap();
        std::fs::write(part.join("00000000000000000002.parquet"), b"orphan").unwrap();
        std::fs::write(part.join("00000000000000000003.parquet.tmp"), b"tmp").unwrap();
        assert_eq!(c.remove_orphans().unwrap(), 2);
        assert!(c.abs_path(&entry(1).path).exists());
        assert_eq!(std::fs::read_dir(&part).unwrap().count(), 1);
    }
}
