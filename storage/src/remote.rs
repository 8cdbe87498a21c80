//! The Parquet tier in an object store: every cataloged Parquet file, and the catalog itself,
//! also kept in a bucket (S3-compatible, or a directory), so that the data outlives the local
//! disk.
//!
//! - A new file (flush, compaction, retention, device deletion) is uploaded after it is
//!   durable on local disk and **before** the catalog lists it: WAL segments are deleted only
//!   once the rows they hold are durable in the bucket.
//! - The catalog (`catalog.json`) is uploaded after each local commit, preceded by what the
//!   commit added to the last-value log (`last_log.rs`): a new generation's file as the
//!   object `last_values/<generation>/<offset 0>`, an appended record as
//!   `last_values/<generation>/<its offset>`. A failed upload is retried at the next commit
//!   (a failed log upload makes that commit start a new generation); meanwhile files it no
//!   longer lists are not deleted from the bucket, so the bucket's catalog never names a
//!   missing file or log byte. A replaced generation's objects are deleted once the bucket's
//!   catalog names a newer one.
//! - A file replaced in the catalog is deleted from the bucket when it is deleted from disk.
//! - On open (`reconcile`): a data directory without a catalog takes the bucket's (a
//!   replaced disk, a new machine) and its last-value log; cataloged files missing on disk are
//!   downloaded, files missing from the bucket are uploaded (a store that had no bucket
//!   before), and objects the catalog does not list are deleted (uploads of a flush that never
//!   committed). A bucket whose catalog is newer than the local one is refused: the data
//!   directory is stale.
//!
//! A bucket prefix belongs to one data directory. Local disk keeps a full copy: queries read
//! local files only.
//!
//! This crate does not depend on tokio: `object_store` futures are run by a [`BlockOn`] the
//! embedding program supplies (the server runs them on its runtime), on the store's own
//! threads.

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ListResult, ObjectStore};

use crate::catalog::{self, CATALOG_FILE, PARQUET_DIR};
use crate::error::{Result, StorageError};
use crate::fsutil;
use crate::last_log::{self, LAST_DIR, LogRef};
use crate::objects::{ObjectLocation, Objects, object_error};

/// A future of an object-store operation, as handed to a [`BlockOn`].
pub type RemoteFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// Runs a future to completion on the calling thread (for example through a tokio runtime
/// handle's `block_on`). Called only from the store's own threads and from
/// [`Storage::open`](crate::Storage::open), never from async code of this crate.
pub type BlockOn = Arc<dyn for<'a> Fn(RemoteFuture<'a>) -> Result<()> + Send + Sync>;

/// Where Parquet files are kept besides local disk. Cheap to clone.
#[derive(Clone)]
pub struct ParquetRemote {
    objects: Objects,
    block_on: BlockOn,
    /// The bucket's catalog is older than the local one (its last upload failed).
    catalog_stale: Arc<AtomicBool>,
}

impl std::fmt::Debug for ParquetRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetRemote")
            .field("location", self.objects.location())
            .finish_non_exhaustive()
    }
}

/// What [`reconcile`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reconciled {
    pub downloaded: usize,
    pub uploaded: usize,
    pub orphans_deleted: usize,
}

impl ParquetRemote {
    /// The tier at `objects`, its futures run by `block_on`.
    pub fn new(objects: Objects, block_on: BlockOn) -> Self {
        Self {
            objects,
            block_on,
            catalog_stale: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Where the files are kept.
    pub fn location(&self) -> &ObjectLocation {
        self.objects.location()
    }

    fn run<'a>(&self, fut: impl Future<Output = Result<()>> + Send + 'a) -> Result<()> {
        (self.block_on)(Box::pin(fut))
    }

    /// Uploads the local file `path` as `key`; returns once the bucket holds it durably.
    pub(crate) fn upload(&self, key: &str, path: &Path) -> Result<()> {
        let bytes = Bytes::from(std::fs::read(path).map_err(StorageError::io_path(path))?);
        self.run(self.objects.put_durable(key, bytes))
    }

    /// Downloads `key` to `path` crash-safely (temporary file, fsync, rename); `false` when the
    /// bucket has no such object.
    pub(crate) fn download(&self, key: &str, path: &Path) -> Result<bool> {
        let Some(bytes) = self.get(key)? else {
            return Ok(false);
        };
        if let Some(dir) = path.parent() {
            fsutil::create_dir_all_synced(dir)?;
        }
        fsutil::write_atomic(path, &bytes)?;
        Ok(true)
    }

    /// The object `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let mut found = None;
        self.run(async {
            found = self.objects.get(key).await?;
            Ok(())
        })?;
        Ok(found)
    }

    /// Deletes `key` (a missing object is not an error).
    pub(crate) fn delete(&self, key: &str) -> Result<()> {
        self.run(self.objects.delete(key))
    }

    /// One level of the bucket under `dir`: its objects and its sub-folders.
    fn list_dir(&self, dir: &ObjectPath) -> Result<ListResult> {
        let mut out = None;
        self.run(async {
            out = Some(
                self.objects
                    .store()
                    .list_with_delimiter(Some(dir))
                    .await
                    .map_err(object_error)?,
            );
            Ok(())
        })?;
        out.ok_or_else(|| StorageError::ObjectStore("a bucket listing did not complete".into()))
    }

