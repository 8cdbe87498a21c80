//! Long-lived API tokens of a user, for scripts and tools: same bearer form as login sessions,
//! named, optional expiry, listed without their secret, revocable.

use serde::{Deserialize, Serialize};

use super::ControlPlane;
use super::auth::Principal;
use super::error::{ControlError, Result};
use super::permissions::{Action, Scope, scope_of};
use super::secrets;
use super::time::{now_ms, rfc3339};

/// Longest lifetime that may be asked for an API token (10 years).
pub const MAX_API_TOKEN_DAYS: u32 = 3650;

/// Body of `POST /api/v1/auth/tokens`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewApiToken {
    pub name: String,
    /// Lifetime in days; none = the token never expires.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// Action names (`docs/permissions.md`) the token is limited to; none = everything the
    /// user's role allows. Each must be allowed to the user's role.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// An API token as listed (never the secret itself).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiTokenView {
    pub id: u32,
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, or null for a token that never expires.
    pub expires_at: Option<String>,
    /// Actions the token is limited to; null = everything the user's role allows.
    pub scopes: Option<Vec<String>>,
}

/// Answer of a token creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedApiToken {
    #[serde(flatten)]
    pub info: ApiTokenView,
    /// Bearer token for `Authorization: Bearer <token>`.
    pub token: String,
}

#[derive(sqlx::FromRow)]
struct ApiTokenRow {
    #[sqlx(try_from = "i64")]
    id: u32,
    name: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    scopes: Option<String>,
}

impl From<ApiTokenRow> for ApiTokenView {
    fn from(row: ApiTokenRow) -> Self {
        Self {
            id: row.id,
            name: row.name.unwrap_or_default(),
            created_at: rfc3339(row.created_at),
            expires_at: row.expires_at.map(rfc3339),
            scopes: row
                .scopes
                .as_deref()
                .map(|s| serde_json::from_str(s).unwrap_or_default()),
        }
    }
}

/// Checks requested scopes (known action names the caller's role allows, at least one) and
/// returns them as the stored JSON array.
fn validate_scopes(principal: &Principal, names: &[String]) -> Result<String> {
    if names.is_empty() {
        return Err(ControlError::validation(
            "scopes must name at least one action (or be left out for all)",
        ));
    }
    let mut actions = Vec::with_capacity(names.len());
    for name in names {
        let action = Action::from_name(name.trim()).ok_or_else(|| {
            ControlError::validation(format!(
                "unknown scope {name:?}: scopes are action names of docs/permissions.md"
            ))
        })?;
        if scope_of(principal, action) == Scope::Never {
            return Err(ControlError::validation(format!(
                "scope {name:?} is not allowed to your role or token"
            )));
        }
        if !actions.contains(&action.rule().name) {
            actions.push(action.rule().name);
        }
    }
    serde_json::to_string(&actions).map_err(|e| ControlError::internal(e.to_string()))
}

impl ControlPlane {
    /// Creates an API token for the caller.
    pub async fn create_api_token(
        &self,
        principal: &Principal,
        new: &NewApiToken,
    ) -> Result<CreatedApiToken> {
        let name = new.name.trim();
        if name.is_empty() {
            return Err(ControlError::validation("token name must not be empty"));
        }
        let expires_at = match new.expires_in_days {
            None => None,
            Some(days) if (1..=MAX_API_TOKEN_DAYS).contains(&days) => {
                Some(now_ms().saturating_add(i64::from(days) * 86_400_000))
            }
            Some(days) => {
                return Err(ControlError::validation(format!(
                    "expires_in_days: {days} is out of range 1–{MAX_API_TOKEN_DAYS}"
                )));
            }
        };
        let scopes = match &new.scopes {
            None => None,
            Some(names) => Some(validate_scopes(principal, names)?),
        };
        let token = secrets::bearer_token();
        let row: ApiTokenRow = sqlx::query_as(
            "INSERT INTO api_tokens (user_id, token_hash, kind, name, created_at, expires_at, scopes)
             VALUES ($1, $2, 'api', $3, $4, $5, $6) RETURNING id, name, created_at, expires_at, scopes",
        )
        .bind(i64::from(principal.user_id))
        .bind(secrets::token_digest(&token)?)
        .bind(name)
        .bind(now_ms())
        .bind(expires_at)
        .bind(scopes)
        .fetch_one(&self.pool)
        .await?;
        tracing::info!(
            token_id = row.id,
            user_id = principal.user_id,
            "API token created"
        );
        Ok(CreatedApiToken {
            info: row.into(),
            token,
        })
    }

    /// The caller's API tokens (not its login sessions), by id.
    pub async fn api_tokens(&self, principal: &Principal) -> Result<Vec<ApiTokenView>> {
        let rows: Vec<ApiTokenRow> = sqlx::query_as(
            "SELECT id, name, created_at, expires_at, scopes FROM api_tokens
             WHERE user_id = $1 AND kind = 'api' ORDER BY id",
        )
        .bind(i64::from(principal.user_id))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ApiTokenView::from).collect())
    }

    /// Revokes one of the caller's API tokens; `false` if it has no such token.
    pub async fn revoke_api_token(&self, principal: &Principal, token_id: u32) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2 AND kind = 'api'")
                .bind(i64::from(token_id))
                .bind(i64::from(principal.user_id))
                .execute(&self.pool)
                .await?;
        let revoked = done.rows_affected() > 0;
        if revoked {
            tracing::info!(token_id, user_id = principal.user_id, "API token revoked");
        }
        Ok(revoked)
    }

    /// Deletes every expired session and API token; returns how many. For a periodic task.
    pub async fn purge_expired_tokens(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() > 0 {
            tracing::info!(
                purged = done.rows_affected(),
                "expired bearer tokens purged"
            );
        }
        Ok(done.rows_affected())
    }
}
