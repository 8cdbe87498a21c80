//! `/api/v1/auth/…`: login, logout, me, password reset, API tokens.

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{created, parse_id};
use crate::control::ControlPlane;
use crate::control::api_tokens::{ApiTokenView, CreatedApiToken, NewApiToken};
use crate::control::auth::{LoginResponse, Principal, bearer_from_headers};
use crate::control::error::{ControlError, ErrorBody, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::password_reset::ResetPassword;
use crate::control::permissions::{Action, require};
use crate::control::users::UserView;

pub(super) fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(reset_password))
        .routes(routes!(list_api_tokens, create_api_token))
        .routes(routes!(revoke_api_token))
}

/// Body of `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct LoginRequest {
    email: String,
    password: String,
}

/// Open a console session: the answer's `token` is the bearer token of the other routes
/// (`Authorization: Bearer <token>`).
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Unknown e-mail, wrong password or disabled account (the same answer for all three)", body = ErrorBody),
    ),
)]
async fn login(
    State(control): State<ControlPlane>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>> {
    Ok(Json(control.login(&body.email, &body.password).await?))
}

/// End the session (or revoke the API token) the request is made with.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    responses(
        (status = 204, description = "Logged out; the token stops working"),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn logout(
    State(control): State<ControlPlane>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<StatusCode> {
    control.logout(bearer_from_headers(&headers)?).await?;
    tracing::info!(user_id = principal.user_id, "user logged out");
    Ok(StatusCode::NO_CONTENT)
}

/// The caller.
#[utoipa::path(
    get, path = "/api/v1/auth/me", tag = "auth",
    responses(
        (status = 200, description = "OK", body = UserView),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn me(State(control): State<ControlPlane>, principal: Principal) -> Result<Json<UserView>> {
    Ok(Json(control.user(&principal).await?))
}

/// Set a new password with a reset token (`POST /api/v1/users/{id}/password-reset`); the
/// user's sessions end.
#[utoipa::path(
    post, path = "/api/v1/auth/password-reset", tag = "auth",
    request_body = ResetPassword,
    responses(
        (status = 204, description = "Password changed"),
        (status = 400, description = "Password too short, or malformed body", body = ErrorBody),
        (status = 404, description = "Unknown, used or expired reset token", body = ErrorBody),
    ),
)]
async fn reset_password(
    State(control): State<ControlPlane>,
    ApiJson(body): ApiJson<ResetPassword>,
) -> Result<StatusCode> {
    control.reset_password(&body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own API tokens (never their secrets).
#[utoipa::path(
    get, path = "/api/v1/auth/tokens", tag = "auth",
    responses(
        (status = 200, description = "OK", body = Vec<ApiTokenView>),
        (status = 403, description = "Forbidden", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_api_tokens(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<ApiTokenView>>> {
    require(&principal, Action::TokenManage)?;
    Ok(Json(control.api_tokens(&principal).await?))
}

/// Create an API token for scripts, optionally expiring and limited to some actions. The
/// answer carries its `token` (shown once).
#[utoipa::path(
    post, path = "/api/v1/auth/tokens", tag = "auth",
    request_body = NewApiToken,
    responses(
        (status = 201, description = "Created; `Location` names it", body = CreatedApiToken),
        (status = 400, description = "Bad name, lifetime or scopes", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_api_token(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewApiToken>,
) -> Result<Response> {
    require(&principal, Action::TokenManage)?;
    let created_token = control.create_api_token(&principal, &body).await?;
    Ok(created(
        format!("/api/v1/auth/tokens/{}", created_token.info.id),
        created_token,
    ))
}

/// Revoke one of the caller's API tokens.
#[utoipa::path(
    delete, path = "/api/v1/auth/tokens/{id}", tag = "auth",
    params(("id" = u32, Path, description = "API token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn revoke_api_token(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    require(&principal, Action::TokenManage)?;
    let token_id = parse_id(&id, "API token")?;
    if control.revoke_api_token(&principal, token_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ControlError::not_found(format!(
            "API token {id:?} not found"
        )))
    }
}
