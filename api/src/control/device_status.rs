//! Runtime state of devices reported by the ingest tier: online/offline, last seen, and what the
//! device said about itself in its `internal` info message (firmware, build, heartbeat, buffer).
//!
//! Going online or offline also writes a system event (`online` / `offline`) to the device
//! timeline.

use crate::control::Narrow;
use pinhouse_protocol::body::DeviceInfo;
use serde::Serialize;

use super::ControlPlane;
use super::activity::Activity;
use super::device_events::{SystemEvent, insert_system_event};
use super::error::Result;
use super::time::{now_ms, rfc3339};

/// Longest text kept of any info field; longer values are cut (on a character boundary).
const MAX_INFO_FIELD: usize = 128;

/// Online state and last reported info of a device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviceStatus {
    pub online: bool,
    /// RFC 3339 of the last login.
    pub connected_at: Option<String>,
    /// RFC 3339 of the last disconnect.
    pub disconnected_at: Option<String>,
    /// RFC 3339 of the last message seen from the device.
    pub last_seen_at: Option<String>,
    /// What the device reported in its info message (`null` before the first one).
    pub info: Option<ReportedInfo>,
}

/// The device's own description of itself (Blynk `internal` info message).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReportedInfo {
    pub firmware: Option<String>,
    pub firmware_type: Option<String>,
    pub build: Option<String>,
    pub library_version: Option<String>,
    pub board: Option<String>,
    pub cpu: Option<String>,
    pub connection: Option<String>,
    pub heartbeat_secs: Option<u32>,
    pub buffer_in: Option<u32>,
    pub template_id: Option<String>,
    /// RFC 3339 of the info message.
    pub reported_at: String,
}

#[derive(sqlx::FromRow)]
struct StatusRow {
    #[sqlx(try_from = "crate::control::Flag")]
    online: bool,
    connected_at: Option<i64>,
    disconnected_at: Option<i64>,
    last_seen_at: Option<i64>,
    firmware: Option<String>,
    firmware_type: Option<String>,
    build: Option<String>,
    library_version: Option<String>,
    board: Option<String>,
    cpu: Option<String>,
    connection: Option<String>,
    #[sqlx(try_from = "crate::control::NullableInt")]
    heartbeat_secs: Option<u32>,
    #[sqlx(try_from = "crate::control::NullableInt")]
    buffer_in: Option<u32>,
    reported_template_id: Option<String>,
    info_at: Option<i64>,
}

impl From<StatusRow> for DeviceStatus {
    fn from(row: StatusRow) -> Self {
        let info = row.info_at.map(|at| ReportedInfo {
            firmware: row.firmware,
            firmware_type: row.firmware_type,
            build: row.build,
            library_version: row.library_version,
            board: row.board,
            cpu: row.cpu,
            connection: row.connection,
            heartbeat_secs: row.heartbeat_secs,
            buffer_in: row.buffer_in,
            template_id: row.reported_template_id,
            reported_at: rfc3339(at),
        });
        Self {
            online: row.online,
            connected_at: row.connected_at.map(rfc3339),
            disconnected_at: row.disconnected_at.map(rfc3339),
            last_seen_at: row.last_seen_at.map(rfc3339),
            info,
        }
    }
}

fn clip(value: &Option<String>) -> Option<String> {
    value.as_deref().map(|v| {
        let mut end = v.len().min(MAX_INFO_FIELD);
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        v[..end].to_owned()
    })
}

impl ControlPlane {
    /// A connection of the device logged in: online, connected and seen at `at_ms`; writes an
    /// `online` system event unless the device was online already.
    /// Unknown device ids are ignored (the device may have been deleted meanwhile).
    /// `at_ms` is when it happened (the report may reach the database later).
    pub async fn device_online(&self, device_id: u32, at_ms: i64) -> Result<()> {
        let now = at_ms;
        let mut tx = self.begin_write().await?;
        let was_online: Option<bool> =
            sqlx::query_scalar::<_, i64>("SELECT online FROM device_status WHERE device_id = $1")
                .bind(i64::from(device_id))
                .fetch_optional(&mut *tx)
                .await?
                .map(|online| online != 0);
        let changed = sqlx::query(
            "INSERT INTO device_status (device_id, online, connected_at, last_seen_at)
             SELECT id, 1, $2, $2 FROM devices WHERE id = $1
             ON CONFLICT (device_id) DO UPDATE
             SET online = 1, connected_at = $2, last_seen_at = $2",
        )
        .bind(i64::from(device_id))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Another connection of a device already online is no new timeline event.
        let came_online = changed > 0 && was_online != Some(true);
        if came_online {
            let event = SystemEvent {
                code: "online",
                name: "Online",
                severity: "info",
                description: None,
            };
            insert_system_event(&mut tx, device_id, event, now).await?;
        }
        // The first login of a dynamically provisioned device completes its provisioning.
        super::provisioning::activate_in(&mut tx, device_id, now).await?;
        tx.commit().await?;
        tracing::debug!(device_id, "device online");
        if came_online && self.has_listeners() {
            let org_id = self.device_org(device_id).await?;
            self.signal(Activity::Online { org_id, device_id });
        }
        Ok(())
    }

