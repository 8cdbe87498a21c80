//! Firmware binaries: upload (size limit, checksums, Blynk info tag that must
//! match the target template), storage on disk by SHA-256, listing.

use bytes::Bytes;
use md5::Md5;
use pinhouse_protocol::firmware::parse_firmware_tag;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Ota;
use crate::control::{ControlError, Principal, Result};

/// A stored firmware binary and what its info tag says.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FirmwareRecord {
    #[sqlx(try_from = "i64")]
    pub id: u32,
    #[sqlx(try_from = "i64")]
    pub org_id: u32,
    pub template_id: String,
    pub file_name: String,
    /// `fw-type` of the tag; equals the template id.
    pub fw_type: String,
    /// Firmware version (`mcu`).
    pub version: String,
    /// Build date (`build`), the identity a device reports after the update.
    pub build: String,
    /// Blynk library version, when tagged.
    pub library: Option<String>,
    pub size: i64,
    /// Lower-case hex MD5 (sent to devices as `x-MD5`).
    pub md5: String,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Unix ms.
    pub created_at: i64,
}

/// Checksums the uploader declared (headers `X-MD5`, `X-SHA256`, hex).
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub md5: Option<String>,
    pub sha256: Option<String>,
}

pub(super) const FIRMWARE_COLUMNS: &str = "id, org_id, template_id, file_name, fw_type, version, build, library, size, md5, sha256, created_at";

fn checksum_mismatch(which: &str, declared: &str, actual: &str) -> ControlError {
    ControlError::http(
        axum::http::StatusCode::BAD_REQUEST,
        "checksum_mismatch",
        format!(
            "{which} of the received bytes is {actual}, the upload declared {declared} (truncated or corrupted upload?)"
        ),
    )
}

/// Object key of the binary with this SHA-256 (content-addressed, so an upload of the same bytes
/// twice stores them once). With the default local store this is `<data>/firmware/<sha256>.bin`.
pub(super) fn blob_key(sha256: &str) -> String {
    format!("firmware/{sha256}.bin")
}

impl Ota {
    /// Stores an uploaded binary for `template_id` after checking its size,
    /// the declared checksums and its info tag.
    pub async fn upload_firmware(
        &self,
        principal: &Principal,
        template_id: &str,
        file_name: &str,
        body: Bytes,
        declared: &Declared,
    ) -> Result<FirmwareRecord> {
        if !principal.role.can_manage_templates() {
            return Err(ControlError::forbidden(
                "only admins and staff may upload firmware",
            ));
        }
        let template = self
            .inner
            .control
            .template(principal.org_id, template_id)
            .await?
            .ok_or_else(|| ControlError::validation(format!("unknown template {template_id:?}")))?;
        if body.is_empty() {
            return Err(ControlError::bad_request("the firmware body is empty"));
        }
        let max = self.inner.config.max_firmware_bytes;
        if body.len() > max {
            return Err(ControlError::http(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "firmware of {} bytes exceeds the limit of {max} bytes",
                    body.len()
                ),
            ));
        }
        let md5 = hex::encode(<Md5 as md5::Digest>::digest(&body));
        let sha256 = hex::encode(Sha256::digest(&body));
        if let Some(d) = &declared.md5
            && !d.trim().eq_ignore_ascii_case(&md5)
        {
            return Err(checksum_mismatch("MD5", d.trim(), &md5));
        }
        if let Some(d) = &declared.sha256
            && !d.trim().eq_ignore_ascii_case(&sha256)
        {
            return Err(checksum_mismatch("SHA-256", d.trim(), &sha256));
        }
        let tag = parse_firmware_tag(&body).map_err(|e| {
            ControlError::http(
                axum::http::StatusCode::BAD_REQUEST,
                "firmware_tag",
                format!("{e}; build the firmware with the Blynk library (BLYNK_FIRMWARE_VERSION) or add the tag with blynk_tag.py"),
            )
        })?;
        if tag.fw_type != template.id {
            return Err(ControlError::http(
                axum::http::StatusCode::BAD_REQUEST,
                "firmware_type_mismatch",
                format!(
                    "the binary's firmware type is {:?} but the target template is {:?}; build it with BLYNK_TEMPLATE_ID \"{}\"",
                    tag.fw_type, template.id, template.id
                ),
            ));
        }
        self.inner
            .objects
            .put_durable(&blob_key(&sha256), body.clone())
            .await
            .map_err(|e| {
                tracing::error!(%e, %sha256, "cannot store firmware");
                ControlError::internal(format!("cannot store firmware: {e}"))
            })?;
        let file_name = match file_name.trim() {
            "" => "firmware.bin",
            name => name,
        };
        let record: FirmwareRecord = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO firmware (org_id, template_id, file_name, fw_type, version, build, library, size, md5, sha256, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {FIRMWARE_COLUMNS}"
        )))
        .bind(i64::from(principal.org_id))
        .bind(&template.id)
        .bind(file_name)
        .bind(&tag.fw_type)
        .bind(&tag.version)
        .bind(&tag.build)
        .bind(&tag.library)
        .bind(body.len() as i64)
        .bind(&md5)
        .bind(&sha256)
        .bind(i64::from(principal.user_id))
        .bind(super::now_ms())
        .fetch_one(self.pool())
        .await?;
        tracing::info!(
            firmware_id = record.id,
            template_id = %record.template_id,
            version = %record.version,
            build = %record.build,
            size = record.size,
            user_id = principal.user_id,
            "firmware uploaded"
        );
        Ok(record)
    }

    /// Firmware of the caller's organization, newest first.
    pub async fn firmware_list(&self, principal: &Principal) -> Result<Vec<FirmwareRecord>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {FIRMWARE_COLUMNS} FROM firmware WHERE org_id = $1 ORDER BY id DESC"
        )))
        .bind(i64::from(principal.org_id))
        .fetch_all(self.pool())
        .await?)
    }

    /// One firmware of the caller's organization.
    pub async fn firmware(&self, org_id: u32, id: u32) -> Result<FirmwareRecord> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {FIRMWARE_COLUMNS} FROM firmware WHERE id = $1 AND org_id = $2"
        )))
        .bind(i64::from(id))
        .bind(i64::from(org_id))
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| ControlError::not_found(format!("no firmware {id}")))
    }
}
