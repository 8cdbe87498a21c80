//! `/api/v1/auth/…`: login, logout, me, password reset, API tokens.

use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{created, parse_id};
use crate::control::ControlPlane;
use crate::control::api_tokens::{ApiTokenView, NewApiToken};
use crate::control::auth::{LoginResponse, Principal, bearer_from_headers};
use crate::control::error::{ControlError, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::password_reset::ResetPassword;
use crate::control::permissions::{Action, require};
use crate::control::users::UserView;

pub(super) fn routes<S>() -> Router<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
        .route("/api/v1/auth/password-reset", post(reset_password))
        .route(
            "/api/v1/auth/tokens",
            get(list_api_tokens).post(create_api_token),
        )
        .route("/api/v1/auth/tokens/{id}", delete(revoke_api_token))
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

async fn reset_password(
    State(control): State<ControlPlane>,
    ApiJson(body): ApiJson<ResetPassword>,
) -> Result<StatusCode> {
    control.reset_password(&body).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_api_tokens(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<ApiTokenView>>> {
    require(&principal, Action::TokenManage)?;
    Ok(Json(control.api_tokens(&principal).await?))
}

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
