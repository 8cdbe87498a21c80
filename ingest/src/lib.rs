//! pinhouse-ingest: the network edge for Blynk devices.
//!
//! Role: accept device connections (plain TCP today; TLS, WebSocket and QUIC
//! plug into the same [`session`] state machine), log devices in through the
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
mod pins;
pub mod session;
mod tcp;

pub use clock::now_us;
pub use config::IngestConfig;
pub use directory::{DeviceDirectory, DeviceIdentity, DirectoryError};
pub use error::{IngestError, Result};
pub use hub::Ingest;
pub use pins::{PinKind, PinRef};
