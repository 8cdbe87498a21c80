//! Widget properties set by devices (`Blynk.setProperty`, HTTP `update/property`): the latest
//! values of each (pin, property) of a device, for the console and apps to apply.

use axum::http::StatusCode;
use serde::Serialize;

use super::ControlPlane;
use super::error::{ControlError, Result};
use super::time::{now_ms, rfc3339};

/// Longest property name.
pub const MAX_PROPERTY_NAME: usize = 64;

/// Most bytes of all values of one property together.
pub const MAX_PROPERTY_VALUE_BYTES: usize = 1024;

/// Most distinct (pin, property) pairs kept per device.
pub const MAX_PROPERTIES_PER_DEVICE: i64 = 512;

/// A property of a device's pin.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviceProperty {
    pub pin: u16,
    pub property: String,
    /// One value, or several for list properties (`labels`, `urls`, indexed `url`).
    pub values: Vec<String>,
    /// RFC 3339.
    pub updated_at: String,
}

#[derive(sqlx::FromRow)]
struct PropertyRow {
    #[sqlx(try_from = "i64")]
    pin: u16,
    property: String,
    value: String,
    updated_at: i64,
}

/// Property names: an ASCII letter, then letters, digits or underscores; at most 64.
pub fn valid_property_name(name: &str) -> bool {
    name.len() <= MAX_PROPERTY_NAME
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn property_error(code: &'static str, message: impl Into<String>) -> ControlError {
    ControlError::http(StatusCode::BAD_REQUEST, code, message)
}

impl ControlPlane {
    /// Stores `values` as the current value of `property` on virtual pin `pin` of a device.
    ///
    /// Errors: 400 `bad_property` (name not `[A-Za-z][A-Za-z0-9_]*`, ≤ 64), 400 `bad_pin`
    /// (> 255), 400 `property_too_large` (values over 1 KiB), 400 `no_value`,
    /// 429 `property_limit` (more than 512 distinct properties), 404 unknown device.
    pub async fn set_device_property(
        &self,
        device_id: u32,
        pin: u16,
        property: &str,
        values: &[&str],
    ) -> Result<()> {
        if !valid_property_name(property) {
            return Err(property_error(
                "bad_property",
                format!("invalid property name {property:?}"),
            ));
        }
        if pin > 255 {
            return Err(property_error("bad_pin", "Wrong pin format."));
        }
        if values.is_empty() {
            return Err(property_error(
                "no_value",
                "No properties for update provided.",
            ));
        }
        if values.iter().map(|v| v.len()).sum::<usize>() > MAX_PROPERTY_VALUE_BYTES {
            return Err(property_error(
                "property_too_large",
                format!("property values are longer than {MAX_PROPERTY_VALUE_BYTES} bytes"),
            ));
        }
        let value =
            serde_json::to_string(values).map_err(|e| ControlError::internal(e.to_string()))?;
        let exists: bool = sqlx::query_scalar::<_, i64>(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM devices WHERE id = $1) THEN 1 ELSE 0 END",
        )
        .bind(i64::from(device_id))
        .fetch_one(&self.pool)
        .await?
            != 0;
        if !exists {
            return Err(ControlError::not_found(format!(
                "device {device_id} not found"
            )));
        }
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM device_properties WHERE device_id = $1
               AND NOT (pin = $2 AND property = $3)",
        )
        .bind(i64::from(device_id))
        .bind(i64::from(pin))
        .bind(property)
        .fetch_one(&self.pool)
        .await?;
        if count >= MAX_PROPERTIES_PER_DEVICE {
            return Err(ControlError::http(
                StatusCode::TOO_MANY_REQUESTS,
                "property_limit",
                format!("a device keeps at most {MAX_PROPERTIES_PER_DEVICE} properties"),
            ));
        }
        sqlx::query(
            "INSERT INTO device_properties (device_id, pin, property, value, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (device_id, pin, property) DO UPDATE SET value = $4, updated_at = $5",
        )
        .bind(i64::from(device_id))
        .bind(i64::from(pin))
        .bind(property)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The properties of a device by pin and name. Not scoped by organization: callers check
    /// that the device is visible first.
    pub async fn device_properties(&self, device_id: u32) -> Result<Vec<DeviceProperty>> {
        let rows: Vec<PropertyRow> = sqlx::query_as(
            "SELECT pin, property, value, updated_at FROM device_properties
             WHERE device_id = $1 ORDER BY pin, property",
        )
        .bind(i64::from(device_id))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| DeviceProperty {
                pin: row.pin,
                property: row.property,
                values: serde_json::from_str(&row.value).unwrap_or_default(),
                updated_at: rfc3339(row.updated_at),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_names() {
        for ok in ["color", "onLabel", "isDisabled", "url_2"] {
            assert!(valid_property_name(ok), "{ok}");
        }
        for bad in ["", "1color", "co lor", "a-b", &"x".repeat(65)] {
            assert!(!valid_property_name(bad), "{bad}");
        }
    }
}
