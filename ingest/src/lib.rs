//! pinhouse-ingest: the network edge for Blynk devices.
//!
//! Role: accept device connections (plain TCP, TLS, QUIC, and ports shared
//! with HTTP; the api crate feeds WebSocket streams in through
//! [`Ingest::serve_connection`]), run one [`session`] state machine for all
//! of them, log devices in through the
//! [`DeviceDirectory`] trait that the api crate implements, answer the protocol
//! (ping, info, sync, …), and route values: into storage in batches, and from
//! the cloud back to connected devices.
//!
//! Depends on `pinhouse-protocol` and `pinhouse-storage`. It must not depend on
//! `pinhouse-query`, `pinhouse-api`, DataFusion or any database: "which device
//! owns this token?" is asked through [`DeviceDirectory`].

mod clock;
mod config;
mod directory;
mod error;
mod hub;
mod live;
mod metrics;
mod outbox;
mod pins;
mod quic;
mod quota;
pub mod session;
mod tcp;
mod tls;
mod transport;

pub use clock::now_us;
pub use config::IngestConfig;
pub use directory::{DeviceActivity, DeviceDirectory, DeviceIdentity, DirectoryError};
pub use error::{IngestError, Result};
pub use hub::{CLOUD_WRITE_MSG_ID, Ingest};
pub use live::{LIVE_CAPACITY, LiveBatch};
pub use metrics::{IngestMetrics, Refusal};
pub use pins::{PinKind, PinRef};
pub use tcp::{HttpConn, PlainHttp, TlsHttp};
pub use tls::{CertSource, QUIC_ALPN, TlsIdentity, provider};
pub use transport::{Prefixed, Sniffed, Transport, classify, sniff};
