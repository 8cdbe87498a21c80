//! Metadata (Blynk "Metadata"): typed fields a template declares, a value per device, and the
//! system fields every device has.
//!
//! - Template fields: `{"name", "type", "default_value"?}` with `type` one of
//!   [`META_KINDS`]; at most [`MAX_META_FIELDS`]; each gets an `id` (1, 2, …, the `metaFieldId`
//!   of the device HTTP API) in declaration order.
//! - System fields: `Device Name`, `Device Owner` (owner's e-mail) and `Auth Token` are read-only
//!   views of the device (`Auth Token` only for the device itself); `Hotspot Name` and
//!   `Time Zone` (alias `Device Timezone`) are stored values the device may set
//!   (`Blynk.setMetadata`, `internal meta set`), as users may.
//! - Values are checked against the field's type: `number` parses as a finite number, `email`
//!   has an `@`, `location` is `lat lon` (or `lat,lon`) within range, `timezone` is an IANA
//!   name; every value is at most [`MAX_META_VALUE`] bytes. A field without a value reads as
//!   its default.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::error::{ControlError, Result};
use super::{ControlPlane, now_ms};

/// Types of template metadata fields.
pub const META_KINDS: [&str; 8] = [
    "text", "number", "email", "phone", "location", "timezone", "imei", "iccid",
];

/// Most metadata fields per template.
pub const MAX_META_FIELDS: usize = 20;

/// Longest metadata value (bytes).
pub const MAX_META_VALUE: usize = 255;

/// Longest metadata field name (characters).
pub const MAX_META_NAME: usize = 50;

/// System fields that read from the device record.
const READ_ONLY_SYSTEM: [&str; 3] = ["Device Name", "Device Owner", "Auth Token"];

/// System fields with a stored value, and their type.
const STORED_SYSTEM: [(&str, &str); 2] = [("Hotspot Name", "text"), ("Time Zone", "timezone")];

/// A metadata field of a template.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MetaField {
    /// 1, 2, … in declaration order (`metaFieldId`).
    #[sqlx(try_from = "i64")]
    pub id: u32,
    pub name: String,
    /// One of `text`, `number`, `email`, `phone`, `location`, `timezone`, `imei`, `iccid`.
    #[serde(rename = "type")]
    #[sqlx(rename = "kind")]
    pub kind: String,
    pub default_value: Option<String>,
}

/// A metadata field in a template request body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMetaField {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub default_value: Option<String>,
}

/// One metadata value of a device as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MetaValue {
    /// The template field's id; `null` for system fields.
    pub id: Option<u32>,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The device's value, else the field's default, else `null`.
    pub value: Option<String>,
    /// A system field (not declared by the template).
    pub system: bool,
    /// Whether it can be written (system views of the device record cannot).
    pub writable: bool,
}

/// Who writes a metadata value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaWriter {
    /// A user through the REST API.
    User,
    /// The device (`internal meta set`, device HTTP API).
    Device,
}

/// The canonical name of a system field (`Device Timezone` is `Time Zone`).
fn canonical(name: &str) -> &str {
    match name {
        "Device Timezone" => "Time Zone",
        other => other,
    }
}

fn is_reserved(name: &str) -> bool {
    let name = canonical(name);
    READ_ONLY_SYSTEM.contains(&name) || STORED_SYSTEM.iter().any(|(n, _)| *n == name)
}

/// Checks `value` against a field type; returns it trimmed.
pub fn check_meta_value(kind: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.len() > MAX_META_VALUE {
        return Err(ControlError::validation(format!(
            "a metadata value is at most {MAX_META_VALUE} bytes"
        )));
    }
    let ok = match kind {
        "number" => value.parse::<f64>().is_ok_and(f64::is_finite),
        "email" => value
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.')),
        "phone" => {
            !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        }
        "location" => {
            let parts: Vec<&str> = value
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|p| !p.is_empty())
                .collect();
            match parts.as_slice() {
                [lat, lon] => matches!(
                    (lat.parse::<f64>(), lon.parse::<f64>()),
                    (Ok(lat), Ok(lon)) if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
                ),
                _ => false,
            }
        }
        "timezone" => value.parse::<chrono_tz::Tz>().is_ok(),
        "imei" => value.len() == 15 && value.bytes().all(|b| b.is_ascii_digit()),
        "iccid" => (18..=22).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()),
        _ => true,
    };
    if !ok {
        return Err(ControlError::validation(format!(
            "{value:?} is not a valid {kind} value"
        )));
    }
    Ok(value.to_owned())
}

