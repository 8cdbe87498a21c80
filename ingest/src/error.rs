//! Errors of the ingest tier.

/// Result alias of this crate.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// What can go wrong on the network edge.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Socket-level failure.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not the Blynk protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] pinhouse_protocol::ProtocolError),
    /// The storage engine refused or failed a write.
    #[error("storage error: {0}")]
    Storage(#[from] pinhouse_storage::StorageError),
    /// The device directory could not answer.
    #[error("directory error: {0}")]
    Directory(#[from] crate::DirectoryError),
    /// Certificate, key or TLS configuration problem.
    #[error("TLS: {0}")]
    Tls(String),
    /// The ingest tier is shutting down.
    #[error("ingest is shutting down")]
    ShuttingDown,
}
