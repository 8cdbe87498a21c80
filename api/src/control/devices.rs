//! Devices: a name, a template of the same organization, and the auth token the Blynk library
//! logs in with (128 random bits as 32 lowercase hex characters).

use serde::{Deserialize, Serialize};

use super::ControlPlane;
use super::auth::Principal;
use super::error::{ControlError, Result};
use super::secrets;
use super::time::{now_ms, rfc3339};

/// Longest token looked up at all; longer input is rejected without touching the database.
const MAX_TOKEN_LEN: usize = 128;

/// A device as the API and the device side see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceRecord {
    pub id: u32,
    pub org_id: u32,
    pub name: String,
    pub template_id: String,
    /// Auth token of the device.
    pub token: String,
    /// The user the device belongs to (its creator or claimer), if any.
    pub owner_user_id: Option<u32>,
    /// RFC 3339 (`2026-11-25T18:01:38.123Z`).
    pub created_at: String,
}

/// Body of `POST /api/v1/devices`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewDevice {
    pub name: String,
    pub template_id: String,
    /// Organization of the device: the caller's own (default) or one the caller manages.
    #[serde(default)]
    pub org_id: Option<u32>,
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    #[sqlx(try_from = "i64")]
    id: u32,
    #[sqlx(try_from = "i64")]
    org_id: u32,
    name: String,
    template_id: String,
    token: String,
    #[sqlx(try_from = "crate::control::NullableInt")]
    owner_user_id: Option<u32>,
    created_at: i64,
}

impl From<DeviceRow> for DeviceRecord {
    fn from(row: DeviceRow) -> Self {
        Self {
            id: row.id,
            org_id: row.org_id,
            name: row.name,
            template_id: row.template_id,
            token: row.token,
            owner_user_id: row.owner_user_id,
            created_at: rfc3339(row.created_at),
        }
    }
}

impl ControlPlane {
    /// Creates a device owned by the caller in organization `org_id` (the caller checked it may),
    /// with a fresh token. The template must belong to the same organization.
    pub async fn create_device(
        &self,
        principal: &Principal,
        org_id: u32,
        new: &NewDevice,
    ) -> Result<DeviceRecord> {
        let name = new.name.trim();
        if name.is_empty() {
            return Err(ControlError::validation("device name must not be empty"));
        }
        let template_id = new.template_id.trim();
        let exists: bool = sqlx::query_scalar::<_, i64>(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM templates WHERE id = $1 AND org_id = $2) THEN 1 ELSE 0 END",
        )
        .bind(template_id)
        .bind(i64::from(org_id))
        .fetch_one(&self.pool)
        .await?
            != 0;
        if !exists {
            return Err(unknown_template(template_id));
        }
        let mut attempt = 0;
        let row: DeviceRow = loop {
            attempt += 1;
            let inserted = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "INSERT INTO devices (org_id, template_id, name, token, owner_user_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {DEVICE_COLUMNS}"
            )))
            .bind(i64::from(org_id))
            .bind(template_id)
            .bind(name)
            .bind(secrets::device_token())
            .bind(i64::from(principal.user_id))
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await;
            match inserted {
                Ok(row) => break row,
                // A token collision (2^128 tokens): draw again.
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() && attempt < 5 => {}
                // The template was deleted since the check above.
                Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                    return Err(unknown_template(template_id));
                }
                Err(e) => return Err(e.into()),
            }
        };
        tracing::info!(
            device_id = row.id,
            org_id = row.org_id,
            template_id = %row.template_id,
            user_id = principal.user_id,
            "device created"
        );
        Ok(row.into())
    }

    /// The devices of `org_id`, by id.
    pub async fn devices(&self, org_id: u32) -> Result<Vec<DeviceRecord>> {
        let rows: Vec<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE org_id = $1 ORDER BY id"
        )))
        .bind(i64::from(org_id))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(DeviceRecord::from).collect())
    }

    /// The device `device_id` if it belongs to `org_id`.
    pub async fn device(&self, org_id: u32, device_id: u32) -> Result<Option<DeviceRecord>> {
        let row: Option<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1 AND org_id = $2"
        )))
        .bind(i64::from(device_id))
        .bind(i64::from(org_id))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(DeviceRecord::from))
    }

    /// The device that owns an auth token (exact match through the unique index), for device
    /// login and the device HTTP API.
    pub async fn device_by_token(&self, token: &str) -> Result<Option<DeviceRecord>> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        // A dynamic token whose device never logged in stops working when it expires.
        let row: Option<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE token = $1
               AND (provision_expires_at IS NULL OR provision_expires_at > $2)"
        )))
        .bind(token)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(DeviceRecord::from))
    }
}

impl ControlPlane {
    /// The device `device_id`, whatever its organization (callers check access).
    pub async fn device_by_id(&self, device_id: u32) -> Result<Option<DeviceRecord>> {
        let row: Option<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"
        )))
        .bind(i64::from(device_id))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(DeviceRecord::from))
    }

    /// Deletes a device with its runtime state, events, properties and tags, and queues the
    /// deletion of its telemetry (`telemetry_deletions`, in the same transaction: a restart
    /// loses no deletion). Ids are never reused.
    pub async fn delete_device(&self, device_id: u32) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let org: Option<i64> =
            sqlx::query_scalar("DELETE FROM devices WHERE id = $1 RETURNING org_id")
                .bind(i64::from(device_id))
                .fetch_optional(&mut *tx)
                .await?;
        let Some(org_id) = org else {
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO telemetry_deletions (org_id, device_id, requested_at) VALUES ($1, $2, $3)
             ON CONFLICT (org_id, device_id) DO NOTHING",
        )
        .bind(org_id)
        .bind(i64::from(device_id))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.signals.telemetry_deletion_queued.notify_one();
        Ok(true)
    }

    /// `(org_id, device_id)` of the deleted devices whose telemetry is still in the store,
    /// oldest request first.
    pub async fn pending_telemetry_deletions(&self) -> Result<Vec<(u32, u32)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT org_id, device_id FROM telemetry_deletions ORDER BY requested_at, device_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(super::db::u32_pairs(rows))
    }

    /// Forgets queued telemetry deletions that the store has carried out.
    pub async fn telemetry_deleted(&self, devices: &[(u32, u32)]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for &(org_id, device_id) in devices {
            sqlx::query("DELETE FROM telemetry_deletions WHERE org_id = $1 AND device_id = $2")
                .bind(i64::from(org_id))
                .bind(i64::from(device_id))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Gives a device a fresh auth token; the old one stops working at once (a connected
    /// device keeps its session until it reconnects).
    pub async fn rotate_device_token(&self, device_id: u32) -> Result<DeviceRecord> {
        for _ in 0..5 {
            let updated: std::result::Result<Option<DeviceRow>, sqlx::Error> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE devices SET token = $1 WHERE id = $2 RETURNING {DEVICE_COLUMNS}"
                )))
                .bind(secrets::device_token())
                .bind(i64::from(device_id))
                .fetch_optional(&self.pool)
                .await;
            match updated {
                Ok(Some(row)) => {
                    tracing::info!(device_id, "device token rotated");
                    return Ok(row.into());
                }
                Ok(None) => {
                    return Err(ControlError::not_found(format!(
                        "device {device_id} not found"
                    )));
                }
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::internal(
            "could not draw a unique device token",
        ))
    }
}

const DEVICE_COLUMNS: &str = "id, org_id, name, template_id, token, owner_user_id, created_at";

fn unknown_template(template_id: &str) -> ControlError {
    ControlError::validation(format!(
        "unknown template_id {template_id:?}: no such template in your organization"
    ))
}
