//! `/api/v1/templates`.

use axum::Json;
use axum::extract::{FromRef, State};
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::created;
use crate::control::ControlPlane;
use crate::control::auth::Principal;
use crate::control::error::{ControlError, ErrorBody, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::permissions::{Action, Target};
use crate::control::templates::{NewTemplate, Template};

pub(super) fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, update_template))
        .routes(routes!(set_dashboard))
}

/// A dashboard layout, `{"widgets": [...]}` (stored as given, at most 256 KiB of JSON).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes a free-form body in the OpenAPI document only
struct Dashboard {
    /// Widgets as the console lays them out.
    widgets: Vec<serde_json::Value>,
}

/// Templates of the organizations the caller may read.
#[utoipa::path(
    get, path = "/api/v1/templates", tag = "templates",
    responses(
        (status = 200, description = "OK", body = Vec<Template>),
        (status = 403, description = "Forbidden", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
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

/// Create a template: datastreams (typed virtual pins), events, metadata fields and a
/// dashboard.
#[utoipa::path(
    post, path = "/api/v1/templates", tag = "templates",
    request_body = NewTemplate,
    responses(
        (status = 201, description = "Created; `Location` names it", body = Template),
        (status = 400, description = "Invalid datastreams, events, metadata or dashboard", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Organization not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
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

/// One template.
#[utoipa::path(
    get, path = "/api/v1/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "Template id (`TMPL…`)")),
    responses(
        (status = 200, description = "OK", body = Template),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
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
#[utoipa::path(
    put, path = "/api/v1/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "Template id (`TMPL…`)")),
    request_body(content = NewTemplate, description = "The whole template, as for POST"),
    responses(
        (status = 200, description = "Updated", body = Template),
        (status = 400, description = "Invalid template, or another organization", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
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

/// Replace a template's dashboard layout.
#[utoipa::path(
    put, path = "/api/v1/templates/{id}/dashboard", tag = "templates",
    params(("id" = String, Path, description = "Template id (`TMPL…`)")),
    request_body = Dashboard,
    responses(
        (status = 200, description = "The template with its new dashboard", body = Template),
        (status = 400, description = "Not an object with a `widgets` array, or too large", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
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
