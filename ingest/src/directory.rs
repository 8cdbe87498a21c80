//! How ingest learns which device owns a token, without knowing the control plane.

use async_trait::async_trait;
use pinhouse_protocol::body::DeviceInfo;

/// The device a valid auth token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// Tenant of the device.
    pub org_id: u32,
    /// Control-plane id of the device.
    pub device_id: u32,
    /// Template id (`TMPL…`) the device was created from, if any.
    pub template_id: Option<String>,
}

/// The directory failed (database down, …); distinct from "unknown token".
#[derive(Debug, thiserror::Error)]
#[error("device directory unavailable: {0}")]
pub struct DirectoryError(pub String);

/// Something a device did that the control plane keeps: its online state, what
/// it said about itself, its widget properties and its event timeline.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceActivity {
    /// A session of the device logged in (the first one or another).
    Online { device_id: u32 },
    /// The last session of the device closed.
    Offline { device_id: u32 },
    /// The device's `internal` info message (firmware, build, heartbeat, …).
    Info {
        device_id: u32,
        info: Box<DeviceInfo>,
    },
    /// `Blynk.setProperty(pin, name, values…)`.
    Property {
        device_id: u32,
        pin: u8,
        name: String,
        values: Vec<String>,
    },
    /// `Blynk.logEvent(code[, description])`.
    LogEvent {
        device_id: u32,
        code: String,
        description: Option<String>,
    },
    /// `Blynk.resolveEvent(code)` / `resolveAllEvents(code)`.
    ResolveEvent {
        device_id: u32,
        code: String,
        all: bool,
    },
    /// `Blynk.setMetadata(name, value)` (`internal meta set`).
    MetaSet {
        device_id: u32,
        name: String,
        value: String,
    },
}

/// Resolves auth tokens to devices and takes note of what devices do.
/// Implemented by the api crate over the control-plane database; tests
/// implement it over a map.
#[async_trait]
pub trait DeviceDirectory: Send + Sync + 'static {
    /// `Ok(None)` when no device has this token.
    async fn lookup(&self, token: &str) -> Result<Option<DeviceIdentity>, DirectoryError>;

    /// Record `activity`. Called on the ingest path, in the order things
    /// happened: it must not block or wait for a database (queue the work).
    fn report(&self, activity: DeviceActivity);

    /// The device's metadata value `name` (`internal meta get`): `Ok(None)` when the
    /// device has no such field or no value. The default knows no metadata.
    async fn metadata(&self, device_id: u32, name: &str) -> Result<Option<String>, DirectoryError> {
        let _ = (device_id, name);
        Ok(None)
    }
}
