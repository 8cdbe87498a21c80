//! The storage error type.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything that can go wrong in the telemetry store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// An I/O error on a known file.
    #[error("I/O error on {path}: {source}")]
    IoPath {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Parquet encoding or decoding failed.
    #[error("Parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    /// Arrow kernel or builder error.
    #[error("Arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// A file on disk is not what it should be (bad magic, bad checksum in a place where a torn
    /// write is impossible, unparsable catalog, ...).
    #[error("corrupt {path}: {reason}")]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A file was written by a newer (or unknown) version of the format.
    #[error("unsupported format version {version} in {path}")]
    UnsupportedVersion {
        /// The offending file.
        path: PathBuf,
        /// The version found in the file.
        version: u32,
    },

    /// The caller handed in something the store cannot take (e.g. a record too large for the WAL).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// Writing a memtable to Parquet failed (it stays in memory and the WAL; retried).
    #[error("flush to Parquet failed: {0}")]
    Flush(String),

    /// An earlier unrecoverable WAL failure (typically a failed fsync) poisoned the write path;
    /// the store must be reopened.
    #[error("write path poisoned by an earlier failure: {0}")]
    Poisoned(String),

    /// Another open store (in this or another process) holds the data directory.
    #[error("data directory {0} is in use by another storage instance")]
    Locked(PathBuf),

    /// The object store (local files or an S3-compatible bucket) failed a request.
    #[error("object store: {0}")]
    ObjectStore(String),

    /// The store was closed (or its background threads are gone).
    #[error("storage is closed")]
    Closed,
}

impl StorageError {
    pub(crate) fn io_path(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::IoPath { path, source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A copy of this error for delivery to one of several waiters of a failed WAL group
    /// (the error types inside are not `Clone`).
    pub(crate) fn duplicate(&self) -> StorageError {
        match self {
            StorageError::Io(e) => StorageError::Io(std::io::Error::new(e.kind(), e.to_string())),
            StorageError::IoPath { path, source } => StorageError::IoPath {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StorageError::Corrupt { path, reason } => StorageError::Corrupt {
                path: path.clone(),
                reason: reason.clone(),
            },
            StorageError::UnsupportedVersion { path, version } => {
                StorageError::UnsupportedVersion {
                    path: path.clone(),
                    version: *version,
                }
            }
            StorageError::InvalidInput(m) => StorageError::InvalidInput(m.clone()),
            StorageError::Poisoned(m) => StorageError::Poisoned(m.clone()),
            StorageError::ObjectStore(m) => StorageError::ObjectStore(m.clone()),
            StorageError::Closed => StorageError::Closed,
            StorageError::Locked(p) => StorageError::Locked(p.clone()),
            other => StorageError::Poisoned(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keeps_io_kind() {
        let e = StorageError::Io(std::io::Error::new(std::io::ErrorKind::StorageFull, "full"));
        match e.duplicate() {
            StorageError::Io(d) => assert_eq!(d.kind(), std::io::ErrorKind::StorageFull),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            StorageError::Closed.duplicate(),
            StorageError::Closed
        ));
    }
}
