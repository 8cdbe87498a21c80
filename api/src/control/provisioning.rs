//! Provisioning and claiming (Blynk "dynamic" and "static" auth tokens).
//!
//! - **Dynamic tokens** (Blynk.Inject-style): an app or a provisioning tool asks for a token for
//!   a template id (`POST /api/v1/provisioning`) and hands it to the device (Wi-Fi
//!   provisioning). The token works at once; unless the device logs in (or calls
//!   `/external/api/provision`) within [`PROVISION_TTL_MS`], it expires and logins with it are
//!   refused. The first login activates the device and writes a `provisioned` timeline event.
//! - **Static tokens**: a manufacturer makes devices in batches (`POST /api/v1/devices/static`),
//!   unowned, each with its token (flashed into the firmware) and a claim code (printed as a QR
//!   code). A user redeems the code (`POST /api/v1/devices/claim`) and becomes the owner; the
//!   code works once.

use crate::control::Narrow;
use serde::{Deserialize, Serialize};

use super::auth::Principal;
use super::device_events::{SystemEvent, insert_system_event};
use super::devices::{DeviceRecord, NewDevice};
use super::error::{ControlError, Result};
use super::permissions::{Action, Target};
use super::{ControlPlane, now_ms, rfc3339, secrets};

/// How long a dynamic token waits for its device's first login.
pub const PROVISION_TTL_MS: i64 = 24 * 3_600_000;

/// Most static-token devices one request makes.
pub const MAX_STATIC_BATCH: u32 = 1000;

/// Length of a claim code.
pub const CLAIM_CODE_LEN: usize = 12;

/// Body of `POST /api/v1/provisioning`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    /// `TMPL…` of a template of the organization.
    pub template_id: String,
    /// Default: the template's name and a number.
    #[serde(default)]
    pub name: Option<String>,
    /// Organization (default: the caller's).
    #[serde(default)]
    pub org_id: Option<u32>,
}

/// A provisioned device: its dynamic token and until when it must first log in.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Provisioned {
    pub device_id: u32,
    pub template_id: String,
    pub name: String,
    /// The auth token to give the device.
    pub token: String,
    /// RFC 3339: the token stops working at this time unless the device has logged in.
    pub expires_at: String,
}

/// Body of `POST /api/v1/devices/static`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticBatch {
    pub template_id: String,
    /// 1 to 1000.
    pub count: u32,
    /// Device names are `<prefix> <n>` (default: the template's name).
    #[serde(default)]
    pub name_prefix: Option<String>,
    #[serde(default)]
    pub org_id: Option<u32>,
}

/// A static-token device of a batch.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StaticDevice {
    pub device_id: u32,
    pub name: String,
    /// The auth token to flash into the firmware.
    pub token: String,
    /// The code a user redeems to claim the device (once).
    pub claim_code: String,
}

/// Body of `POST /api/v1/devices/claim`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub claim_code: String,
    /// A new name for the device.
    #[serde(default)]
    pub name: Option<String>,
}

/// A claim code: 12 characters of an alphabet without look-alikes (0/O, 1/I/L).
fn claim_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..CLAIM_CODE_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

