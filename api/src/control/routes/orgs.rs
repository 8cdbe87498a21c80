//! `/api/v1/organizations`: the organization tree.

use axum::extract::{FromRef, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{created, parse_id};
use crate::control::ControlPlane;
use crate::control::auth::Principal;
use crate::control::error::{ControlError, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::orgs::Organization;
use crate::control::permissions::{Action, Target};

pub(super) fn routes<S>() -> Router<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/api/v1/organizations",
            get(list_organizations).post(create_organization),
        )
        .route(
            "/api/v1/organizations/{id}",
            get(get_organization).patch(rename_organization),
        )
}

fn org_target(org_id: u32) -> Target {
    Target {
        org_id,
        owner_user_id: None,
    }
}

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

#[derive(Debug, Deserialize)]
struct NewOrganization {
    name: String,
    #[serde(default)]
    parent_id: Option<u32>,
}

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

#[derive(Debug, Deserialize)]
struct RenameOrganization {
    name: String,
}

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
    Ok(Json(control.rename_organization(org_id, &body.name).await?))
}
