//! `/api/v1/templates`.

use axum::extract::{FromRef, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};

use super::created;
use crate::control::ControlPlane;
use crate::control::auth::Principal;
use crate::control::error::{ControlError, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::permissions::{Action, Target};
use crate::control::templates::{NewTemplate, Template};

pub(super) fn routes<S>() -> Router<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/api/v1/templates",
            get(list_templates).post(create_template),
        )
        .route(
            "/api/v1/templates/{id}",
            get(get_template).put(update_template),
        )
        .route(
            "/api/v1/templates/{id}/dashboard",
            axum::routing::put(set_dashboard),
        )
}

async fn list_templates(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<Template>>> {
    let mut out = Vec::new();
    for org_id in control
        .orgs_in_scope(&principal, Action::TemplateRead)
        .await?
    {
        out.extend(control.templates(org_id).await?);
    }
    Ok(Json(out))
}

async fn create_template(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewTemplate>,
) -> Result<Response> {
    let org_id = body.org_id.unwrap_or(principal.org_id);
    let target = Target {
        org_id,
        owner_user_id: None,
    };
    control
        .authorize(
            &principal,
            Action::TemplateManage,
            target,
            &format!("organization {org_id}"),
        )
        .await?;
    let template = control.create_template(org_id, &body).await?;
    let location = format!("/api/v1/templates/{}", template.id);
    Ok(created(location, template))
}

async fn get_template(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Template>> {
    let what = format!("template {id:?}");
    let not_found = || ControlError::not_found(format!("{what} not found"));
    let org_id = control.template_org(&id).await?.ok_or_else(not_found)?;
    let target = Target {
        org_id,
        owner_user_id: None,
    };
    control
        .authorize(&principal, Action::TemplateRead, target, &what)
        .await?;
    control
        .template(org_id, &id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}

/// Replaces a template's name, description, datastreams, events, metadata fields and (when
/// given) dashboard; its devices follow at once. The organization cannot change.
async fn update_template(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewTemplate>,
) -> Result<Json<Template>> {
    let what = format!("template {id:?}");
    let not_found = || ControlError::not_found(format!("{what} not found"));
    let org_id = control.template_org(&id).await?.ok_or_else(not_found)?;
    let target = Target {
        org_id,
        owner_user_id: None,
    };
    control
        .authorize(&principal, Action::TemplateManage, target, &what)
        .await?;
    if body.org_id.is_some_and(|o| o != org_id) {
        return Err(ControlError::validation(
            "a template stays in its organization",
        ));
    }
    Ok(Json(control.update_template(&id, &body).await?))
}

async fn set_dashboard(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(dashboard): ApiJson<serde_json::Value>,
) -> Result<Json<Template>> {
    let what = format!("template {id:?}");
    let not_found = || ControlError::not_found(format!("{what} not found"));
    let org_id = control.template_org(&id).await?.ok_or_else(not_found)?;
    let target = Target {
        org_id,
        owner_user_id: None,
    };
    control
        .authorize(&principal, Action::TemplateManage, target, &what)
        .await?;
    control.set_template_dashboard(&id, &dashboard).await?;
    control
        .template(org_id, &id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}
