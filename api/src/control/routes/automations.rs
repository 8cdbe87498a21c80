//! `/api/v1/automations`: triggers and actions of an organization (see
//! `crate::control::automations` for their shapes and `crate::automations` for the engine).

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{authorize_in, created, parse_id};
use crate::control::ControlPlane;
use crate::control::auth::Principal;
use crate::control::automations::{Automation, NewAutomation};
use crate::control::error::{ControlError, ErrorBody, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::permissions::{Action, Target, require};

pub(super) fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(list_automations, create_automation))
        .routes(routes!(
            get_automation,
            update_automation,
            delete_automation
        ))
}

/// The automation `id` after checking `action` on it (404 when not visible, 403 when visible
/// but not allowed).
async fn authorized_automation(
    control: &ControlPlane,
    principal: &Principal,
    id: &str,
    action: Action,
) -> Result<Automation> {
    let what = format!("automation {id:?}");
    let automation = control
        .automation(parse_id(id, "automation")?)
        .await?
        .ok_or_else(|| ControlError::not_found(format!("{what} not found")))?;
    let target = Target {
        org_id: automation.org_id,
        owner_user_id: None,
    };
    control.authorize(principal, action, target, &what).await?;
    Ok(automation)
}

/// Automations of the organizations the caller may read.
#[utoipa::path(
    get, path = "/api/v1/automations", tag = "automations",
    responses(
        (status = 200, description = "OK", body = Vec<Automation>),
        (status = 403, description = "Forbidden", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_automations(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<Automation>>> {
    require(&principal, Action::AutomationRead)?;
    let orgs = control
        .orgs_in_scope(&principal, Action::AutomationRead)
        .await?;
    Ok(Json(control.automations(Some(&orgs)).await?))
}

/// Create an automation: a trigger (`datastream`, `device_status`, `event`, `schedule`) and
/// 1–10 actions (`write`, `notify`, `webhook`). Devices and webhooks must be the
/// organization's.
#[utoipa::path(
    post, path = "/api/v1/automations", tag = "automations",
    request_body = NewAutomation,
    responses(
        (status = 201, description = "Created; evaluated from now on", body = Automation),
        (status = 400, description = "Bad trigger or actions; unknown device, pin, webhook or time zone", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_automation(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewAutomation>,
) -> Result<Response> {
    let org_id = body.org_id.unwrap_or(principal.org_id);
    authorize_in(&control, &principal, Action::AutomationManage, org_id).await?;
    let automation = control
        .create_automation(org_id, principal.user_id, &body)
        .await?;
    tracing::info!(
        automation_id = automation.id,
        org_id,
        user_id = principal.user_id,
        "automation created"
    );
    Ok(created(
        format!("/api/v1/automations/{}", automation.id),
        automation,
    ))
}

/// One automation, with when it last fired and what went wrong then.
#[utoipa::path(
    get, path = "/api/v1/automations/{id}", tag = "automations",
    params(("id" = u32, Path, description = "Automation id")),
    responses(
        (status = 200, description = "OK", body = Automation),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_automation(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Automation>> {
    Ok(Json(
        authorized_automation(&control, &principal, &id, Action::AutomationRead).await?,
    ))
}

/// Replace an automation's name, trigger, actions, cooldown and `enabled`.
#[utoipa::path(
    put, path = "/api/v1/automations/{id}", tag = "automations",
    params(("id" = u32, Path, description = "Automation id")),
    request_body = NewAutomation,
    responses(
        (status = 200, description = "OK", body = Automation),
        (status = 400, description = "Bad trigger or actions", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn update_automation(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewAutomation>,
) -> Result<Json<Automation>> {
    let current =
        authorized_automation(&control, &principal, &id, Action::AutomationManage).await?;
    if body.org_id.is_some_and(|org| org != current.org_id) {
        return Err(ControlError::validation(
            "an automation stays in its organization",
        ));
    }
    Ok(Json(control.update_automation(current.id, &body).await?))
}

/// Delete an automation.
#[utoipa::path(
    delete, path = "/api/v1/automations/{id}", tag = "automations",
    params(("id" = u32, Path, description = "Automation id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn delete_automation(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let automation =
        authorized_automation(&control, &principal, &id, Action::AutomationManage).await?;
    control.delete_automation(automation.id).await?;
    tracing::info!(
        automation_id = automation.id,
        user_id = principal.user_id,
        "automation deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}
