//! HTTP routes of the control plane under `/api/v1`.
//!
//! | method | path | auth | answer |
//! |---|---|---|---|
//! | POST | `/api/v1/auth/login` `{"email","password"}` | – | 200 `{"token","expires_at","user"}` |
//! | POST | `/api/v1/auth/logout` | bearer | 204, the token stops working |
//! | GET | `/api/v1/auth/me` | bearer | 200 user |
//! | GET, POST | `/api/v1/auth/tokens` `{"name","expires_in_days"?}` | bearer | 200 own API tokens / 201 with `"token"` (shown once) |
//! | DELETE | `/api/v1/auth/tokens/{id}` | bearer | 204 / 404 |
//! | GET, POST | `/api/v1/templates` | bearer (POST: admin, staff) | 200 list / 201 template |
//! | GET | `/api/v1/templates/{id}` | bearer | 200 template / 404 |
//! | GET, POST | `/api/v1/devices` | bearer | 200 list / 201 device |
//! | GET | `/api/v1/devices/{id}` | bearer | 200 device / 404 |
//! | GET, POST | `/api/v1/organizations` `{"name","parent_id"?}` | bearer (POST: admin) | 200 list (admin: own org and below; others: own) / 201 |
//! | GET | `/api/v1/organizations/{id}` | bearer | 200 / 404 |
//! | GET, POST | `/api/v1/users` `{"email","password","role","name"?,"org_id"?}` | admin | 200 users of own org / 201 |
//! | GET | `/api/v1/users/{id}` | admin (own org and below) | 200 / 404 |
//!
//! Everything is scoped to the caller's organization; ids of other organizations answer 404.

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::ControlPlane;
use super::api_tokens::{ApiTokenView, NewApiToken};
use super::auth::{LoginResponse, Principal, Role, bearer_from_headers};
use super::devices::{DeviceRecord, NewDevice};
use super::error::{ControlError, Result};
use super::extract::{ApiJson, ApiPath};
use super::orgs::Organization;
use super::templates::{NewTemplate, Template};
use super::users::{NewUser, UserView};

/// All control-plane routes, generic over the application state.
pub fn routes<S>() -> Router<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
        .route(
            "/api/v1/auth/tokens",
            get(list_api_tokens).post(create_api_token),
        )
        .route("/api/v1/auth/tokens/{id}", delete(revoke_api_token))
        .route(
            "/api/v1/templates",
            get(list_templates).post(create_template),
        )
        .route("/api/v1/templates/{id}", get(get_template))
        .route("/api/v1/devices", get(list_devices).post(create_device))
        .route("/api/v1/devices/{id}", get(get_device))
        .route(
            "/api/v1/organizations",
            get(list_organizations).post(create_organization),
        )
        .route("/api/v1/organizations/{id}", get(get_organization))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}", get(get_user))
        .method_not_allowed_fallback(method_not_allowed)
}

/// Fallback for unknown paths, in the JSON error shape: `router.fallback(control::not_found)`.
pub async fn not_found() -> ControlError {
    ControlError::not_found("no such endpoint")
}