/// Checks a template's metadata fields and numbers them.
pub fn validate_meta_fields(fields: &[NewMetaField]) -> Result<Vec<MetaField>> {
    if fields.len() > MAX_META_FIELDS {
        return Err(ControlError::validation(format!(
            "a template has at most {MAX_META_FIELDS} metadata fields"
        )));
    }
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let at = format!("metadata[{i}]");
        let name = field.name.trim();
        if name.is_empty() || name.chars().count() > MAX_META_NAME {
            return Err(ControlError::validation(format!(
                "{at}.name must be 1 to {MAX_META_NAME} characters"
            )));
        }
        if is_reserved(name) {
            return Err(ControlError::validation(format!(
                "{at}.name: {name:?} is a system field every device has"
            )));
        }
        if !names.insert(name.to_lowercase()) {
            return Err(ControlError::validation(format!(
                "{at}.name: {name:?} is used by more than one field"
            )));
        }
        let kind = field.kind.trim().to_ascii_lowercase();
        if !META_KINDS.contains(&kind.as_str()) {
            return Err(ControlError::validation(format!(
                "{at}.type: unknown type {:?}, expected one of {}",
                field.kind,
                META_KINDS.join(", ")
            )));
        }
        let default_value = match field.default_value.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(
                check_meta_value(&kind, v)
                    .map_err(|e| ControlError::validation(format!("{at}.default_value: {e}")))?,
            ),
        };
        out.push(MetaField {
            id: i as u32 + 1,
            name: name.to_owned(),
            kind,
            default_value,
        });
    }
    Ok(out)
}

