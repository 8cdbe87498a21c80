//! The control plane as ingest's device directory.

use async_trait::async_trait;
use pinhouse_ingest::{DeviceDirectory, DeviceIdentity, DirectoryError};

use crate::control::ControlPlane;

/// Resolves device auth tokens through the control-plane database.
#[derive(Debug, Clone)]
pub struct ControlDirectory(pub ControlPlane);

#[async_trait]
impl DeviceDirectory for ControlDirectory {
    async fn lookup(&self, token: &str) -> Result<Option<DeviceIdentity>, DirectoryError> {
        let device = self
            .0
            .device_by_token(token)
            .await
            .map_err(|err| DirectoryError(err.to_string()))?;
        Ok(device.map(|d| DeviceIdentity {
            org_id: d.org_id,
            device_id: d.id,
            template_id: Some(d.template_id),
        }))
    }
}
