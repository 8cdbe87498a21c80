//! `/api/v1/invitations`: invite an e-mail into an organization, accept, revoke.

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use super::{created, parse_id};
use crate::control::ControlPlane;
use crate::control::auth::{Principal, Role};
use crate::control::error::{ControlError, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::invitations::{AcceptInvitation, Invitation, NewInvitation};
use crate::control::permissions::{Action, Target};

pub(super) fn routes<S>() -> Router<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/api/v1/invitations",
            get(list_invitations).post(create_invitation),
        )
        .route("/api/v1/invitations/accept", post(accept_invitation))
        .route("/api/v1/invitations/{id}", delete(revoke_invitation))
}

async fn list_invitations(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<Invitation>>> {
    let orgs = control
        .orgs_in_scope(&principal, Action::UserInvite)
        .await?;
    Ok(Json(control.invitations(&orgs).await?))
}

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

async fn accept_invitation(
    State(control): State<ControlPlane>,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> Result<Response> {
    let user = control.accept_invitation(&body).await?;
    Ok(created(format!("/api/v1/users/{}", user.id), user))
}