/// Writes a template's metadata fields inside the caller's transaction.
pub(crate) async fn insert_meta_fields(
    conn: &mut sqlx::AnyConnection,
    template_id: &str,
    fields: &[MetaField],
) -> Result<()> {
    for field in fields {
        sqlx::query(
            "INSERT INTO template_metadata (template_id, id, name, kind, default_value)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(template_id)
        .bind(i64::from(field.id))
        .bind(&field.name)
        .bind(&field.kind)
        .bind(&field.default_value)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct DeviceFacts {
    name: String,
    token: String,
    template_id: String,
    owner_email: Option<String>,
}

impl ControlPlane {
    /// The metadata fields of a template, by id.
    pub async fn meta_fields(&self, template_id: &str) -> Result<Vec<MetaField>> {
        Ok(sqlx::query_as(
            "SELECT id, name, kind, default_value FROM template_metadata
             WHERE template_id = $1 ORDER BY id",
        )
        .bind(template_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn device_facts(&self, device_id: u32) -> Result<DeviceFacts> {
        sqlx::query_as(
            "SELECT d.name, d.token, d.template_id, u.email AS owner_email
             FROM devices d LEFT JOIN users u ON u.id = d.owner_user_id WHERE d.id = $1",
        )
        .bind(i64::from(device_id))
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| ControlError::not_found(format!("device {device_id} not found")))
    }

    /// Every metadata value of a device: the system fields, then the template's fields.
    /// `Auth Token` is left out (it is shown with the device to those allowed to see it).
    pub async fn device_metadata(&self, device_id: u32) -> Result<Vec<MetaValue>> {
        let facts = self.device_facts(device_id).await?;
        let stored: Vec<(String, String)> =
            sqlx::query_as("SELECT name, value FROM device_metadata WHERE device_id = $1")
                .bind(i64::from(device_id))
                .fetch_all(&self.pool)
                .await?;
        let stored_value = |name: &str| {
            stored
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let mut out = vec![
            MetaValue {
                id: None,
                name: "Device Name".into(),
                kind: "text".into(),
                value: Some(facts.name.clone()),
                system: true,
                writable: false,
            },
            MetaValue {
                id: None,
                name: "Device Owner".into(),
                kind: "email".into(),
                value: facts.owner_email.clone(),
                system: true,
                writable: false,
            },
        ];
        for (name, kind) in STORED_SYSTEM {
            out.push(MetaValue {
                id: None,
                name: name.into(),
                kind: kind.into(),
                value: stored_value(name),
                system: true,
                writable: true,
            });
        }
        for field in self.meta_fields(&facts.template_id).await? {
            out.push(MetaValue {
                id: Some(field.id),
                value: stored_value(&field.name).or(field.default_value),
                name: field.name,
                kind: field.kind,
                system: false,
                writable: true,
            });
        }
        Ok(out)
    }

    /// One metadata value of a device by field name (for the device: `Auth Token` included),
    /// `Ok(None)` for a field without a value, 404 `meta_field_unknown` for no such field.
    pub async fn device_meta_value(&self, device_id: u32, name: &str) -> Result<Option<String>> {
        let facts = self.device_facts(device_id).await?;
        match canonical(name.trim()) {
            "Auth Token" => return Ok(Some(facts.token)),
            "Device Name" => return Ok(Some(facts.name)),
            "Device Owner" => return Ok(facts.owner_email),
            _ => {}
        }
        Ok(self
            .device_metadata(device_id)
            .await?
            .into_iter()
            .find(|v| v.name == canonical(name.trim()))
            .ok_or_else(unknown_field)?
            .value)
    }

    /// The name of template field `id` of a device's template.
    pub async fn meta_field_name(&self, device_id: u32, id: u32) -> Result<String> {
        let facts = self.device_facts(device_id).await?;
        self.meta_fields(&facts.template_id)
            .await?
            .into_iter()
            .find(|f| f.id == id)
            .map(|f| f.name)
            .ok_or_else(unknown_field)
    }

    /// Sets metadata `name` of a device, checked against its type; read-only and unknown fields
    /// are refused. Returns the stored value.
    pub async fn set_device_metadata(
        &self,
        device_id: u32,
        name: &str,
        value: &str,
        writer: MetaWriter,
    ) -> Result<String> {
        let name = canonical(name.trim());
        if READ_ONLY_SYSTEM.contains(&name) {
            return Err(ControlError::validation(format!(
                "{name:?} is read-only (it shows the device record)"
            )));
        }
        let kind = match STORED_SYSTEM.iter().find(|(n, _)| *n == name) {
            Some((_, kind)) => (*kind).to_owned(),
            None => {
                let facts = self.device_facts(device_id).await?;
                self.meta_fields(&facts.template_id)
                    .await?
                    .into_iter()
                    .find(|f| f.name == name)
                    .map(|f| f.kind)
                    .ok_or_else(unknown_field)?
            }
        };
        let value = check_meta_value(&kind, value)?;
        sqlx::query(
            "INSERT INTO device_metadata (device_id, name, value, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (device_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(i64::from(device_id))
        .bind(name)
        .bind(&value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        tracing::debug!(device_id, name, ?writer, "device metadata set");
        Ok(value)
    }
}

fn unknown_field() -> ControlError {
    ControlError::http(
        axum::http::StatusCode::NOT_FOUND,
        "meta_field_unknown",
        "MetaField doesn't exist.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_by_type() {
        assert_eq!(check_meta_value("number", " 42.5 ").unwrap(), "42.5");
        assert!(check_meta_value("number", "x").is_err());
        assert!(check_meta_value("email", "ops@example.com").is_ok());
        assert!(check_meta_value("email", "ops").is_err());
        assert!(check_meta_value("location", "52.37 4.89").is_ok());
        assert!(check_meta_value("location", "52.37,4.89").is_ok());
        assert!(check_meta_value("location", "95 4.89").is_err());
        assert!(check_meta_value("timezone", "Europe/Amsterdam").is_ok());
        assert!(check_meta_value("timezone", "Mars/Olympus").is_err());
        assert!(check_meta_value("imei", "490154203237518").is_ok());
        assert!(check_meta_value("imei", "4901").is_err());
        assert!(check_meta_value("text", &"x".repeat(256)).is_err());
    }

    #[test]
    fn fields_are_numbered_and_system_names_reserved() {
        let field = |name: &str, kind: &str| NewMetaField {
            name: name.into(),
            kind: kind.into(),
            default_value: None,
        };
        let fields =
            validate_meta_fields(&[field("Serial", "text"), field("Floor", "number")]).unwrap();
        assert_eq!(fields.iter().map(|f| f.id).collect::<Vec<_>>(), [1, 2]);
        assert!(validate_meta_fields(&[field("Time Zone", "text")]).is_err());
        assert!(validate_meta_fields(&[field("Device Timezone", "text")]).is_err());
        assert!(validate_meta_fields(&[field("a", "text"), field("A", "text")]).is_err());
        assert!(validate_meta_fields(&[field("a", "colour")]).is_err());
        let mut with_default = field("Floor", "number");
        with_default.default_value = Some("three".into());
        assert!(validate_meta_fields(&[with_default]).is_err());
    }
}
