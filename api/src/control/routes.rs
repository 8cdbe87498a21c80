//! HTTP routes of the control plane under `/api/v1`.
//!
//! | method | path | auth | answer |
//! |---|---|---|---|
//! | POST | `/api/v1/auth/login` `{"email","password"}` | – | 200 `{"token","expires_at","user"}` |
//! | POST | `/api/v1/auth/logout` | bearer | 204, the token stops working |
//! | GET | `/api/v1/auth/me` | bearer | 200 user |
//! | GET, POST | `/api/v1/templates` | bearer (POST: admin, staff) | 200 list / 201 template |
//! | GET | `/api/v1/templates/{id}` | bearer | 200 template / 404 |
//! | GET, POST | `/api/v1/devices` | bearer | 200 list / 201 device |
//! | GET | `/api/v1/devices/{id}` | bearer | 200 device / 404 |
//!
//! Everything is scoped to the caller's organization; ids of other organizations answer 404.

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::ControlPlane;
use super::auth::{LoginResponse, Principal, bearer_from_headers};
use super::devices::{DeviceRecord, NewDevice};
use super::error::{ControlError, Result};
use super::extract::{ApiJson, ApiPath};
use super::templates::{NewTemplate, Template};
use super::users::UserView;

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
            "/api/v1/templates",
            get(list_templates).post(create_template),
        )
        .route("/api/v1/templates/{id}", get(get_template))
        .route("/api/v1/devices", get(list_devices).post(create_device))
        .route("/api/v1/devices/{id}", get(get_device))
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

/// 201 with a `Location` header and the JSON body.
fn created<T: serde::Serialize>(location: String, body: T) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
