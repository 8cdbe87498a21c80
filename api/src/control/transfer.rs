//! Moving a device or a user to another organization.
//!
//! A device must use a template of its own organization (a database constraint), so a device
//! moving to an organization that does not own its template needs a template of the target
//! organization (`template_id`). Telemetry already stored keeps the organization it was written
//! under.

use super::ControlPlane;
use super::devices::DeviceRecord;
use super::error::{ControlError, Result};
use super::users::UserView;
use crate::control::Narrow;

impl ControlPlane {
    /// Moves device `device_id` to `to_org`, switching to `template_id` when given (it must
    /// belong to `to_org`). The owner is cleared when they are not a member of `to_org`.
    pub async fn transfer_device(
        &self,
        device_id: u32,
        to_org: u32,
        template_id: Option<&str>,
    ) -> Result<DeviceRecord> {
        let current: Option<(i64, String)> =
            sqlx::query_as("SELECT org_id, template_id FROM devices WHERE id = $1")
                .bind(i64::from(device_id))
                .fetch_optional(&self.pool)
                .await?;
        let Some((from_org, current_template)) = current else {
            return Err(ControlError::not_found(format!(
                "device {device_id} not found"
            )));
        };
        let from_org: u32 = from_org.narrow()?;
        let template_id = template_id
            .map(str::trim)
            .unwrap_or(current_template.as_str())
            .to_owned();
        let usable: bool = sqlx::query_scalar::<_, i64>(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM templates WHERE id = $1 AND org_id = $2) THEN 1 ELSE 0 END",
        )
        .bind(&template_id)
        .bind(i64::from(to_org))
        .fetch_one(&self.pool)
        .await?
            != 0;
        if !usable {
            return Err(ControlError::validation(format!(
                "template {template_id:?} does not belong to organization {to_org}: \
                 give the template_id of a template of the target organization"
            )));
        }
        sqlx::query(
            "UPDATE devices SET org_id = $1, template_id = $2,
                 owner_user_id = (SELECT id FROM users WHERE id = owner_user_id AND org_id = $1)
             WHERE id = $3",
        )
        .bind(i64::from(to_org))
        .bind(&template_id)
        .bind(i64::from(device_id))
        .execute(&self.pool)
        .await?;
        tracing::info!(device_id, from_org, to_org, %template_id, "device transferred");
        self.device(to_org, device_id)
            .await?
            .ok_or_else(|| ControlError::not_found(format!("device {device_id} not found")))
    }

    /// Moves user `user_id` to `to_org`. Devices they own stay where they are.
    pub async fn transfer_user(&self, user_id: u32, to_org: u32) -> Result<UserView> {
        let done = sqlx::query("UPDATE users SET org_id = $1 WHERE id = $2")
            .bind(i64::from(to_org))
            .bind(i64::from(user_id))
            .execute(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                    ControlError::not_found(format!("organization {to_org} not found"))
                }
                _ => ControlError::from(e),
            })?;
        if done.rows_affected() == 0 {
            return Err(ControlError::not_found(format!("user {user_id} not found")));
        }
        tracing::info!(user_id, to_org, "user transferred");
        self.user_by_id(user_id)
            .await?
            .ok_or_else(|| ControlError::not_found(format!("user {user_id} not found")))
    }
}
