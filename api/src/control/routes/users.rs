//! `/api/v1/users`: users, their tags, transfer and password reset.

use axum::extract::{FromRef, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{created, parse_id};
use crate::control::ControlPlane;
use crate::control::auth::Principal;
use crate::control::error::{ControlError, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::password_reset::PasswordResetToken;
use crate::control::permissions::{Action, Scope, Target, scope_of};
use crate::control::users::{NewUser, UserView};

pub(super) fn routes<S>() -> Router<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}", get(get_user))
        .route("/api/v1/users/{id}/tags", get(user_tags).put(set_user_tags))
        .route("/api/v1/users/{id}/transfer", post(transfer_user))
        .route("/api/v1/users/{id}/password-reset", post(password_reset))
}

/// The user `id` after checking `action` on it.
async fn authorized_user(
    control: &ControlPlane,
    principal: &Principal,
    id: &str,
    action: Action,
) -> Result<UserView> {
    let what = format!("user {id:?}");
    let user_id = parse_id(id, "user")?;
    let user = control
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| ControlError::not_found(format!("{what} not found")))?;
    let target = Target {
        org_id: user.org_id,
        owner_user_id: Some(user.id),
    };
    control.authorize(principal, action, target, &what).await?;
    Ok(user)
}

async fn list_users(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<UserView>>> {
    if scope_of(&principal, Action::UserRead) == Scope::Own {
        return Ok(Json(vec![control.user(&principal).await?]));
    }
    let mut out = Vec::new();
    for org_id in control.orgs_in_scope(&principal, Action::UserRead).await? {
        out.extend(control.users(org_id).await?);
    }
    Ok(Json(out))
}

async fn create_user(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<Response> {
    let org_id = body.org_id.unwrap_or(principal.org_id);
    let target = Target {
        org_id,
        owner_user_id: None,
    };
    control
        .authorize(
            &principal,
            Action::UserManage,
            target,
            &format!("organization {org_id}"),
        )
        .await?;
    let user = control.create_user(org_id, &body).await?;
    Ok(created(format!("/api/v1/users/{}", user.id), user))
}

async fn get_user(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserView>> {
    Ok(Json(
        authorized_user(&control, &principal, &id, Action::UserRead).await?,
    ))
}

async fn user_tags(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<String>>> {
    let user = authorized_user(&control, &principal, &id, Action::UserRead).await?;
    Ok(Json(control.user_tags(user.id).await?))
}

async fn set_user_tags(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(tags): ApiJson<Vec<String>>,
) -> Result<Json<Vec<String>>> {
    let user = authorized_user(&control, &principal, &id, Action::UserManage).await?;
    Ok(Json(control.set_user_tags(user.id, &tags).await?))
}

#[derive(Debug, Deserialize)]
struct TransferTo {
    org_id: u32,
}

async fn transfer_user(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<TransferTo>,
) -> Result<Json<UserView>> {
    let user = authorized_user(&control, &principal, &id, Action::UserTransfer).await?;
    let target = Target {
        org_id: body.org_id,
        owner_user_id: None,
    };
    control
        .authorize(
            &principal,
            Action::UserTransfer,
            target,
            &format!("organization {}", body.org_id),
        )
        .await?;
    if user.id == principal.user_id {
        return Err(ControlError::validation(
            "you cannot transfer yourself; ask an admin above you",
        ));
    }
    Ok(Json(control.transfer_user(user.id, body.org_id).await?))
}

async fn password_reset(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let user = authorized_user(&control, &principal, &id, Action::UserManage).await?;
    let token: PasswordResetToken = control.issue_password_reset(user.id).await?;
    Ok(created(format!("/api/v1/users/{}", user.id), token))
}
