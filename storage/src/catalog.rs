//! The catalog: `<data_dir>/catalog.json`, the list of durable Parquet files, the WAL position
//! they cover, and the last value of every series as of that position.
//!
//! It is replaced atomically (temp file, fsync, rename, directory fsync) after the Parquet files
//! it adds are durable. WAL records with `seq <= flushed_wal_seq` are in Parquet, so replay
//! skips them and segments holding only such records can be deleted.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::fsutil;
use crate::last_value::LastValue;
use crate::parquet_writer::SeriesKey;
use crate::point::Value;
use crate::remote::ParquetRemote;
use crate::snapshot::FileMeta;

/// File name of the catalog inside the data directory.
pub(crate) const CATALOG_FILE: &str = "catalog.json";
/// Folder of the Parquet tree inside the data directory.
pub(crate) const PARQUET_DIR: &str = "parquet";
const FORMAT_VERSION: u32 = 1;

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

/// One last value as stored in the catalog. Numbers are kept as Rust's shortest round-trip
/// decimal text (`"21.5"`, `"NaN"`, `"inf"`), which JSON numbers cannot always carry.
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
    last_values: Vec<LastEntry>,
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
    last: HashMap<SeriesKey, LastValue>,
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
        let empty = Catalog {
            data_dir: data_dir.to_owned(),
            remote: remote.clone(),
            next_file_id: 1,
            flushed_wal_seq: 0,
            files: Vec::new(),
            last: HashMap::new(),
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(empty),
            Err(e) => return Err(StorageError::IoPath { path, source: e }),
        };
        let doc: CatalogDoc = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::corrupt(&path, format!("unparsable catalog: {e}")))?;
        if doc.format_version != FORMAT_VERSION {
            return Err(StorageError::UnsupportedVersion {
                path,
                version: doc.format_version,
            });
        }
        let mut last = HashMap::with_capacity(doc.last_values.len());
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
            last.insert(
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
        Ok(Catalog {
            data_dir: data_dir.to_owned(),
            remote,
            next_file_id: doc.next_file_id,
            flushed_wal_seq: doc.flushed_wal_seq,
            files: doc.files,
            last,
        })
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
        encode(&self.doc(self.files.clone(), &self.last, self.flushed_wal_seq))
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

    /// Last values as of `flushed_wal_seq`.
    pub(crate) fn last_values(&self) -> impl Iterator<Item = (SeriesKey, &LastValue)> {
        self.last.iter().map(|(k, v)| (*k, v))
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
        let mut last = self.last.clone();
        for (key, lv) in last_values {
            match last.get_mut(&key) {
                Some(cur) if cur.ts_us > lv.ts_us => {}
                Some(cur) => *cur = lv,
                None => {
                    last.insert(key, lv);
                }
            }
        }
        let mut all_files = self.files.clone();
        all_files.extend(files);
        self.store(all_files, last, flushed_wal_seq)
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
        let mut last = self.last.clone();
        if !forget.is_empty() {
            last.retain(|k, _| !forget.contains(&(k.0, k.1)));
        }
        self.store(files, last, self.flushed_wal_seq)
    }

    /// The files, in commit order.
    pub(crate) fn entries(&self) -> &[FileEntry] {
        &self.files
    }

    /// The partition folder name of a file entry (`date=2026-11-25`).
    pub(crate) fn partition_of(entry: &FileEntry) -> &str {
        entry.path.split('/').nth(1).unwrap_or_default()
    }

    fn store(
        &mut self,
        all_files: Vec<FileEntry>,
        last: HashMap<SeriesKey, LastValue>,
        flushed_wal_seq: u64,
    ) -> Result<()> {
        let doc = self.doc(all_files, &last, flushed_wal_seq);
        let json = encode(&doc)?;
        fsutil::write_atomic(&self.data_dir.join(CATALOG_FILE), &json)?;
        if let Some(remote) = &self.remote {
            remote.put_catalog(&json);
        }
        self.files = doc.files;
        self.last = last;
        self.flushed_wal_seq = flushed_wal_seq;
        Ok(())
    }

    fn doc(
        &self,
        all_files: Vec<FileEntry>,
        last: &HashMap<SeriesKey, LastValue>,
        flushed_wal_seq: u64,
    ) -> CatalogDoc {
        let mut entries: Vec<LastEntry> = last
            .iter()
            .map(|(&(org_id, device_id, pin), lv)| {
                let (number, text) = match &lv.value {
                    Value::Number(n) => (Some(format!("{n:?}")), None),
                    Value::Text(t) => (None, Some(t.clone())),
                };
                LastEntry {
                    org_id,
                    device_id,
                    pin,
                    ts_us: lv.ts_us,
                    number,
                    text,
                }
            })
            .collect();
        entries.sort_unstable_by_key(|e| (e.org_id, e.device_id, e.pin));
        CatalogDoc {
            format_version: FORMAT_VERSION,
            next_file_id: self.next_file_id,
            flushed_wal_seq,
            files: all_files,
            last_values: entries,
        }
    }

    /// Removes what a crash can leave behind: temporary files, and Parquet files that never made
    /// it into the catalog (their rows are still in the WAL and will be flushed again). Returns
    /// how many files were removed.
    pub(crate) fn remove_orphans(&self) -> Result<usize> {
        let mut removed = 0;
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
        let r = Catalog::load(dir.path(), None).unwrap();
        assert_eq!((r.flushed_wal_seq(), r.next_file_id()), (12, 3));
        assert_eq!(r.files(), c.files());
        let mut last: Vec<_> = r.last_values().map(|(k, v)| (k, v.clone())).collect();
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
