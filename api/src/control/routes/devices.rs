//! `/api/v1/devices`: devices, their token, tags, transfer, runtime status, timeline and
//! properties.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{created, parse_id};
use crate::control::ControlPlane;
use crate::control::auth::Principal;
use crate::control::device_events::{DeviceEvent, TimelineQuery};
use crate::control::device_properties::DeviceProperty;
use crate::control::device_status::DeviceStatus;
use crate::control::devices::{DeviceRecord, NewDevice};
use crate::control::error::{ControlError, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::permissions::{Action, Target};

pub(super) fn routes<S>() -> Router<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/api/v1/devices", get(list_devices).post(create_device))
        .route(
            "/api/v1/devices/{id}",
            get(get_device).delete(delete_device),
        )
        .route("/api/v1/devices/{id}/token", post(rotate_token))
        .route(
            "/api/v1/devices/{id}/tags",
            get(device_tags).put(set_device_tags),
        )
        .route("/api/v1/devices/{id}/transfer", post(transfer_device))
        .route("/api/v1/devices/{id}/status", get(device_status))
        .route("/api/v1/devices/{id}/events", get(device_events))
        .route(
            "/api/v1/devices/{id}/events/{event_id}/resolve",
            post(resolve_device_event),
        )
        .route("/api/v1/devices/{id}/properties", get(device_properties))
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

#[derive(Debug, Deserialize)]
struct DeviceFilter {
    tag: Option<String>,
}

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

async fn get_device(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeviceRecord>> {
    Ok(Json(
        authorized_device(&control, &principal, &id, Action::DeviceRead).await?,
    ))
}

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

async fn rotate_token(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeviceRecord>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceManage).await?;
    Ok(Json(control.rotate_device_token(device.id).await?))
}

async fn device_tags(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<String>>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceRead).await?;
    Ok(Json(control.device_tags(device.id).await?))
}

async fn set_device_tags(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(tags): ApiJson<Vec<String>>,
) -> Result<Json<Vec<String>>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceManage).await?;
    Ok(Json(control.set_device_tags(device.id, &tags).await?))
}

#[derive(Debug, Deserialize)]
struct DeviceTransfer {
    org_id: u32,
    #[serde(default)]
    template_id: Option<String>,
}

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

async fn device_status(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeviceStatus>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceRead).await?;
    Ok(Json(control.device_status(device.id).await?))
}

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

async fn device_properties(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<DeviceProperty>>> {
    let device = authorized_device(&control, &principal, &id, Action::DeviceRead).await?;
    Ok(Json(control.device_properties(device.id).await?))
}
