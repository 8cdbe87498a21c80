//! Shipments: creation (target, filter, cohorts, limits, window), listing with
//! progress counts, per-device status, pause / resume / cancel.

use crate::control::Narrow;
use serde::{Deserialize, Serialize};

use super::rollout::{cohort_ends, validate_cohorts};
use super::{Ota, now_ms};
use crate::control::{ControlError, Principal, Result, rfc3339};

/// Which devices a shipment targets (exactly one field).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Every device of this template in the caller's organization (must be
    /// the firmware's template).
    pub template_id: Option<String>,
    /// These devices (all of the firmware's template, in the caller's organization).
    pub devices: Option<Vec<u32>>,
    /// Devices with this tag (those of the firmware's template, in the caller's organization).
    pub tag: Option<String>,
    /// Every device of the firmware's template in the caller's organization.
    pub organization: Option<bool>,
}

/// Which devices of the target take part, by what they currently report.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only devices reporting this firmware version.
    pub version: Option<String>,
    /// Only devices reporting this build.
    pub build: Option<String>,
}

/// A daily window, `"HH:MM"` to `"HH:MM"` (may wrap past midnight).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: String,
    pub end: String,
}

/// Body of `POST /api/v1/shipments`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShipment {
    pub firmware_id: u32,
    #[serde(default)]
    pub name: Option<String>,
    pub target: Target,
    #[serde(default)]
    pub filter: Filter,
    /// Cumulative percentages, e.g. `[1, 10, 100]`; default `[100]`.
    #[serde(default)]
    pub cohorts: Option<Vec<f64>>,
    /// Largest failed share of a cohort before the shipment halts; default 0.1.
    #[serde(default)]
    pub failure_threshold: Option<f64>,
    /// Time a device has to come back with the new firmware; default 900 s.
    #[serde(default)]
    pub device_timeout_secs: Option<u64>,
    /// Time an updated device has to send data; 0 disables; default 120 s.
    #[serde(default)]
    pub health_grace_secs: Option<u64>,
    /// Signals per device before it is marked failed; default 3.
    #[serde(default)]
    pub attempts_limit: Option<u32>,
    /// Daily window for signals, `HH:MM` in each device's local time (its `Time Zone` metadata; UTC
    /// when it has none); default any time.
    #[serde(default)]
    pub window: Option<Window>,
}

/// Devices of a shipment by status.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub total: u64,
    pub pending: u64,
    pub sent: u64,
    pub downloading: u64,
    pub success: u64,
    pub failed: u64,
    pub timed_out: u64,
}

/// A shipment as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShipmentView {
    pub id: u32,
    pub name: String,
    pub firmware_id: u32,
    pub firmware_version: String,
    pub firmware_build: String,
    /// `running`, `paused`, `cancelled`, `halted` or `completed`.
    pub status: String,
    /// Why it halted or was cancelled.
    pub status_reason: Option<String>,
    pub cohorts: Vec<f64>,
    /// 0-based index of the open cohort.
    pub current_cohort: u32,
    pub failure_threshold: f64,
    pub device_timeout_secs: u64,
    pub health_grace_secs: u64,
    pub attempts_limit: u32,
    pub window: Option<Window>,
    pub created_at: String,
    pub updated_at: String,
    pub progress: Progress,
}

