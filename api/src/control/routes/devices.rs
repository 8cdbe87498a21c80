//! `/api/v1/devices`: devices, their token, tags, transfer, runtime status, timeline and
//! properties.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{created, parse_id};
use crate::control::ControlPlane;
use crate::control::auth::Principal;
use crate::control::device_events::{DeviceEvent, TimelineQuery};
use crate::control::device_properties::DeviceProperty;
use crate::control::device_status::DeviceStatus;
use crate::control::devices::{DeviceRecord, NewDevice};
use crate::control::error::{ControlError, ErrorBody, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::permissions::{Action, Target};

pub(super) fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(list_devices, create_device))
        .routes(routes!(get_device, delete_device))
        .routes(routes!(rotate_token))
        .routes(routes!(device_tags, set_device_tags))
        .routes(routes!(transfer_device))
        .routes(routes!(device_status))
        .routes(routes!(device_events))
        .routes(routes!(resolve_device_event))
        .routes(routes!(device_properties))
}

/// The device `id` after checking `action` on it (404 when not visible, 403 when visible but
/// not allowed).
async fn authorized_device(
    control: &ControlPlane,
    principal: &Principal,
    id: &str,
    action: Action,
) -> Result<DeviceRecord> {
    control
        .authorized_device(principal, parse_id(id, "device")?, action)
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeviceFilter {
    /// Only devices with this tag.
    tag: Option<String>,
}

/// Devices of the organizations the caller may read.
#[utoipa::path(
    get, path = "/api/v1/devices", tag = "devices",
    params(DeviceFilter),
    responses(
        (status = 200, description = "OK", body = Vec<DeviceRecord>),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_devices(
    State(control): State<ControlPlane>,
    principal: Principal,
    query: std::result::Result<Query<DeviceFilter>, QueryRejection>,
) -> Result<Json<Vec<DeviceRecord>>> {
    let Query(filter) = query.map_err(|e| ControlError::bad_request(e.body_text()))?;
    let mut out = Vec::new();
    for org_id in control
        .orgs_in_scope(&principal, Action::DeviceRead)
        .await?
    {
        match &filter.tag {
            None => out.extend(control.devices(org_id).await?),
            Some(tag) => {
                for id in control.device_ids_with_tag(org_id, tag).await? {
                    out.extend(control.device(org_id, id).await?);
                }
            }
        }
    }
    Ok(Json(out))
}

/// Create a device of a template, owned by the caller, with a fresh auth token.
#[utoipa::path(
    post, path = "/api/v1/devices", tag = "devices",
    request_body = NewDevice,
    responses(
        (status = 201, description = "Created; `Location` names it", body = DeviceRecord),
        (status = 400, description = "Empty name, unknown template, or malformed body", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Organization not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_device(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewDevice>,
) -> Result<Response> {
    let org_id = body.org_id.unwrap_or(principal.org_id);
    let target = Target {
        org_id,
        owner_user_id: None,
    };
    control
        .authorize(
            &principal,
            Action::DeviceCreate,
            target,
            &format!("organization {org_id}"),
        )
        .await?;
    let device = control.create_device(&principal, org_id, &body).await?;
    let location = format!("/api/v1/devices/{}", device.id);
    Ok(created(location, device))
}

/// One device.
#[utoipa::path(
    get, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = u32, Path, description = "Device id")),
    responses(
        (status = 200, description = "OK", body = DeviceRecord),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_device(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeviceRecord>> {
    Ok(Json(
        authorized_device(&control, &principal, &id, Action::DeviceRead).await?,
    ))
}

/// Delete a device.
#[utoipa::path(
    delete, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = u32, Path, description = "Device id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn delete_device(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceManage).await?;
    control.delete_device(device.id).await?;
    tracing::info!(
        device_id = device.id,
        user_id = principal.user_id,
        "device deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Give a device a new auth token; the old one stops working.
#[utoipa::path(
    post, path = "/api/v1/devices/{id}/token", tag = "devices",
    params(("id" = u32, Path, description = "Device id")),
    responses(
        (status = 200, description = "The device with its new token", body = DeviceRecord),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn rotate_token(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeviceRecord>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceManage).await?;
    Ok(Json(control.rotate_device_token(device.id).await?))
}

/// A device's tags.
#[utoipa::path(
    get, path = "/api/v1/devices/{id}/tags", tag = "devices",
    params(("id" = u32, Path, description = "Device id")),
    responses(
        (status = 200, description = "OK", body = Vec<String>),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn device_tags(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<String>>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceRead).await?;
    Ok(Json(control.device_tags(device.id).await?))
}

/// Replace a device's tags; answers them normalized.
#[utoipa::path(
    put, path = "/api/v1/devices/{id}/tags", tag = "devices",
    params(("id" = u32, Path, description = "Device id")),
    request_body(content = Vec<String>, description = "The new tags, e.g. `[\"a\", \"b\"]`"),
    responses(
        (status = 200, description = "OK", body = Vec<String>),
        (status = 400, description = "Too many or too long tags", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn set_device_tags(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(tags): ApiJson<Vec<String>>,
) -> Result<Json<Vec<String>>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceManage).await?;
    Ok(Json(control.set_device_tags(device.id, &tags).await?))
}

/// Body of `POST /api/v1/devices/{id}/transfer`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct DeviceTransfer {
    /// Organization the device moves to.
    org_id: u32,
    /// A template of the target organization (needed when the device's template is not
    /// usable there).
    #[serde(default)]
    template_id: Option<String>,
}

/// Move a device to another organization the caller manages.
#[utoipa::path(
    post, path = "/api/v1/devices/{id}/transfer", tag = "devices",
    params(("id" = u32, Path, description = "Device id")),
    request_body = DeviceTransfer,
    responses(
        (status = 200, description = "Transferred", body = DeviceRecord),
        (status = 400, description = "Template not usable in the target organization, or malformed body", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Device or organization not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn transfer_device(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DeviceTransfer>,
) -> Result<Json<DeviceRecord>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceTransfer).await?;
    let target = Target {
        org_id: body.org_id,
        owner_user_id: None,
    };
    control
        .authorize(
            &principal,
            Action::DeviceTransfer,
            target,
            &format!("organization {}", body.org_id),
        )
        .await?;
    Ok(Json(
        control
            .transfer_device(device.id, body.org_id, body.template_id.as_deref())
            .await?,
    ))
}

/// Online state, last connect / disconnect / message times and the info the device reported.
#[utoipa::path(
    get, path = "/api/v1/devices/{id}/status", tag = "devices",
    params(("id" = u32, Path, description = "Device id")),
    responses(
        (status = 200, description = "OK", body = DeviceStatus),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn device_status(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeviceStatus>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceRead).await?;
    Ok(Json(control.device_status(device.id).await?))
}

/// The device's timeline (events it logged, online / offline, OTA steps), newest first.
#[utoipa::path(
    get, path = "/api/v1/devices/{id}/events", tag = "devices",
    params(("id" = u32, Path, description = "Device id"), TimelineQuery),
    responses(
        (status = 200, description = "OK", body = Vec<DeviceEvent>),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn device_events(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    query: std::result::Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<Vec<DeviceEvent>>> {
    let Query(query) = query.map_err(|e| ControlError::bad_request(e.body_text()))?;
    let device = authorized_device(&control, &principal, &id, Action::DeviceRead).await?;
    Ok(Json(control.device_events(device.id, &query).await?))
}

/// Resolve an event of the device's timeline (an already resolved event is answered unchanged).
#[utoipa::path(
    post, path = "/api/v1/devices/{id}/events/{event_id}/resolve", tag = "devices",
    params(
        ("id" = u32, Path, description = "Device id"),
        ("event_id" = u32, Path, description = "Event id"),
    ),
    responses(
        (status = 200, description = "The resolved event", body = DeviceEvent),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Device or event not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn resolve_device_event(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath((id, event_id)): ApiPath<(String, String)>,
) -> Result<Json<DeviceEvent>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceManage).await?;
    let event_id = parse_id(&event_id, "event")?;
    let event = control
        .resolve_event_by_user(device.id, event_id, principal.user_id)
        .await?
        .ok_or_else(|| ControlError::not_found(format!("event {event_id} not found")))?;
    tracing::info!(
        device_id = device.id,
        event_id,
        user_id = principal.user_id,
        "event resolved"
    );
    Ok(Json(event))
}

/// Widget properties (color, label, …) the device set on its pins.
#[utoipa::path(
    get, path = "/api/v1/devices/{id}/properties", tag = "devices",
    params(("id" = u32, Path, description = "Device id")),
    responses(
        (status = 200, description = "OK", body = Vec<DeviceProperty>),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn device_properties(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<DeviceProperty>>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceRead).await?;
    Ok(Json(control.device_properties(device.id).await?))
}
