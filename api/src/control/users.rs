//! Users of an organization: creation with an argon2id password hash, lookup.

use serde::Serialize;

use super::ControlPlane;
use super::auth::Role;
use super::error::{ControlError, Result};
use super::secrets;
use super::time::{now_ms, rfc3339};

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize)]
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
    pub id: u32,
    pub org_id: u32,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: String,
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

impl ControlPlane {
    /// Creates a user in `org_id`. E-mails are unique across the installation, compared without
    /// case; a duplicate answers 409.
    pub async fn create_user(
        &self,
        org_id: u32,
        email: &str,
        password: &str,
        role: Role,
    ) -> Result<UserView> {
        let email = email.trim();
        validate_email(email)?;
        if password.is_empty() {
            return Err(ControlError::validation("password must not be empty"));
        }
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
            .await
            .map_err(|e| ControlError::internal(format!("password hash task: {e}")))??;
        let row: UserRow = sqlx::query_as(
            "INSERT INTO users (org_id, email, password_hash, role, created_at)
             VALUES (?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(org_id)
        .bind(email)
        .bind(hash)
        .bind(role.as_str())
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
            role = role.as_str(),
            "user created"
        );
        row.view()
    }

    pub(crate) async fn user_row_by_email(&self, email: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as("SELECT * FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?)
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
