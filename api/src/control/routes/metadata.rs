//! `/api/v1/devices/{id}/metadata`: a device's metadata values (template fields and system
//! fields), read and written by users.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{FromRef, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::parse_id;
use crate::control::ControlPlane;
use crate::control::auth::Principal;
use crate::control::error::{ControlError, ErrorBody, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::metadata::{MetaValue, MetaWriter};
use crate::control::permissions::Action;

/// Most values one request may set.
const MAX_SET: usize = 50;

pub(super) fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new().routes(routes!(get_metadata, set_metadata))
}

/// The device's metadata: `Device Name`, `Device Owner`, `Hotspot Name`, `Time Zone`, then the
/// template's fields with the device's values (or their defaults).
#[utoipa::path(
    get, path = "/api/v1/devices/{id}/metadata", tag = "devices",
    params(("id" = u32, Path, description = "Device id")),
    responses(
        (status = 200, description = "OK", body = Vec<MetaValue>),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_metadata(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<MetaValue>>> {
    let device = control
        .authorized_device(&principal, parse_id(&id, "device")?, Action::DeviceRead)
        .await?;
    Ok(Json(control.device_metadata(device.id).await?))
}

/// Set metadata values: `{"<field name>": "<value>", …}`, each checked against its field's type
/// (all or none are stored). Answers the device's metadata.
#[utoipa::path(
    put, path = "/api/v1/devices/{id}/metadata", tag = "devices",
    params(("id" = u32, Path, description = "Device id")),
    request_body(content = BTreeMap<String, String>, description = "Field name → value"),
    responses(
        (status = 200, description = "OK", body = Vec<MetaValue>),
        (status = 400, description = "Unknown or read-only field, or a value of the wrong type", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn set_metadata(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(values): ApiJson<BTreeMap<String, String>>,
) -> Result<Json<Vec<MetaValue>>> {
    let device = control
        .authorized_device(&principal, parse_id(&id, "device")?, Action::DeviceManage)
        .await?;
    if values.len() > MAX_SET {
        return Err(ControlError::validation(format!(
            "at most {MAX_SET} values per request"
        )));
    }
    // Check every value first, so that a bad one stores none.
    let current = control.device_metadata(device.id).await?;
    for (name, value) in &values {
        let field = current
            .iter()
            .find(|f| f.name == *name || (name == "Device Timezone" && f.name == "Time Zone"))
            .ok_or_else(|| {
                ControlError::validation(format!("{name:?}: the device has no such metadata field"))
            })?;
        if !field.writable {
            return Err(ControlError::validation(format!("{name:?} is read-only")));
        }
        crate::control::check_meta_value(&field.kind, value)
            .map_err(|e| ControlError::validation(format!("{name:?}: {e}")))?;
    }
    for (name, value) in &values {
        control
            .set_device_metadata(device.id, name, value, MetaWriter::User)
            .await?;
    }
    Ok(Json(control.device_metadata(device.id).await?))
}
