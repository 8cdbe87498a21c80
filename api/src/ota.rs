//! OTA firmware updates, Blynk.Air style: firmware upload, shipments rolled
//! out in health-gated cohorts, the `INTERNAL ota` signal to devices, and the
//! download endpoint the Blynk library fetches.
//!
//! Flow of one device: `pending` → (device online, its cohort open, inside
//! the window) the engine sends `INTERNAL ota\0<url>` with a per-device,
//! expiring link → `sent` → the device fetches the link → `downloading` →
//! it reboots and logs in again; its info message (kept in `device_status`
//! by the ingest tier) shows the new `build` → once it has also sent data
//! (the health check) → `success`. A device that does not come back within
//! the shipment's timeout is `timed_out`; one that comes back with the old
//! build is signalled again until the attempts limit, then `failed`.
//!
//! A shipment opens its cohorts one after another (e.g. 1% → 10% → 100% of
//! its devices) and opens the next only when every device of the current one
//! has an outcome and the failed share stays at or below the threshold;
//! otherwise it halts and says why. Every step is logged and recorded on the
//! device's event timeline.
//!
//! Depends on the control plane (devices, templates, device status, events)
//! and on ingest (online state, pushing frames to devices, last values); the
//! control plane does not depend on it.

mod download;
mod engine;
mod firmware;
mod rollout;
mod routes;
mod shipments;

use std::sync::Arc;
use std::time::Duration;

use pinhouse_ingest::Ingest;
use pinhouse_storage::objects::Objects;
use sqlx::AnyPool;

use crate::control::ControlPlane;

pub use firmware::{Declared, FirmwareRecord};
pub use routes::routes;
pub use shipments::{NewShipment, ShipmentDeviceView, ShipmentView};

/// Settings of the OTA service.
#[derive(Debug, Clone)]
pub struct OtaConfig {
    /// Base URL devices use to reach the HTTP port (`http://host:8080`), put in
    /// the links sent to devices.
    pub public_url: String,
    /// How long a per-device download link stays valid.
    pub link_ttl: Duration,
    /// Largest firmware binary accepted.
    pub max_firmware_bytes: usize,
    /// How often the rollout engine looks at running shipments.
    pub tick: Duration,
}

impl OtaConfig {
    /// Defaults for a server reachable at `public_url`: links valid 1 h,
    /// binaries up to 16 MiB, engine tick 1 s.
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            link_ttl: Duration::from_secs(3600),
            max_firmware_bytes: 16 << 20,
            tick: Duration::from_secs(1),
        }
    }
}

/// Handle on the OTA service; cheap to clone.
#[derive(Clone)]
pub struct Ota {
    inner: Arc<Inner>,
}

struct Inner {
    control: ControlPlane,
    ingest: Ingest,
    objects: Objects,
    config: OtaConfig,
}

impl std::fmt::Debug for Ota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ota")
            .field("objects", &self.inner.objects.location())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Ota {
    /// The service over `control` and `ingest`, keeping binaries in `objects` under
    /// `firmware/<sha256>.bin`.
    pub fn new(control: ControlPlane, ingest: Ingest, objects: Objects, config: OtaConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                control,
                ingest,
                objects,
                config,
            }),
        }
    }

    /// Settings in use.
    pub fn config(&self) -> &OtaConfig {
        &self.inner.config
    }

    /// Run the rollout engine until `shutdown` turns true.
    pub async fn run_engine(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        engine::run(self, shutdown).await;
    }

    fn pool(&self) -> &AnyPool {
        self.inner.control.pool()
    }
}

fn now_ms() -> i64 {
    crate::control::now_ms()
}
