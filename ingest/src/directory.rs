//! How ingest learns which device owns a token, without knowing the control plane.

use async_trait::async_trait;

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

/// Resolves auth tokens to devices. Implemented by the api crate over the
/// control-plane database; tests implement it over a map.
#[async_trait]
pub trait DeviceDirectory: Send + Sync + 'static {
    /// `Ok(None)` when no device has this token.
    async fn lookup(&self, token: &str) -> Result<Option<DeviceIdentity>, DirectoryError>;
}