/// 405 in the JSON error shape (installed on every control-plane route).
pub async fn method_not_allowed() -> ControlError {
    ControlError::http(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

#[derive(Debug, Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

async fn login(
    State(control): State<ControlPlane>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>> {
    Ok(Json(control.login(&body.email, &body.password).await?))
}

async fn logout(
    State(control): State<ControlPlane>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<StatusCode> {
    control.logout(bearer_from_headers(&headers)?).await?;
    tracing::info!(user_id = principal.user_id, "user logged out");
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(control): State<ControlPlane>, principal: Principal) -> Result<Json<UserView>> {
    Ok(Json(control.user(&principal).await?))
}

async fn list_api_tokens(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<ApiTokenView>>> {
    Ok(Json(control.api_tokens(&principal).await?))
}

async fn create_api_token(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewApiToken>,
) -> Result<Response> {
    let created_token = control.create_api_token(&principal, &body).await?;
    Ok(created(
        format!("/api/v1/auth/tokens/{}", created_token.info.id),
        created_token,
    ))
}

async fn revoke_api_token(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let not_found = || ControlError::not_found(format!("API token {id:?} not found"));
    let token_id: u32 = id.parse().map_err(|_| not_found())?;
    if control.revoke_api_token(&principal, token_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

async fn list_templates(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<Template>>> {
    Ok(Json(control.templates(principal.org_id).await?))
}

async fn create_template(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewTemplate>,
) -> Result<Response> {
    if !principal.role.can_manage_templates() {
        return Err(ControlError::forbidden(
            "only admin and staff users can create templates",
        ));
    }
    let template = control.create_template(principal.org_id, &body).await?;
    let location = format!("/api/v1/templates/{}", template.id);
    Ok(created(location, template))
}

async fn get_template(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Template>> {
    control
        .template(principal.org_id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ControlError::not_found(format!("template {id:?} not found")))
}

async fn list_devices(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<DeviceRecord>>> {
    Ok(Json(control.devices(principal.org_id).await?))
}

async fn create_device(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewDevice>,
) -> Result<Response> {
    let device = control.create_device(&principal, &body).await?;
    let location = format!("/api/v1/devices/{}", device.id);
    Ok(created(location, device))
}

async fn get_device(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeviceRecord>> {
    let not_found = || ControlError::not_found(format!("device {id:?} not found"));
    let device_id: u32 = id.parse().map_err(|_| not_found())?;
    control
        .device(principal.org_id, device_id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}

fn require_admin(principal: &Principal, action: &str) -> Result<()> {
    if principal.role == Role::Admin {
        Ok(())
    } else {
        Err(ControlError::forbidden(format!(
            "only admin users can {action}"
        )))
    }
}

/// `org_id` if the caller may see it: admins their organization and everything below it,
/// other roles their own organization only.
async fn visible_org(control: &ControlPlane, principal: &Principal, org_id: u32) -> Result<bool> {
    if principal.role == Role::Admin {
        control.org_is_within(principal.org_id, org_id).await
    } else {
        Ok(org_id == principal.org_id)
    }
}

async fn list_organizations(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<Organization>>> {
    if principal.role == Role::Admin {
        Ok(Json(control.organization_subtree(principal.org_id).await?))
    } else {
        let own = control.organization(principal.org_id).await?;
        Ok(Json(own.into_iter().collect()))
    }
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
    require_admin(&principal, "create organizations")?;
    let parent_id = body.parent_id.unwrap_or(principal.org_id);
    if !control.org_is_within(principal.org_id, parent_id).await? {
        return Err(ControlError::not_found(format!(
            "organization {parent_id} not found"
        )));
    }
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
    let not_found = || ControlError::not_found(format!("organization {id:?} not found"));
    let org_id: u32 = id.parse().map_err(|_| not_found())?;
    if !visible_org(&control, &principal, org_id).await? {
        return Err(not_found());
    }
    control
        .organization(org_id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}

async fn list_users(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<UserView>>> {
    require_admin(&principal, "list users")?;
    Ok(Json(control.users(principal.org_id).await?))
}

async fn create_user(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<Response> {
    require_admin(&principal, "create users")?;
    let org_id = body.org_id.unwrap_or(principal.org_id);
    if !control.org_is_within(principal.org_id, org_id).await? {
        return Err(ControlError::not_found(format!(
            "organization {org_id} not found"
        )));
    }
    let user = control.create_user(org_id, &body).await?;
    Ok(created(format!("/api/v1/users/{}", user.id), user))
}

async fn get_user(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserView>> {
    require_admin(&principal, "read users")?;
    let not_found = || ControlError::not_found(format!("user {id:?} not found"));
    let user_id: u32 = id.parse().map_err(|_| not_found())?;
    match control.user_by_id(user_id).await? {
        Some(user) if control.org_is_within(principal.org_id, user.org_id).await? => Ok(Json(user)),
        _ => Err(not_found()),
    }
}

/// 201 with a `Location` header and the JSON body.
fn created<T: serde::Serialize>(location: String, body: T) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
