//! Provisioning (dynamic tokens) and claiming (static tokens with claim codes).

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authorize_in;
use crate::control::ControlPlane;
use crate::control::auth::Principal;
use crate::control::devices::DeviceRecord;
use crate::control::error::{ErrorBody, Result};
use crate::control::extract::ApiJson;
use crate::control::permissions::Action;
use crate::control::provisioning::{
    ClaimRequest, ProvisionRequest, Provisioned, StaticBatch, StaticDevice,
};

pub(super) fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(provision))
        .routes(routes!(create_static))
        .routes(routes!(claim))
}

/// Issue a dynamic auth token for a template (Blynk.Inject-style provisioning): a new device
/// owned by the caller whose token must be used to log in within 24 hours.
#[utoipa::path(
    post, path = "/api/v1/provisioning", tag = "devices",
    request_body = ProvisionRequest,
    responses(
        (status = 201, description = "Created", body = Provisioned),
        (status = 400, description = "Unknown template", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Organization not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn provision(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<ProvisionRequest>,
) -> Result<(StatusCode, Json<Provisioned>)> {
    let org_id = body.org_id.unwrap_or(principal.org_id);
    authorize_in(&control, &principal, Action::DeviceCreate, org_id).await?;
    let provisioned = control.provision_device(&principal, org_id, &body).await?;
    Ok((StatusCode::CREATED, Json(provisioned)))
}

/// Make static-token devices in a batch: unowned, each with its auth token and a one-time
/// claim code.
#[utoipa::path(
    post, path = "/api/v1/devices/static", tag = "devices",
    request_body = StaticBatch,
    responses(
        (status = 201, description = "Created", body = Vec<StaticDevice>),
        (status = 400, description = "Unknown template or bad count", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Organization not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_static(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<StaticBatch>,
) -> Result<(StatusCode, Json<Vec<StaticDevice>>)> {
    let org_id = body.org_id.unwrap_or(principal.org_id);
    authorize_in(&control, &principal, Action::DeviceBatchCreate, org_id).await?;
    let devices = control.create_static_devices(org_id, &body).await?;
    Ok((StatusCode::CREATED, Json(devices)))
}

/// Claim an unowned static-token device with its claim code: the caller becomes its owner.
#[utoipa::path(
    post, path = "/api/v1/devices/claim", tag = "devices",
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "Claimed", body = DeviceRecord),
        (status = 404, description = "No unclaimed device with this code in reach", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn claim(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<ClaimRequest>,
) -> Result<Json<DeviceRecord>> {
    Ok(Json(control.claim_device(&principal, &body).await?))
}