/// One device's progress in a shipment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShipmentDeviceView {
    pub device_id: u32,
    pub cohort: u32,
    /// `pending`, `sent`, `downloading`, `success`, `failed` or `timed_out`.
    pub status: String,
    /// Why it failed or timed out, or what the last retry was about.
    pub reason: Option<String>,
    pub attempts: u32,
    pub downloads: u32,
    pub bytes_sent: i64,
    pub sent_at: Option<String>,
    pub downloaded_at: Option<String>,
    pub reported_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct ShipmentRow {
    #[sqlx(try_from = "i64")]
    pub id: u32,
    pub name: String,
    #[sqlx(try_from = "i64")]
    pub firmware_id: u32,
    pub version: String,
    pub build: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub cohorts: String,
    #[sqlx(try_from = "i64")]
    pub current_cohort: u32,
    pub failure_threshold: f64,
    pub device_timeout_ms: i64,
    pub health_grace_ms: i64,
    #[sqlx(try_from = "i64")]
    pub attempts_limit: u32,
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub window_start_min: Option<u32>,
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub window_end_min: Option<u32>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(super) const SHIPMENT_SELECT: &str = "SELECT s.id, s.name, s.firmware_id, f.version, f.build, s.status, s.status_reason, s.cohorts, s.current_cohort, s.failure_threshold, s.device_timeout_ms, s.health_grace_ms, s.attempts_limit, s.window_start_min, s.window_end_min, s.created_at, s.updated_at FROM ota_shipments s JOIN firmware f ON f.id = s.firmware_id";

impl ShipmentRow {
    pub(super) fn cohorts(&self) -> Vec<f64> {
        serde_json::from_str(&self.cohorts).unwrap_or_else(|_| vec![100.0])
    }

    pub(super) fn window(&self) -> Option<(u32, u32)> {
        Some((self.window_start_min?, self.window_end_min?))
    }
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    #[sqlx(try_from = "i64")]
    device_id: u32,
    #[sqlx(try_from = "i64")]
    cohort: u32,
    status: String,
    reason: Option<String>,
    #[sqlx(try_from = "i64")]
    attempts: u32,
    #[sqlx(try_from = "i64")]
    downloads: u32,
    bytes_sent: i64,
    sent_at: Option<i64>,
    downloaded_at: Option<i64>,
    reported_at: Option<i64>,
    finished_at: Option<i64>,
    updated_at: i64,
}

fn parse_hhmm(text: &str) -> Result<u32> {
    let bad = || {
        ControlError::validation(format!(
            "window times are \"HH:MM\" (00:00–23:59), got {text:?}"
        ))
    };
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

impl Ota {
    /// Creates a running shipment: resolves the target devices, applies the
    /// filter, leaves out devices already on the firmware's build, and assigns
    /// cohorts by device id.
    pub async fn create_shipment(
        &self,
        principal: &Principal,
        new: &NewShipment,
    ) -> Result<ShipmentView> {
        if !principal.role.can_manage_templates() {
            return Err(ControlError::forbidden(
                "only admins and staff may ship firmware",
            ));
        }
        let firmware = self.firmware(principal.org_id, new.firmware_id).await?;
        let cohorts = new.cohorts.clone().unwrap_or_else(|| vec![100.0]);
        validate_cohorts(&cohorts).map_err(ControlError::validation)?;
        let threshold = new.failure_threshold.unwrap_or(0.1);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(ControlError::validation(
                "failure_threshold is a fraction between 0 and 1",
            ));
        }
        let timeout_secs = new.device_timeout_secs.unwrap_or(900);
        if timeout_secs == 0 || timeout_secs > 30 * 24 * 3600 {
            return Err(ControlError::validation(
                "device_timeout_secs must be between 1 and 2592000",
            ));
        }
        let grace_secs = new.health_grace_secs.unwrap_or(120);
        if grace_secs > 24 * 3600 {
            return Err(ControlError::validation(
                "health_grace_secs must be at most 86400",
            ));
        }
        let attempts = new.attempts_limit.unwrap_or(3);
        if attempts == 0 || attempts > 100 {
            return Err(ControlError::validation(
                "attempts_limit must be between 1 and 100",
            ));
        }
        let window = match &new.window {
            Some(w) => Some((parse_hhmm(&w.start)?, parse_hhmm(&w.end)?)),
            None => None,
        };
        if window.is_some_and(|(s, e)| s == e) {
            return Err(ControlError::validation(
                "an empty window (start = end) would never send; omit the window for any time",
            ));
        }

        let target = &new.target;
        let chosen = [
            target.template_id.is_some(),
            target.devices.is_some(),
            target.tag.is_some(),
            target.organization == Some(true),
        ];
        if chosen.iter().filter(|c| **c).count() != 1 {
            return Err(ControlError::validation(
                "target takes exactly one of template_id, devices, tag, organization: true",
            ));
        }
        if let Some(tag) = &target.tag
            && (tag.is_empty() || tag.len() > 64)
        {
            return Err(ControlError::validation("target.tag must be 1 to 64 bytes"));
        }
        if let Some(t) = &target.template_id
            && *t != firmware.template_id
        {
            return Err(ControlError::validation(format!(
                "firmware {} is built for template {}, not {t}",
                firmware.id, firmware.template_id
            )));
        }
        // Candidates: devices of the firmware's template in the caller's organization, with
        // what they last reported.
        // With a tag target, only the devices carrying the tag.
        let candidates: Vec<(u32, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT d.id, st.firmware, st.build FROM devices d
             LEFT JOIN device_status st ON st.device_id = d.id
             WHERE d.org_id = $1 AND d.template_id = $2
               AND ($3 IS NULL OR EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = d.id AND t.tag = $3))
             ORDER BY d.id",
        )
        .bind(i64::from(principal.org_id))
        .bind(&firmware.template_id)
        .bind(target.tag.as_deref())
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|(id, version, build): (i64, Option<String>, Option<String>)| {
            Ok((id.narrow()?, version, build))
        })
        .collect::<Result<_>>()?;
        let candidates: Vec<_> = match &target.devices {
            Some(ids) => {
                if ids.is_empty() || ids.len() > 100_000 {
                    return Err(ControlError::validation(
                        "target.devices must list 1 to 100000 device ids",
                    ));
                }
                let wanted: std::collections::BTreeSet<u32> = ids.iter().copied().collect();
                let found: Vec<_> = candidates
                    .into_iter()
                    .filter(|(id, _, _)| wanted.contains(id))
                    .collect();
                if found.len() != wanted.len() {
                    let missing: Vec<_> = wanted
                        .iter()
                        .filter(|id| !found.iter().any(|(f, _, _)| f == *id))
                        .collect();
                    return Err(ControlError::validation(format!(
                        "devices {missing:?} are not devices of template {} in your organization",
                        firmware.template_id
                    )));
                }
                found
            }
            None => candidates,
        };
        let eligible: Vec<u32> = candidates
            .into_iter()
            .filter(|(_, version, build)| {
                new.filter
                    .version
                    .as_ref()
                    .is_none_or(|v| version.as_ref() == Some(v))
                    && new
                        .filter
                        .build
                        .as_ref()
                        .is_none_or(|b| build.as_ref() == Some(b))
                    && build.as_deref() != Some(firmware.build.as_str())
            })
            .map(|(id, _, _)| id)
            .collect();
        if eligible.is_empty() {
            return Err(ControlError::validation(
                "no device matches the target and filter (devices already on this build are left out)",
            ));
        }
        let ends = cohort_ends(eligible.len(), &cohorts);
        let now = now_ms();
        let name = new
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map_or_else(
                || format!("{} {}", firmware.version, firmware.build),
                str::to_owned,
            );
        let mut tx = self.inner.control.begin_write().await?;
        let id: u32 = sqlx::query_scalar::<_, i64>(
            "INSERT INTO ota_shipments (org_id, firmware_id, name, status, cohorts, failure_threshold,
                 device_timeout_ms, health_grace_ms, attempts_limit, window_start_min, window_end_min,
                 created_by, created_at, updated_at)
             VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(i64::from(principal.org_id))
        .bind(i64::from(firmware.id))
        .bind(&name)
        .bind(serde_json::to_string(&cohorts).map_err(|e| ControlError::internal(e.to_string()))?)
        .bind(threshold)
        .bind((timeout_secs * 1000) as i64)
        .bind((grace_secs * 1000) as i64)
        .bind(i64::from(attempts))
        .bind(window.map(|w| w.0).map(i64::from))
        .bind(window.map(|w| w.1).map(i64::from))
        .bind(i64::from(principal.user_id))
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .narrow()?;
        for (rank, device_id) in eligible.iter().enumerate() {
            let cohort = ends
                .iter()
                .position(|&end| rank < end)
                .unwrap_or(ends.len() - 1);
            sqlx::query(
                "INSERT INTO ota_shipment_devices (shipment_id, device_id, cohort, status, updated_at)
                 VALUES ($1, $2, $3, 'pending', $4)",
            )
            .bind(i64::from(id))
            .bind(i64::from(*device_id))
            .bind(i64::from(cohort as u32))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        tracing::info!(
            shipment_id = id,
            firmware_id = firmware.id,
            devices = eligible.len(),
            ?cohorts,
            user_id = principal.user_id,
            "OTA shipment created"
        );
        self.shipment(principal.org_id, id).await
    }

    /// One shipment of `org_id` with its progress counts.
    pub async fn shipment(&self, org_id: u32, id: u32) -> Result<ShipmentView> {
        let row: ShipmentRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SHIPMENT_SELECT} WHERE s.id = $1 AND s.org_id = $2"
        )))
        .bind(i64::from(id))
        .bind(i64::from(org_id))
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| ControlError::not_found(format!("no shipment {id}")))?;
        self.view(row).await
    }

    /// Shipments of the caller's organization, newest first.
    pub async fn shipments(&self, org_id: u32) -> Result<Vec<ShipmentView>> {
        let rows: Vec<ShipmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SHIPMENT_SELECT} WHERE s.org_id = $1 ORDER BY s.id DESC"
        )))
        .bind(i64::from(org_id))
        .fetch_all(self.pool())
        .await?;
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            views.push(self.view(row).await?);
        }
        Ok(views)
    }

    async fn view(&self, row: ShipmentRow) -> Result<ShipmentView> {
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM ota_shipment_devices WHERE shipment_id = $1 GROUP BY status",
        )
        .bind(i64::from(row.id))
        .fetch_all(self.pool())
        .await?;
        let mut progress = Progress::default();
        for (status, n) in counts {
            let n = n as u64;
            progress.total += n;
            match status.as_str() {
                "pending" => progress.pending = n,
                "sent" => progress.sent = n,
                "downloading" => progress.downloading = n,
                "success" => progress.success = n,
                "failed" => progress.failed = n,
                "timed_out" => progress.timed_out = n,
                _ => {}
            }
        }
        Ok(ShipmentView {
            cohorts: row.cohorts(),
            window: row.window().map(|(s, e)| Window {
                start: hhmm(s),
                end: hhmm(e),
            }),
            id: row.id,
            name: row.name,
            firmware_id: row.firmware_id,
            firmware_version: row.version,
            firmware_build: row.build,
            status: row.status,
            status_reason: row.status_reason,
            current_cohort: row.current_cohort,
            failure_threshold: row.failure_threshold,
            device_timeout_secs: (row.device_timeout_ms / 1000) as u64,
            health_grace_secs: (row.health_grace_ms / 1000) as u64,
            attempts_limit: row.attempts_limit,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
            progress,
        })
    }

    /// Per-device status of a shipment of `org_id`.
    pub async fn shipment_devices(&self, org_id: u32, id: u32) -> Result<Vec<ShipmentDeviceView>> {
        self.shipment(org_id, id).await?;
        let rows: Vec<DeviceRow> = sqlx::query_as(
            "SELECT device_id, cohort, status, reason, attempts, downloads, bytes_sent, sent_at,
                    downloaded_at, reported_at, finished_at, updated_at
             FROM ota_shipment_devices WHERE shipment_id = $1 ORDER BY cohort, device_id",
        )
        .bind(i64::from(id))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ShipmentDeviceView {
                device_id: r.device_id,
                cohort: r.cohort,
                status: r.status,
                reason: r.reason,
                attempts: r.attempts,
                downloads: r.downloads,
                bytes_sent: r.bytes_sent,
                sent_at: r.sent_at.map(rfc3339),
                downloaded_at: r.downloaded_at.map(rfc3339),
                reported_at: r.reported_at.map(rfc3339),
                finished_at: r.finished_at.map(rfc3339),
                updated_at: rfc3339(r.updated_at),
            })
            .collect())
    }

    /// Pause (`running` → `paused`), resume (`paused` → `running`) or cancel
    /// (`running`/`paused` → `cancelled`, links stop working) a shipment.
    pub async fn set_shipment_state(
        &self,
        principal: &Principal,
        id: u32,
        action: &str,
    ) -> Result<ShipmentView> {
        if !principal.role.can_manage_templates() {
            return Err(ControlError::forbidden(
                "only admins and staff may control shipments",
            ));
        }
        let current = self.shipment(principal.org_id, id).await?;
        let (from, to): (&[&str], &str) = match action {
            "pause" => (&["running"], "paused"),
            "resume" => (&["paused"], "running"),
            "cancel" => (&["running", "paused"], "cancelled"),
            other => {
                return Err(ControlError::not_found(format!(
                    "no shipment action {other:?}"
                )));
            }
        };
        if !from.contains(&current.status.as_str()) {
            return Err(ControlError::conflict(format!(
                "cannot {action} a shipment that is {}",
                current.status
            )));
        }
        let reason = (action == "cancel").then(|| format!("cancelled by user {}", principal.email));
        sqlx::query(
            "UPDATE ota_shipments SET status = $1, status_reason = coalesce($2, status_reason), updated_at = $3
             WHERE id = $4 AND org_id = $5",
        )
        .bind(to)
        .bind(&reason)
        .bind(now_ms())
        .bind(i64::from(id))
        .bind(i64::from(principal.org_id))
        .execute(self.pool())
        .await?;
        tracing::info!(
            shipment_id = id,
            action,
            user_id = principal.user_id,
            "OTA shipment {to}"
        );
        self.shipment(principal.org_id, id).await
    }
}
