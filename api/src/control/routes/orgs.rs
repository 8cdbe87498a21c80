//! `/api/v1/organizations`: the organization tree.

use axum::Json;
use axum::extract::{FromRef, State};
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{created, parse_id};
use crate::control::ControlPlane;
use crate::control::auth::Principal;
use crate::control::error::{ControlError, ErrorBody, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::orgs::Organization;
use crate::control::permissions::{Action, Target};

pub(super) fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(list_organizations, create_organization))
        .routes(routes!(get_organization, rename_organization))
}

fn org_target(org_id: u32) -> Target {
    Target {
        org_id,
        owner_user_id: None,
    }
}

/// Organizations the caller may read: its own and, for admins, the ones below it.
#[utoipa::path(
    get, path = "/api/v1/organizations", tag = "organizations",
    responses(
        (status = 200, description = "OK", body = Vec<Organization>),
        (status = 403, description = "Forbidden", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_organizations(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<Organization>>> {
    let ids = control
        .orgs_in_scope(&principal, Action::OrganizationRead)
        .await?;
    let mut orgs = Vec::with_capacity(ids.len());
    for id in ids {
        orgs.extend(control.organization(id).await?);
    }
    Ok(Json(orgs))
}

/// Body of `POST /api/v1/organizations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct NewOrganization {
    name: String,
    /// Parent organization: the caller's own (default) or one below it.
    #[serde(default)]
    parent_id: Option<u32>,
}

/// Create a sub-organization.
#[utoipa::path(
    post, path = "/api/v1/organizations", tag = "organizations",
    request_body = NewOrganization,
    responses(
        (status = 201, description = "Created; `Location` names it", body = Organization),
        (status = 400, description = "Empty name, or malformed body", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Parent organization not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_organization(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewOrganization>,
) -> Result<Response> {
    let parent_id = body.parent_id.unwrap_or(principal.org_id);
    control
        .authorize(
            &principal,
            Action::OrganizationManage,
            org_target(parent_id),
            &format!("organization {parent_id}"),
        )
        .await?;
    let org = control
        .create_organization(&body.name, Some(parent_id))
        .await?;
    Ok(created(format!("/api/v1/organizations/{}", org.id), org))
}

/// One organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{id}", tag = "organizations",
    params(("id" = u32, Path, description = "Organization id")),
    responses(
        (status = 200, description = "OK", body = Organization),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_organization(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Organization>> {
    let org_id = parse_id(&id, "organization")?;
    let what = format!("organization {id:?}");
    control
        .authorize(
            &principal,
            Action::OrganizationRead,
            org_target(org_id),
            &what,
        )
        .await?;
    control
        .organization(org_id)
        .await?
        .map(Json)
        .ok_or_else(|| ControlError::not_found(format!("{what} not found")))
}

/// Body of `PATCH /api/v1/organizations/{id}`: the fields to change, at least one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct RenameOrganization {
    /// New name.
    #[serde(default)]
    name: Option<String>,
    /// Days of telemetry to keep (1–36500); `null` returns to the server's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    retention_days: Option<Option<u32>>,
}

/// A field that is present (`Some`), possibly `null` (`Some(None)`); absent is `None`.
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// Rename an organization or set its telemetry retention.
#[utoipa::path(
    patch, path = "/api/v1/organizations/{id}", tag = "organizations",
    params(("id" = u32, Path, description = "Organization id")),
    request_body = RenameOrganization,
    responses(
        (status = 200, description = "Changed", body = Organization),
        (status = 400, description = "Empty name, retention out of range, nothing to change, or malformed body", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn rename_organization(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RenameOrganization>,
) -> Result<Json<Organization>> {
    let org_id = parse_id(&id, "organization")?;
    let what = format!("organization {id:?}");
    if control.organization(org_id).await?.is_none() {
        return Err(ControlError::not_found(format!("{what} not found")));
    }
    control
        .authorize(
            &principal,
            Action::OrganizationManage,
            org_target(org_id),
            &what,
        )
        .await?;
    if body.name.is_none() && body.retention_days.is_none() {
        return Err(ControlError::validation(
            "nothing to change: give name and/or retention_days",
        ));
    }
    // Checked before anything changes, so a bad retention leaves the name alone too.
    if let Some(days) = body.retention_days {
        crate::control::check_retention_days(days)?;
    }
    let mut org = None;
    if let Some(name) = &body.name {
        org = Some(control.rename_organization(org_id, name).await?);
    }
    if let Some(days) = body.retention_days {
        org = Some(control.set_organization_retention(org_id, days).await?);
    }
    Ok(Json(org.expect("at least one change was made")))
}
