//! The object store: where pinhouse keeps large immutable objects (today: firmware binaries).
//!
//! Local disk by default (objects are files under the data directory, so the layout of a data
//! directory does not change); an S3-compatible bucket as an option, through the
//! [`object_store`] crate. The configuration is one string:
//!
//! - `file://<dir>` or a plain path: files under `<dir>`;
//! - `s3://<bucket>[/<prefix>]`: the bucket, with keys under `<prefix>/`. Credentials, region
//!   and endpoint come from the usual `AWS_*` variables (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` for MinIO/Ceph/moto,
//!   `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint).
//!
//! [`Objects::put_durable`] returns only once the object is durable: an S3 PUT is acknowledged
//! after the service stored it; on local disk the file and its directory are fsynced (the
//! `object_store` crate's local store renames atomically but does not fsync).
//!
//! `object_store` is async; this module only builds and wraps the handle, it spawns nothing,
//! and the write-ahead log and Parquet engine of this crate do not use it.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Result, StorageError};

/// Where objects live, parsed from the configuration string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectLocation {
    /// Files under this directory.
    Local(PathBuf),
    /// An S3-compatible bucket and a key prefix (no leading or trailing `/`, may be empty).
    S3 { bucket: String, prefix: String },
}

impl ObjectLocation {
    /// Parses `file://<dir>`, `s3://<bucket>[/<prefix>]` or a plain directory path.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
            if !valid_bucket {
                return Err(StorageError::InvalidInput(format!(
                    "object store {text:?}: {bucket:?} is not an S3 bucket name (3–63 of a-z, 0-9, '-', '.')"
                )));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if let Some((scheme, _)) = text.split_once("://")
            && scheme != "file"
        {
            return Err(StorageError::InvalidInput(format!(
                "object store {text:?}: unsupported scheme {scheme:?} (use file://<dir> or s3://<bucket>/<prefix>)"
            )));
        }
        let dir = text.strip_prefix("file://").unwrap_or(text);
        if dir.is_empty() {
            return Err(StorageError::InvalidInput(
                "object store: empty directory".into(),
            ));
        }
        Ok(Self::Local(PathBuf::from(dir)))
    }
}

impl std::fmt::Display for ObjectLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(dir) => write!(f, "file://{}", dir.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// A handle on the object store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// For the local store: its root, to fsync what was written.
    local_root: Option<PathBuf>,
    location: ObjectLocation,
}

/// An `object_store` error as this crate's.
pub(crate) fn object_error(e: object_store::Error) -> StorageError {
    StorageError::ObjectStore(e.to_string())
}

impl Objects {
    /// Opens the store at `location` (creating the local directory if needed). Nothing is
    /// contacted yet: a wrong bucket or credentials show on the first request.
    pub fn open(location: &ObjectLocation) -> Result<Self> {
        let (store, local_root): (Arc<dyn ObjectStore>, _) = match location {
            ObjectLocation::Local(dir) => {
                std::fs::create_dir_all(dir)?;
                let store = LocalFileSystem::new_with_prefix(dir).map_err(object_error)?;
                (Arc::new(store), Some(dir.clone()))
            }
            ObjectLocation::S3 { bucket, prefix } => {
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(object_error)?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                };
                (store, None)
            }
        };
        Ok(Self {
            store,
            local_root,
            location: location.clone(),
        })
    }

    /// Where the objects live.
    pub fn location(&self) -> &ObjectLocation {
        &self.location
    }

    /// The underlying `object_store` handle (for streaming and ranged reads).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Stores `bytes` under `key` (e.g. `firmware/<sha256>.bin`), returning once it is durable.
    pub async fn put_durable(&self, key: &str, bytes: Bytes) -> Result<()> {
        let path = key_path(key)?;
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(object_error)?;
        if let Some(root) = &self.local_root {
            sync_local(&root.join(key))?;
        }
        Ok(())
    }

    /// The whole object `key`, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.store.get(&key_path(key)?).await {
            Ok(found) => Ok(Some(found.bytes().await.map_err(object_error)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(object_error(e)),
        }
    }

    /// Deletes `key`; deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&key_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(object_error(e)),
        }
    }
}

/// An object key as an `object_store` path; keys are relative, `/`-separated, without `..`.
pub fn key_path(key: &str) -> Result<Path> {
    let valid = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if !valid {
        return Err(StorageError::InvalidInput(format!(
            "invalid object key {key:?}"
        )));
    }
    Path::parse(key).map_err(|e| StorageError::InvalidInput(format!("object key {key:?}: {e}")))
}

/// fsync a file written by the local store and the directory that names it.
fn sync_local(file: &FsPath) -> Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            ObjectLocation::parse("s3://my-bucket/pinhouse/prod/").unwrap(),
            ObjectLocation::S3 {
                bucket: "my-bucket".into(),
                prefix: "pinhouse/prod".into()
            }
        );
        assert_eq!(
            ObjectLocation::parse("s3://my-bucket").unwrap(),
            ObjectLocation::S3 {
                bucket: "my-bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            ObjectLocation::parse("file:///var/lib/pinhouse").unwrap(),
            ObjectLocation::Local("/var/lib/pinhouse".into())
        );
        assert_eq!(
            ObjectLocation::parse("data").unwrap(),
            ObjectLocation::Local("data".into())
        );
        for bad in [
            "s3://",
            "s3://Upper",
            "s3://a",
            "gs://bucket",
            "",
            "file://",
        ] {
            assert!(ObjectLocation::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ObjectLocation::parse("s3://b-1/x").unwrap().to_string(),
            "s3://b-1/x"
        );
    }

    #[test]
    fn keys_are_relative_without_dot_segments() {
        assert!(key_path("firmware/abc.bin").is_ok());
        for bad in ["", "/abs", "a//b", "../x", "a/./b", "a/"] {
            assert!(key_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn local_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(&ObjectLocation::Local(dir.path().to_owned())).unwrap();
        block_on(async {
            objects
                .put_durable("firmware/a.bin", Bytes::from_static(b"hello"))
                .await
                .unwrap();
            assert_eq!(
                objects.get("firmware/a.bin").await.unwrap().as_deref(),
                Some(&b"hello"[..])
            );
            assert!(objects.get("firmware/b.bin").await.unwrap().is_none());
            objects.delete("firmware/a.bin").await.unwrap();
            objects.delete("firmware/a.bin").await.unwrap();
            assert!(objects.get("firmware/a.bin").await.unwrap().is_none());
        });
        // The local layout is plain files under the root.
        assert!(dir.path().join("firmware").is_dir());
    }

    /// The local store completes its futures inline when there is no tokio runtime, so polling
    /// with a no-op waker suffices (this crate does not depend on tokio).
    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::yield_now();
        }
    }
}
