//! `/api/v1/invitations`: invite an e-mail into an organization, accept, revoke.

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{created, parse_id};
use crate::control::ControlPlane;
use crate::control::auth::{Principal, Role};
use crate::control::error::{ControlError, ErrorBody, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::invitations::{AcceptInvitation, CreatedInvitation, Invitation, NewInvitation};
use crate::control::permissions::{Action, Target};
use crate::control::users::UserView;

pub(super) fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(list_invitations, create_invitation))
        .routes(routes!(accept_invitation))
        .routes(routes!(revoke_invitation))
}

/// Open invitations of the organizations the caller may invite into (never their secrets).
#[utoipa::path(
    get, path = "/api/v1/invitations", tag = "invitations",
    responses(
        (status = 200, description = "OK", body = Vec<Invitation>),
        (status = 403, description = "Forbidden", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_invitations(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<Invitation>>> {
    let orgs = control
        .orgs_in_scope(&principal, Action::UserInvite)
        .await?;
    Ok(Json(control.invitations(&orgs).await?))
}

/// Invite an e-mail into the caller's organization or one below it; inviting admins or staff
/// needs `user.manage` too. The answer carries the `token` to accept it with (shown once).
#[utoipa::path(
    post, path = "/api/v1/invitations", tag = "invitations",
    request_body = NewInvitation,
    responses(
        (status = 201, description = "Created; `Location` names it", body = CreatedInvitation),
        (status = 400, description = "Bad e-mail, or malformed body", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Organization not found", body = ErrorBody),
        (status = 409, description = "A user with this e-mail exists", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_invitation(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewInvitation>,
) -> Result<Response> {
    let org_id = body.org_id.unwrap_or(principal.org_id);
    let target = Target {
        org_id,
        owner_user_id: None,
    };
    let what = format!("organization {org_id}");
    control
        .authorize(&principal, Action::UserInvite, target, &what)
        .await?;
    if body.role != Role::User {
        // Inviting admins and staff hands out management rights: user.manage as well.
        control
            .authorize(&principal, Action::UserManage, target, &what)
            .await?;
    }
    let invitation = control
        .create_invitation(org_id, principal.user_id, &body)
        .await?;
    Ok(created(
        format!("/api/v1/invitations/{}", invitation.invitation.id),
        invitation,
    ))
}

/// Revoke an open invitation.
#[utoipa::path(
    delete, path = "/api/v1/invitations/{id}", tag = "invitations",
    params(("id" = u32, Path, description = "Invitation id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn revoke_invitation(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let what = format!("invitation {id:?}");
    let invitation_id = parse_id(&id, "invitation")?;
    let org_id = control
        .invitation_org(invitation_id)
        .await?
        .ok_or_else(|| ControlError::not_found(format!("{what} not found")))?;
    let target = Target {
        org_id,
        owner_user_id: None,
    };
    control
        .authorize(&principal, Action::UserInvite, target, &what)
        .await?;
    control.revoke_invitation(invitation_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation with its token: creates the user (no bearer token needed).
#[utoipa::path(
    post, path = "/api/v1/invitations/accept", tag = "invitations",
    request_body = AcceptInvitation,
    responses(
        (status = 201, description = "User created; `Location` names it", body = UserView),
        (status = 400, description = "Short password, or malformed body", body = ErrorBody),
        (status = 404, description = "Unknown, used or expired invitation", body = ErrorBody),
        (status = 409, description = "A user with this e-mail exists", body = ErrorBody),
    ),
)]
async fn accept_invitation(
    State(control): State<ControlPlane>,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> Result<Response> {
    let user = control.accept_invitation(&body).await?;
    Ok(created(format!("/api/v1/users/{}", user.id), user))
}
