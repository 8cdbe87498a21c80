//! `/api/v1/users`: users, their tags, transfer and password reset.

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
use crate::control::password_reset::PasswordResetToken;
use crate::control::permissions::{Action, Scope, Target, scope_of};
use crate::control::users::{NewUser, UserView};

pub(super) fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user))
        .routes(routes!(user_tags, set_user_tags))
        .routes(routes!(transfer_user))
        .routes(routes!(password_reset))
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

/// Users the caller may read (only itself for roles that read their own user only).
#[utoipa::path(
    get, path = "/api/v1/users", tag = "users",
    responses(
        (status = 200, description = "OK", body = Vec<UserView>),
        (status = 403, description = "Forbidden", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
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

/// Create a user in the caller's organization or one below it.
#[utoipa::path(
    post, path = "/api/v1/users", tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created; `Location` names it", body = UserView),
        (status = 400, description = "Bad e-mail, short password, or malformed body", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Organization not found", body = ErrorBody),
        (status = 409, description = "A user with this e-mail exists", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
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

/// One user.
#[utoipa::path(
    get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = u32, Path, description = "User id")),
    responses(
        (status = 200, description = "OK", body = UserView),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_user(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserView>> {
    Ok(Json(
        authorized_user(&control, &principal, &id, Action::UserRead).await?,
    ))
}

/// A user's tags.
#[utoipa::path(
    get, path = "/api/v1/users/{id}/tags", tag = "users",
    params(("id" = u32, Path, description = "User id")),
    responses(
        (status = 200, description = "OK", body = Vec<String>),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn user_tags(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<String>>> {
    let user = authorized_user(&control, &principal, &id, Action::UserRead).await?;
    Ok(Json(control.user_tags(user.id).await?))
}

/// Replace a user's tags; answers them normalized.
#[utoipa::path(
    put, path = "/api/v1/users/{id}/tags", tag = "users",
    params(("id" = u32, Path, description = "User id")),
    request_body(content = Vec<String>, description = "The new tags, e.g. `[\"a\", \"b\"]`"),
    responses(
        (status = 200, description = "OK", body = Vec<String>),
        (status = 400, description = "Too many or too long tags", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn set_user_tags(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(tags): ApiJson<Vec<String>>,
) -> Result<Json<Vec<String>>> {
    let user = authorized_user(&control, &principal, &id, Action::UserManage).await?;
    Ok(Json(control.set_user_tags(user.id, &tags).await?))
}

/// Body of `POST /api/v1/users/{id}/transfer`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct TransferTo {
    /// Organization the user moves to.
    org_id: u32,
}

/// Move a user to another organization the caller manages.
#[utoipa::path(
    post, path = "/api/v1/users/{id}/transfer", tag = "users",
    params(("id" = u32, Path, description = "User id")),
    request_body = TransferTo,
    responses(
        (status = 200, description = "Transferred", body = UserView),
        (status = 400, description = "Transferring oneself, or malformed body", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "User or organization not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
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

/// Issue a password reset token for a user (earlier unused ones stop working); the user sets
/// a new password with it at `POST /api/v1/auth/password-reset`.
#[utoipa::path(
    post, path = "/api/v1/users/{id}/password-reset", tag = "users",
    params(("id" = u32, Path, description = "User id")),
    responses(
        (status = 201, description = "Issued; the token is shown once", body = PasswordResetToken),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn password_reset(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let user = authorized_user(&control, &principal, &id, Action::UserManage).await?;
    let token: PasswordResetToken = control.issue_password_reset(user.id).await?;
    Ok(created(format!("/api/v1/users/{}", user.id), token))
}
