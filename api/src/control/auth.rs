//! Authentication: password login, bearer sessions, and the [`Principal`] extractor that every
//! authenticated `/api/v1` handler takes.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use super::ControlPlane;
use super::audit::AuditSlot;
use super::error::{ControlError, Result};
use super::permissions::Action;
use super::secrets;
use super::time::{now_ms, rfc3339};
use super::users::{UserRow, UserView};

/// Lifetime of a login session.
pub const SESSION_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// Role of a user within its organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in the organization, including users.
    Admin,
    /// Templates and devices of the organization.
    Staff,
    /// Devices of the organization (end user).
    User,
}

impl Role {
    /// Name stored in the database and shown in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Staff => "staff",
            Self::User => "user",
        }
    }

    /// Parses a stored role name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(Self::Admin),
            "staff" => Some(Self::Staff),
            "user" => Some(Self::User),
            _ => None,
        }
    }

    /// Whether the role may create and change templates (admin, staff).
    pub fn can_manage_templates(self) -> bool {
        matches!(self, Self::Admin | Self::Staff)
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: u32,
    pub org_id: u32,
    pub email: String,
    pub role: Role,
    /// Actions an API token is limited to; `None` for sessions and unscoped tokens.
    pub scopes: Option<Vec<Action>>,
}

/// Answer of a successful login.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer <token>`.
    pub token: String,
    /// RFC 3339 expiry of the token.
    pub expires_at: String,
    pub user: UserView,
}

#[derive(sqlx::FromRow)]
struct PrincipalRow {
    #[sqlx(try_from = "i64")]
    user_id: u32,
    #[sqlx(try_from = "i64")]
    org_id: u32,
    email: String,
    role: String,
    scopes: Option<String>,
}

impl ControlPlane {
    /// The enabled user with this e-mail and password; the same 401 in about the same time for
    /// an unknown e-mail, a wrong password and a disabled account.
    async fn check_password(&self, email: &str, password: &str) -> Result<UserRow> {
        let email = email.trim();
        let user = self.user_row_by_email(email).await?;
        let hash = match &user {
            Some(u) => u.password_hash.clone(),
            None => secrets::dummy_password_hash().to_owned(),
        };
        let password = password.to_owned();
        let matches =
            tokio::task::spawn_blocking(move || secrets::verify_password(&password, &hash))
                .await
                .map_err(|e| ControlError::internal(format!("password check task: {e}")))?;
        let user = match user {
            Some(user) if matches && !user.disabled => user,
            _ => {
                tracing::warn!(email, "login failed");
                return Err(ControlError::unauthorized("invalid e-mail or password"));
            }
        };

        Ok(user)
    }

    /// The caller behind credentials given outside HTTP (the PostgreSQL wire protocol): an
    /// e-mail with its password, or any user name with a bearer/API token as the password.
    /// Opens no session.
    pub async fn principal_for_credentials(&self, user: &str, secret: &str) -> Result<Principal> {
        if is_bearer_token_shaped(secret.trim()) {
            return self.authenticate(secret).await;
        }
        let user = self.check_password(user, secret).await?;
        let role = Role::parse(&user.role)
            .ok_or_else(|| ControlError::internal(format!("unknown role {:?}", user.role)))?;
        Ok(Principal {
            user_id: user.id,
            org_id: user.org_id,
            email: user.email,
            role,
            scopes: None,
        })
    }

    /// Checks an e-mail and password and opens a session. Unknown e-mail, wrong password and a
    /// disabled account all answer the same 401 in about the same time.
    pub async fn login(&self, email: &str, password: &str) -> Result<LoginResponse> {
        let user = self.check_password(email, password).await?;

        let token = secrets::bearer_token();
        let now = now_ms();
        let expires_at = now.saturating_add(SESSION_TTL_MS);
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND expires_at <= $2")
            .bind(i64::from(user.id))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, kind, created_at, expires_at)
             VALUES ($1, $2, 'session', $3, $4)",
        )
        .bind(i64::from(user.id))
        .bind(secrets::token_digest(&token)?)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(user_id = user.id, org_id = user.org_id, "user logged in");
        Ok(LoginResponse {
            token,
            expires_at: rfc3339(expires_at),
            user: user.view()?,
        })
    }

    /// The caller behind a bearer token; `Err(Unauthorized)` when the token is malformed,
    /// unknown, expired, or its user is disabled.
    pub async fn authenticate(&self, bearer_token: &str) -> Result<Principal> {
        let token = bearer_token.trim();
        if !is_bearer_token_shaped(token) {
            return Err(ControlError::unauthorized("invalid bearer token"));
        }
        let row: Option<PrincipalRow> = sqlx::query_as(
            "SELECT u.id AS user_id, u.org_id, u.email, u.role, t.scopes
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)
               AND u.disabled = 0",
        )
        .bind(secrets::token_digest(token)?)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        let row =
            row.ok_or_else(|| ControlError::unauthorized("invalid or expired bearer token"))?;
        let role = Role::parse(&row.role)
            .ok_or_else(|| ControlError::internal(format!("unknown role {:?}", row.role)))?;
        Ok(Principal {
            user_id: row.user_id,
            org_id: row.org_id,
            email: row.email,
            role,
            scopes: row.scopes.as_deref().map(parse_scopes),
        })
    }

    /// Ends the session of a bearer token (no error if it is already gone).
    pub async fn logout(&self, bearer_token: &str) -> Result<()> {
        let digest = secrets::token_digest(bearer_token.trim())?;
        sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user behind a principal, as shown by the API.
    pub async fn user(&self, principal: &Principal) -> Result<UserView> {
        let row: Option<UserRow> =
            sqlx::query_as("SELECT * FROM users WHERE id = $1 AND org_id = $2")
                .bind(i64::from(principal.user_id))
                .bind(i64::from(principal.org_id))
                .fetch_optional(&self.pool)
                .await?;
        row.ok_or_else(|| ControlError::not_found("user not found"))?
            .view()
    }
}

/// Actions of a stored scope list (a JSON array of action names); unknown names grant nothing.
fn parse_scopes(stored: &str) -> Vec<Action> {
    let names: Vec<String> = serde_json::from_str(stored).unwrap_or_default();
    names.iter().filter_map(|n| Action::from_name(n)).collect()
}

/// Bearer tokens are 64 lowercase hex characters; anything else is rejected before the database.
fn is_bearer_token_shaped(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_from_headers(headers: &HeaderMap) -> Result<&str> {
    let value = headers.get(AUTHORIZATION).ok_or_else(|| {
        ControlError::unauthorized("missing `Authorization: Bearer <token>` header")
    })?;
    let value = value
        .to_str()
        .map_err(|_| ControlError::unauthorized("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ControlError::unauthorized(
            "Authorization header must be `Bearer <token>`",
        )),
    }
}

impl<S> FromRequestParts<S> for Principal
where
    ControlPlane: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let token = bearer_from_headers(&parts.headers)?;
        let control = ControlPlane::from_ref(state);
        let principal = control.authenticate(token).await?;
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.fill(&principal, &control);
        }
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn parses_bearer_header() {
        let mut headers = HeaderMap::new();
        assert!(bearer_from_headers(&headers).is_err());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer_from_headers(&headers).unwrap(), "abc");
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer_from_headers(&headers).unwrap(), "abc");
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer_from_headers(&headers).is_err());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(bearer_from_headers(&headers).is_err());
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Admin, Role::Staff, Role::User] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(serde_json::to_string(&Role::Staff).unwrap(), "\"staff\"");
    }
}
