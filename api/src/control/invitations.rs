//! Invitations: an admin or staff member invites an e-mail address into an organization with a
//! role; the invitee accepts with the secret token (sent to them by the inviter or by e-mail),
//! choosing a password, which creates the user.

use crate::control::Narrow;
use serde::{Deserialize, Serialize};

use super::ControlPlane;
use super::auth::Role;
use super::error::{ControlError, Result};
use super::secrets;
use super::time::{now_ms, rfc3339};
use super::users::{NewUser, UserView, validate_email};

/// How long an invitation can be accepted.
pub const INVITATION_TTL_MS: i64 = 7 * 86_400_000;

/// Body of `POST /api/v1/invitations`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewInvitation {
    pub email: String,
    pub role: Role,
    /// Organization to join: the caller's own (default) or one below it.
    #[serde(default)]
    pub org_id: Option<u32>,
}

/// An invitation as listed (never its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Invitation {
    #[sqlx(try_from = "i64")]
    pub id: u32,
    #[sqlx(try_from = "i64")]
    pub org_id: u32,
    pub email: String,
    /// `admin`, `staff` or `user`.
    pub role: String,
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub invited_by_user_id: Option<u32>,
    #[sqlx(skip)]
    pub created_at: String,
    #[sqlx(skip)]
    pub expires_at: String,
}

#[derive(sqlx::FromRow)]
struct InvitationRow {
    #[sqlx(flatten)]
    invitation: Invitation,
    created_at: i64,
    expires_at: i64,
}

impl From<InvitationRow> for Invitation {
    fn from(row: InvitationRow) -> Self {
        Invitation {
            created_at: rfc3339(row.created_at),
            expires_at: rfc3339(row.expires_at),
            ..row.invitation
        }
    }
}

/// Answer of an invitation: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedInvitation {
    #[serde(flatten)]
    pub invitation: Invitation,
    /// Secret to accept the invitation with (`POST /api/v1/invitations/accept`).
    pub token: String,
}

/// Body of `POST /api/v1/invitations/accept`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct AcceptInvitation {
    pub token: String,
    pub password: String,
    #[serde(default)]
    pub name: String,
}

const COLUMNS: &str = "id, org_id, email, role, invited_by_user_id, created_at, expires_at";

impl ControlPlane {
    /// Creates an invitation into `org_id` (the caller checked it may invite there).
    pub async fn create_invitation(
        &self,
        org_id: u32,
        invited_by: u32,
        new: &NewInvitation,
    ) -> Result<CreatedInvitation> {
        let email = new.email.trim();
        validate_email(email)?;
        if self.user_row_by_email(email).await?.is_some() {
            return Err(ControlError::conflict(format!(
                "a user with e-mail {email:?} already exists"
            )));
        }
        let token = secrets::bearer_token();
        let now = now_ms();
        let row: InvitationRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO invitations (org_id, email, role, token_hash, invited_by_user_id,
                 created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        )))
        .bind(i64::from(org_id))
        .bind(email)
        .bind(new.role.as_str())
        .bind(secrets::token_digest(&token)?)
        .bind(i64::from(invited_by))
        .bind(now)
        .bind(now.saturating_add(INVITATION_TTL_MS))
        .fetch_one(&self.pool)
        .await?;
        tracing::info!(org_id, invited_by, "invitation created");
        Ok(CreatedInvitation {
            invitation: row.into(),
            token,
        })
    }

    /// Open (not accepted, not expired) invitations of the given organizations.
    pub async fn invitations(&self, org_ids: &[u32]) -> Result<Vec<Invitation>> {
        let ids =
            serde_json::to_string(org_ids).map_err(|e| ControlError::internal(e.to_string()))?;
        let rows: Vec<InvitationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM invitations
             WHERE org_id IN ({}) AND accepted_at IS NULL
               AND expires_at > $2 ORDER BY id",
            self.backend.json_ids("$1")
        )))
        .bind(ids)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Invitation::from).collect())
    }

    /// The organization of an open invitation (for the permission check before revoking).
    pub async fn invitation_org(&self, id: u32) -> Result<Option<u32>> {
        sqlx::query_scalar::<_, i64>(
            "SELECT org_id FROM invitations WHERE id = $1 AND accepted_at IS NULL",
        )
        .bind(i64::from(id))
        .fetch_optional(&self.pool)
        .await?
        .narrow()
    }

    /// Deletes an open invitation; `false` if there is none.
    pub async fn revoke_invitation(&self, id: u32) -> Result<bool> {
        let done = sqlx::query("DELETE FROM invitations WHERE id = $1 AND accepted_at IS NULL")
            .bind(i64::from(id))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Accepts an invitation: creates the user with the invited e-mail, role and organization.
    /// Unknown, used and expired tokens all answer 404.
    pub async fn accept_invitation(&self, accept: &AcceptInvitation) -> Result<UserView> {
        let gone = || ControlError::not_found("invitation not found, used or expired");
        let digest = secrets::token_digest(accept.token.trim()).map_err(|_| gone())?;
        let row: Option<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT id, org_id, email, role FROM invitations
             WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2",
        )
        .bind(&digest)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        let (id, org_id, email, role) = row.ok_or_else(gone)?;
        let (id, org_id): (u32, u32) = (id.narrow()?, org_id.narrow()?);
        let role = Role::parse(&role).ok_or_else(|| ControlError::internal("bad stored role"))?;
        let user = self
            .create_user(
                org_id,
                &NewUser {
                    email,
                    password: accept.password.clone(),
                    role,
                    name: accept.name.clone(),
                    org_id: None,
                },
            )
            .await?;
        let done = sqlx::query(
            "UPDATE invitations SET accepted_at = $1, accepted_user_id = $2
             WHERE id = $3 AND accepted_at IS NULL",
        )
        .bind(now_ms())
        .bind(i64::from(user.id))
        .bind(i64::from(id))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            // Accepted twice at once: the e-mail's uniqueness already let only one user in.
            return Err(gone());
        }
        tracing::info!(user_id = user.id, org_id, "invitation accepted");
        Ok(user)
    }
}