    /// The keys of every Parquet object in the bucket.
    fn list_parquet(&self) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for partition in self
            .list_dir(&ObjectPath::from(PARQUET_DIR))?
            .common_prefixes
        {
            for object in self.list_dir(&partition)?.objects {
                out.insert(object.location.to_string());
            }
        }
        Ok(out)
    }

    /// Uploads the catalog document; a failure is logged and remembered (see
    /// [`ParquetRemote::catalog_in_sync`]), not returned: the local commit stands.
    pub(crate) fn put_catalog(&self, json: &[u8]) {
        let result = self.run(
            self.objects
                .put_durable(CATALOG_FILE, Bytes::copy_from_slice(json)),
        );
        match result {
            Ok(()) => self.catalog_stale.store(false, Ordering::Release),
            Err(e) => {
                self.catalog_stale.store(true, Ordering::Release);
                tracing::warn!(error = %e, location = %self.location(), "uploading the catalog to the bucket failed; retried at the next commit");
            }
        }
    }

    /// Whether the bucket's catalog is the local one: files it no longer lists may go.
    pub(crate) fn catalog_in_sync(&self) -> bool {
        !self.catalog_stale.load(Ordering::Acquire)
    }

    /// Records that the bucket's catalog is behind the local one (its upload was skipped).
    pub(crate) fn mark_catalog_stale(&self) {
        self.catalog_stale.store(true, Ordering::Release);
    }

    /// Uploads `bytes` written at `offset` of last-value log generation `generation`.
    pub(crate) fn put_last_values(&self, generation: u64, offset: u64, bytes: &[u8]) -> Result<()> {
        self.run(
            self.objects
                .put_durable(&log_key(generation, offset), Bytes::copy_from_slice(bytes)),
        )
    }

    /// The objects of last-value log generation `generation`: `(offset, key, size)` by offset.
    fn log_objects(&self, generation: u64) -> Result<Vec<(u64, String, u64)>> {
        let dir = ObjectPath::from(format!("{LAST_DIR}/{generation:020}"));
        let mut out: Vec<(u64, String, u64)> = self
            .list_dir(&dir)?
            .objects
            .into_iter()
            .filter_map(|object| {
                let key = object.location.to_string();
                let offset = key.rsplit('/').next()?.parse().ok()?;
                Some((offset, key, object.size))
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The generations of the last-value log that have objects in the bucket.
    fn log_generations(&self) -> Result<Vec<u64>> {
        Ok(self
            .list_dir(&ObjectPath::from(LAST_DIR))?
            .common_prefixes
            .iter()
            .filter_map(|prefix| prefix.filename()?.parse().ok())
            .collect())
    }

    /// Deletes every object of last-value log generation `generation`.
    pub(crate) fn delete_last_values(&self, generation: u64) -> Result<()> {
        for (_, key, _) in self.log_objects(generation)? {
            self.delete(&key)?;
        }
        Ok(())
    }

    /// The objects holding the committed bytes of `log`, in order, when they cover them back
    /// to back (objects past the committed length are an upload whose commit never reached
    /// the bucket's catalog, and are not needed).
    fn log_cover(&self, log: LogRef) -> Result<Option<Vec<String>>> {
        let mut keys = Vec::new();
        let mut at = 0;
        for (offset, key, size) in self.log_objects(log.generation)? {
            if at >= log.length {
                break;
            }
            if offset != at {
                return Ok(None);
            }
            keys.push(key);
            at += size;
        }
        Ok((at >= log.length).then_some(keys))
    }

    /// The committed bytes of the log `log` as the bucket holds them, `None` when its objects
    /// do not cover them back to back.
    fn get_last_values(&self, log: LogRef) -> Result<Option<Vec<u8>>> {
        let Some(keys) = self.log_cover(log)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        for key in keys {
            match self.get(&key)? {
                Some(b) => bytes.extend_from_slice(&b),
                None => return Ok(None),
            }
        }
        if (bytes.len() as u64) < log.length {
            return Ok(None);
        }
        bytes.truncate(usize::try_from(log.length).unwrap_or(usize::MAX));
        Ok(Some(bytes))
    }
}

/// The object key of the bytes at `offset` of last-value log generation `generation`.
fn log_key(generation: u64, offset: u64) -> String {
    format!("{LAST_DIR}/{generation:020}/{offset:020}")
}

/// The two numbers that grow with every commit of a catalog document, to tell which of two
/// catalogs is newer.
fn catalog_position(json: &[u8], what: &Path) -> Result<(u64, u64)> {
    #[derive(serde::Deserialize)]
    struct Position {
        next_file_id: u64,
        flushed_wal_seq: u64,
    }
    let p: Position = serde_json::from_slice(json)
        .map_err(|e| StorageError::corrupt(what, format!("unparsable catalog: {e}")))?;
    Ok((p.next_file_id, p.flushed_wal_seq))
}

/// Before the catalog is loaded: takes the bucket's catalog when the data directory has none,
/// and refuses a bucket whose catalog is newer than the local one. Returns whether the
/// catalog was restored.
pub(crate) fn restore_catalog(remote: &ParquetRemote, data_dir: &Path) -> Result<bool> {
    let local_path = data_dir.join(CATALOG_FILE);
    let Some(remote_json) = remote.get(CATALOG_FILE)? else {
        return Ok(false);
    };
    let remote_label = PathBuf::from(format!("{}/{CATALOG_FILE}", remote.location()));
    let remote_pos = catalog_position(&remote_json, &remote_label)?;
    match std::fs::read(&local_path) {
        Ok(local_json) => {
            let local_pos = catalog_position(&local_json, &local_path)?;
            if remote_pos.0 > local_pos.0 || remote_pos.1 > local_pos.1 {
                return Err(StorageError::InvalidInput(format!(
                    "the catalog in {} is newer than {} (file ids up to {} vs {}, WAL position {} vs {}): \
                     this data directory is stale or belongs to another store; move its catalog.json \
                     aside to restore from the bucket",
                    remote.location(),
                    local_path.display(),
                    remote_pos.0,
                    local_pos.0,
                    remote_pos.1,
                    local_pos.1
                )));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The last values first: the catalog names them.
            let log = catalog::log_of(&remote_json, &remote_label)?;
            if log.generation != 0 {
                let bytes = remote.get_last_values(log)?.ok_or_else(|| {
                    StorageError::corrupt(
                        &remote_label,
                        format!(
                            "names {} bytes of last-value log generation {} that the bucket does not hold",
                            log.length, log.generation
                        ),
                    )
                })?;
                let dir = data_dir.join(LAST_DIR);
                fsutil::create_dir_all_synced(&dir)?;
                fsutil::write_atomic(&dir.join(last_log::file_name(log.generation)), &bytes)?;
            }
            fsutil::write_atomic(&local_path, &remote_json)?;
            tracing::warn!(
                location = %remote.location(),
                next_file_id = remote_pos.0,
                flushed_wal_seq = remote_pos.1,
                "no local catalog: restored the catalog from the bucket"
            );
            Ok(true)
        }
        Err(e) => Err(StorageError::IoPath {
            path: local_path,
            source: e,
        }),
    }
}

/// Makes the bucket and local disk both hold exactly the cataloged files (`files`: object key
/// and local path of each), makes the bucket hold the committed last-value log `log` (its
/// committed bytes read by `log_bytes` only when the bucket lacks them) and no other
/// generation, then uploads `catalog_json`. See the module documentation.
pub(crate) fn reconcile(
    remote: &ParquetRemote,
    files: &[(String, PathBuf)],
    log: LogRef,
    log_bytes: impl FnOnce() -> Result<Option<Vec<u8>>>,
    catalog_json: &[u8],
) -> Result<Reconciled> {
    let started = Instant::now();
    let mut done = Reconciled::default();
    let mut in_bucket = remote.list_parquet()?;
    for (i, (key, local)) in files.iter().enumerate() {
        match (local.is_file(), in_bucket.remove(key.as_str())) {
            (true, true) => {}
            (true, false) => {
                remote.upload(key, local)?;
                done.uploaded += 1;
            }
            (false, true) => {
                if !remote.download(key, local)? {
                    return Err(StorageError::corrupt(
                        local,
                        format!(
                            "listed in {} but could not be read from it",
                            remote.location()
                        ),
                    ));
                }
                done.downloaded += 1;
            }
            (false, false) => {
                return Err(StorageError::corrupt(
                    local,
                    format!(
                        "cataloged file is neither on disk nor in {}",
                        remote.location()
                    ),
                ));
            }
        }
        if (i + 1) % 100 == 0 {
            tracing::info!(
                files = i + 1,
                of = files.len(),
                downloaded = done.downloaded,
                uploaded = done.uploaded,
                "reconciling Parquet files with the bucket"
            );
        }
    }
    for key in &in_bucket {
        remote.delete(key)?;
        done.orphans_deleted += 1;
    }
    if log.generation != 0
        && remote.log_cover(log)?.is_none()
        && let Some(bytes) = log_bytes()?
    {
        remote.delete_last_values(log.generation)?;
        remote.put_last_values(log.generation, 0, &bytes)?;
        tracing::info!(
            generation = log.generation,
            bytes = bytes.len(),
            "uploaded the last-value log to the bucket"
        );
    }
    for generation in remote.log_generations()? {
        if generation != log.generation {
            remote.delete_last_values(generation)?;
            tracing::info!(
                generation,
                "deleted a last-value log generation the catalog does not name from the bucket"
            );
        }
    }
    remote.put_catalog(catalog_json);
    if done != Reconciled::default() {
        tracing::info!(
            location = %remote.location(),
            downloaded = done.downloaded,
            uploaded = done.uploaded,
            orphans_deleted = done.orphans_deleted,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Parquet files reconciled with the bucket"
        );
    }
    Ok(done)
}

/// The object key of the local file `path` under `data_dir`.
pub(crate) fn path_to_key(data_dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(data_dir).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}
