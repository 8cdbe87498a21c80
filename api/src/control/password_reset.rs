//! Password reset: a one-time token, valid for an hour, that sets a new password and ends every
//! session and API token of the user. Issued by an admin for a user (`user.manage`); the token is
//! shown once to be passed on to the user.

use crate::control::Narrow;
use serde::{Deserialize, Serialize};

use super::ControlPlane;
use super::error::{ControlError, Result};
use super::secrets;
use super::time::{now_ms, rfc3339};
use super::users::MIN_PASSWORD_LEN;

/// Lifetime of a reset token.
pub const PASSWORD_RESET_TTL_MS: i64 = 3_600_000;

/// Answer of `POST /api/v1/users/{id}/password-reset`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PasswordResetToken {
    pub user_id: u32,
    /// Secret for `POST /api/v1/auth/password-reset`, shown once.
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// Body of `POST /api/v1/auth/password-reset`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ResetPassword {
    pub token: String,
    pub password: String,
}

impl ControlPlane {
    /// Issues a reset token for `user_id` (earlier unused ones stop working).
    pub async fn issue_password_reset(&self, user_id: u32) -> Result<PasswordResetToken> {
        let token = secrets::bearer_token();
        let now = now_ms();
        let expires_at = now.saturating_add(PASSWORD_RESET_TTL_MS);
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM password_resets WHERE user_id = $1")
            .bind(i64::from(user_id))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(secrets::token_digest(&token)?)
        .bind(i64::from(user_id))
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(user_id, "password reset token issued");
        Ok(PasswordResetToken {
            user_id,
            token,
            expires_at: rfc3339(expires_at),
        })
    }

    /// Sets a new password with a reset token; the token is used up and every session and API
    /// token of the user is revoked. Unknown, used and expired tokens answer 404.
    pub async fn reset_password(&self, reset: &ResetPassword) -> Result<()> {
        let gone = || ControlError::not_found("reset token not found, used or expired");
        if reset.password.chars().count() < MIN_PASSWORD_LEN {
            return Err(ControlError::validation(format!(
                "password must have at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        let digest = secrets::token_digest(reset.token.trim()).map_err(|_| gone())?;
        let password = reset.password.clone();
        let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
            .await
            .map_err(|e| ControlError::internal(format!("password hash task: {e}")))??;
        let mut tx = self.begin_write().await?;
        let user_id: Option<u32> = sqlx::query_scalar::<_, i64>(
            "UPDATE password_resets SET used_at = $1
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
        )
        .bind(now_ms())
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?
        .narrow()?;
        let user_id = user_id.ok_or_else(gone)?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(i64::from(user_id))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
            .bind(i64::from(user_id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(user_id, "password reset");
        Ok(())
    }
}