    /// The device's last connection closed: offline, disconnected and seen now; writes an
    /// `offline` system event if it was online.
    /// `at_ms` is when it happened.
    pub async fn device_offline(&self, device_id: u32, at_ms: i64) -> Result<()> {
        let now = at_ms;
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE device_status SET online = 0, disconnected_at = $2, last_seen_at = $2
             WHERE device_id = $1 AND online = 1",
        )
        .bind(i64::from(device_id))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed > 0 {
            let event = SystemEvent {
                code: "offline",
                name: "Offline",
                severity: "info",
                description: None,
            };
            insert_system_event(&mut tx, device_id, event, now).await?;
        }
        tx.commit().await?;
        tracing::debug!(device_id, "device offline");
        if changed > 0 && self.has_listeners() {
            let org_id = self.device_org(device_id).await?;
            self.signal(Activity::Offline { org_id, device_id });
        }
        Ok(())
    }

    /// The organization of a device (0 if it was deleted meanwhile).
    pub(crate) async fn device_org(&self, device_id: u32) -> Result<u32> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT org_id FROM devices WHERE id = $1")
                .bind(i64::from(device_id))
                .fetch_optional(&self.pool)
                .await?
                .narrow()?
                .unwrap_or(0),
        )
    }

    /// Records that the device was heard from now (call it at most every few seconds per
    /// device, not per message).
    pub async fn device_seen(&self, device_id: u32) -> Result<()> {
        sqlx::query("UPDATE device_status SET last_seen_at = $1 WHERE device_id = $2")
            .bind(now_ms())
            .bind(i64::from(device_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks every device offline without timeline events: at server start, when no
    /// connection can exist yet. Returns how many were marked.
    pub async fn mark_all_offline(&self) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE device_status SET online = 0, disconnected_at = $1 WHERE online = 1",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Stores the info message the device sent after login (replacing the previous one).
    /// `at_ms` is when the device sent it.
    pub async fn record_device_info(
        &self,
        device_id: u32,
        info: &DeviceInfo,
        at_ms: i64,
    ) -> Result<()> {
        let now = at_ms;
        sqlx::query(
            "INSERT INTO device_status (device_id, last_seen_at, firmware, firmware_type, build,
                 library_version, board, cpu, connection, heartbeat_secs, buffer_in,
                 reported_template_id, info_at)
             SELECT id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $2 FROM devices WHERE id = $1
             ON CONFLICT (device_id) DO UPDATE SET last_seen_at = $2, firmware = $3,
                 firmware_type = $4, build = $5, library_version = $6, board = $7, cpu = $8,
                 connection = $9, heartbeat_secs = $10, buffer_in = $11,
                 reported_template_id = $12, info_at = $2",
        )
        .bind(i64::from(device_id))
        .bind(now)
        .bind(clip(&info.firmware))
        .bind(clip(&info.fw_type))
        .bind(clip(&info.build))
        .bind(clip(&info.library))
        .bind(clip(&info.board))
        .bind(clip(&info.cpu))
        .bind(clip(&info.connection))
        .bind(info.heartbeat_secs.map(i64::from))
        .bind(info.buff_in.map(i64::from))
        .bind(clip(&info.template_id))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runtime state of a device (all empty for a device that never connected). Not scoped by
    /// organization: callers check that the device is visible first.
    pub async fn device_status(&self, device_id: u32) -> Result<DeviceStatus> {
        let row: Option<StatusRow> =
            sqlx::query_as("SELECT * FROM device_status WHERE device_id = $1")
                .bind(i64::from(device_id))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(DeviceStatus::from).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_long_fields_on_char_boundaries() {
        let long = Some("é".repeat(100));
        let clipped = clip(&long).unwrap();
        assert!(clipped.len() <= MAX_INFO_FIELD);
        assert_eq!(clipped.chars().count(), MAX_INFO_FIELD / 2);
        assert_eq!(clip(&Some("1.2.3".into())), Some("1.2.3".into()));
        assert_eq!(clip(&None), None);
    }
}
