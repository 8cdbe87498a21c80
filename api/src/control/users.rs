//! Users of an organization: creation with an argon2id password hash, lookup.

use serde::{Deserialize, Serialize};

use super::ControlPlane;
use super::auth::Role;
use super::error::{ControlError, Result};
use super::secrets;
use super::time::{now_ms, rfc3339};

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: u32,
    pub org_id: u32,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// RFC 3339.
    pub created_at: String,
}

/// A row of `users`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    #[sqlx(try_from = "i64")]
    pub id: u32,
    #[sqlx(try_from = "i64")]
    pub org_id: u32,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: String,
    #[sqlx(try_from = "crate::control::Flag")]
    pub disabled: bool,
    pub created_at: i64,
}

impl UserRow {
    pub fn view(self) -> Result<UserView> {
        let role = Role::parse(&self.role)
            .ok_or_else(|| ControlError::internal(format!("unknown role {:?}", self.role)))?;
        Ok(UserView {
            id: self.id,
            org_id: self.org_id,
            email: self.email,
            name: self.name,
            role,
            created_at: rfc3339(self.created_at),
        })
    }
}

/// Checks the shape of an e-mail address: something, one `@`, something, no spaces.
pub(crate) fn validate_email(email: &str) -> Result<()> {
    let ok = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
                && email.len() <= 254
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ControlError::validation(format!(
            "invalid e-mail address {email:?}"
        )))
    }
}

/// Shortest password accepted for users created through the API.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Body of `POST /api/v1/users`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub role: Role,
    #[serde(default)]
    pub name: String,
    /// Organization of the new user: the caller's own (default) or one below it.
    #[serde(default)]
    pub org_id: Option<u32>,
}

impl ControlPlane {
    /// Creates a user in `org_id`. E-mails are unique across the installation, compared without
    /// case; a duplicate answers 409. Passwords need [`MIN_PASSWORD_LEN`] characters.
    pub async fn create_user(&self, org_id: u32, new: &NewUser) -> Result<UserView> {
        let email = new.email.trim();
        validate_email(email)?;
        if new.password.chars().count() < MIN_PASSWORD_LEN {
            return Err(ControlError::validation(format!(
                "password must have at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        let password = new.password.clone();
        let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
            .await
            .map_err(|e| ControlError::internal(format!("password hash task: {e}")))??;
        let row: UserRow = sqlx::query_as(
            "INSERT INTO users (org_id, email, name, password_hash, role, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(i64::from(org_id))
        .bind(email)
        .bind(new.name.trim())
        .bind(hash)
        .bind(new.role.as_str())
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                ControlError::conflict(format!("a user with e-mail {email:?} already exists"))
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                ControlError::not_found(format!("organization {org_id} not found"))
            }
            _ => ControlError::from(e),
        })?;
        tracing::info!(
            user_id = row.id,
            org_id,
            role = new.role.as_str(),
            "user created"
        );
        row.view()
    }

    /// The users of `org_id`, by id.
    pub async fn users(&self, org_id: u32) -> Result<Vec<UserView>> {
        let rows: Vec<UserRow> =
            sqlx::query_as("SELECT * FROM users WHERE org_id = $1 ORDER BY id")
                .bind(i64::from(org_id))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(UserRow::view).collect()
    }

    /// The user `user_id`, whatever its organization (callers check visibility).
    pub async fn user_by_id(&self, user_id: u32) -> Result<Option<UserView>> {
        let row: Option<UserRow> = sqlx::query_as("SELECT * FROM users WHERE id = $1")
            .bind(i64::from(user_id))
            .fetch_optional(&self.pool)
            .await?;
        row.map(UserRow::view).transpose()
    }

    pub(crate) async fn user_row_by_email(&self, email: &str) -> Result<Option<UserRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM users WHERE lower(email) = lower($1)")
                .bind(email)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_shapes() {
        assert!(validate_email("a@b").is_ok());
        assert!(validate_email("admin@example.com").is_ok());
        for bad in ["", "a", "@b", "a@", "a@b@c", "a b@c"] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