impl ControlPlane {
    /// The name of template `template_id` if it belongs to `org_id`.
    async fn template_name_in(&self, org_id: u32, template_id: &str) -> Result<String> {
        sqlx::query_scalar("SELECT name FROM templates WHERE id = $1 AND org_id = $2")
            .bind(template_id)
            .bind(i64::from(org_id))
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| {
                ControlError::validation(format!(
                    "unknown template_id {template_id:?}: no such template in organization {org_id}"
                ))
            })
    }

    /// Issues a dynamic token: a new device of the template in `org_id` owned by the caller,
    /// which must log in within [`PROVISION_TTL_MS`].
    pub async fn provision_device(
        &self,
        principal: &Principal,
        org_id: u32,
        request: &ProvisionRequest,
    ) -> Result<Provisioned> {
        let template_id = request.template_id.trim();
        let template_name = self.template_name_in(org_id, template_id).await?;
        let name = match request.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => format!("{template_name} (provisioning)"),
        };
        let device = self
            .create_device(
                principal,
                org_id,
                &NewDevice {
                    name,
                    template_id: template_id.to_owned(),
                    org_id: Some(org_id),
                },
            )
            .await?;
        let expires = now_ms() + PROVISION_TTL_MS;
        sqlx::query(
            "UPDATE devices SET token_kind = 'dynamic', provision_expires_at = $1 WHERE id = $2",
        )
        .bind(expires)
        .bind(i64::from(device.id))
        .execute(&self.pool)
        .await?;
        tracing::info!(
            device_id = device.id,
            org_id,
            template_id,
            "dynamic token issued"
        );
        Ok(Provisioned {
            device_id: device.id,
            template_id: device.template_id,
            name: device.name,
            token: device.token,
            expires_at: rfc3339(expires),
        })
    }

    /// Makes `count` unowned static-token devices with claim codes.
    pub async fn create_static_devices(
        &self,
        org_id: u32,
        batch: &StaticBatch,
    ) -> Result<Vec<StaticDevice>> {
        if !(1..=MAX_STATIC_BATCH).contains(&batch.count) {
            return Err(ControlError::validation(format!(
                "count must be 1 to {MAX_STATIC_BATCH}"
            )));
        }
        let template_id = batch.template_id.trim();
        let template_name = self.template_name_in(org_id, template_id).await?;
        let prefix = match batch.name_prefix.as_deref().map(str::trim) {
            Some(p) if !p.is_empty() => p.to_owned(),
            _ => template_name,
        };
        let now = now_ms();
        let mut out = Vec::with_capacity(batch.count as usize);
        let mut tx = self.begin_write().await?;
        for n in 1..=batch.count {
            let name = format!("{prefix} {n}");
            // Token and code collisions are astronomically unlikely; a few draws settle them.
            let mut attempt = 0;
            loop {
                attempt += 1;
                let (token, code) = (secrets::device_token(), claim_code());
                // A collision inserts nothing (no error: on PostgreSQL an error would abort
                // the whole transaction).
                let inserted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO devices (org_id, template_id, name, token, owner_user_id, created_at,
                         token_kind, claim_code)
                     VALUES ($1, $2, $3, $4, NULL, $5, 'static', $6)
                     ON CONFLICT DO NOTHING RETURNING id",
                )
                .bind(i64::from(org_id))
                .bind(template_id)
                .bind(&name)
                .bind(&token)
                .bind(now)
                .bind(&code)
                .fetch_optional(&mut *tx)
                .await?;
                match inserted {
                    Some(device_id) => {
                        out.push(StaticDevice {
                            device_id: device_id.narrow()?,
                            name: name.clone(),
                            token,
                            claim_code: code,
                        });
                        break;
                    }
                    None if attempt < 5 => {}
                    None => {
                        return Err(ControlError::internal(
                            "could not draw a unique device token and claim code",
                        ));
                    }
                }
            }
        }
        tx.commit().await?;
        tracing::info!(
            org_id,
            template_id,
            count = batch.count,
            "static-token devices made"
        );
        Ok(out)
    }

    /// Redeems a claim code: the caller becomes the device's owner (the code stops working).
    /// 404 for an unknown or used code and for a device outside the caller's claim scope.
    pub async fn claim_device(
        &self,
        principal: &Principal,
        request: &ClaimRequest,
    ) -> Result<DeviceRecord> {
        let code = request.claim_code.trim().to_ascii_uppercase();
        let not_found = || ControlError::not_found("no unclaimed device has this claim code");
        if code.len() != CLAIM_CODE_LEN {
            return Err(not_found());
        }
        let found: Option<(i64, i64)> =
            sqlx::query_as("SELECT id, org_id FROM devices WHERE claim_code = $1")
                .bind(&code)
                .fetch_optional(&self.pool)
                .await?;
        let (device_id, org_id) = found.ok_or_else(not_found)?;
        let (device_id, org_id): (u32, u32) = (device_id.narrow()?, org_id.narrow()?);
        let target = Target {
            org_id,
            owner_user_id: None,
        };
        if !self
            .scope_covers(
                principal,
                super::scope_of(principal, Action::DeviceClaim),
                target,
            )
            .await?
        {
            return Err(not_found());
        }
        let name = request
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE devices SET owner_user_id = $1, claimed_at = $2, claim_code = NULL,
                 name = COALESCE($3, name)
             WHERE id = $4 AND claim_code = $5",
        )
        .bind(i64::from(principal.user_id))
        .bind(now)
        .bind(name)
        .bind(i64::from(device_id))
        .bind(&code)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            // Claimed by someone else in between.
            return Err(not_found());
        }
        let description = format!("claimed by {}", principal.email);
        let event = SystemEvent {
            code: "claimed",
            name: "Claimed",
            severity: "info",
            description: Some(&description),
        };
        insert_system_event(&mut tx, device_id, event, now).await?;
        tx.commit().await?;
        tracing::info!(device_id, user_id = principal.user_id, "device claimed");
        self.device_by_id(device_id)
            .await?
            .ok_or_else(|| ControlError::not_found("the claimed device was deleted"))
    }

    /// Marks a dynamic-token device activated (its first login or `/external/api/provision`):
    /// the token stops expiring and the timeline says `provisioned`. No-op for other devices.
    pub async fn activate_device(&self, device_id: u32, at_ms: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let activated = activate_in(&mut tx, device_id, at_ms).await?;
        tx.commit().await?;
        Ok(activated)
    }
}

/// [`ControlPlane::activate_device`] inside the caller's write transaction (a login records the
/// device online and activates it in one transaction).
pub(crate) async fn activate_in(
    conn: &mut sqlx::AnyConnection,
    device_id: u32,
    at_ms: i64,
) -> Result<bool> {
    let changed = sqlx::query(
        "UPDATE devices SET activated_at = $1, provision_expires_at = NULL
         WHERE id = $2 AND token_kind = 'dynamic' AND activated_at IS NULL",
    )
    .bind(at_ms)
    .bind(i64::from(device_id))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if changed > 0 {
        let event = SystemEvent {
            code: "provisioned",
            name: "Provisioned",
            severity: "info",
            description: Some("first login with the dynamic token"),
        };
        insert_system_event(conn, device_id, event, at_ms).await?;
        tracing::info!(device_id, "device provisioned");
    }
    Ok(changed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_codes_avoid_look_alikes() {
        for _ in 0..100 {
            let code = claim_code();
            assert_eq!(code.len(), CLAIM_CODE_LEN);
            assert!(!code.contains(['0', 'O', '1', 'I', 'L']), "{code}");
        }
    }
}
