//! Organizations (tenants), a tree through `parent_id`, and the first-start bootstrap that
//! creates the root organization with its admin.

use crate::control::Narrow;
use serde::Serialize;

use super::ControlPlane;
use super::auth::Role;
use super::error::{ControlError, Result};
use super::secrets;
use super::time::{now_ms, rfc3339};
use super::users::validate_email;

/// E-mail of the first admin when `PINHOUSE_ADMIN_EMAIL` is not given.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@pinhouse.local";

/// Longest telemetry retention an organization can set, in days (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Name of the root organization created at first start.
pub const DEFAULT_ORG_NAME: &str = "pinhouse";

/// An organization as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Organization {
    #[sqlx(try_from = "i64")]
    pub id: u32,
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub parent_id: Option<u32>,
    pub name: String,
    /// Days of telemetry the organization keeps; `null`: the server's default
    /// (`--retention-days`, by default forever).
    #[sqlx(try_from = "crate::control::NullableInt")]
    pub retention_days: Option<u32>,
    /// Unix ms in the database, RFC 3339 in JSON.
    #[serde(serialize_with = "serialize_ms")]
    #[schema(value_type = String)]
    pub created_at: i64,
}

fn serialize_ms<S: serde::Serializer>(ms: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

/// An organization's retention is 1 to [`MAX_RETENTION_DAYS`] days, or `None` (the default).
pub fn check_retention_days(retention_days: Option<u32>) -> Result<()> {
    match retention_days {
        Some(days) if !(1..=MAX_RETENTION_DAYS).contains(&days) => {
            Err(ControlError::validation(format!(
                "retention_days must be between 1 and {MAX_RETENTION_DAYS} (or null for the server's default), not {days}"
            )))
        }
        _ => Ok(()),
    }
}

impl ControlPlane {
    /// Creates an organization, under `parent_id` if given.
    pub async fn create_organization(
        &self,
        name: &str,
        parent_id: Option<u32>,
    ) -> Result<Organization> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ControlError::validation(
                "organization name must not be empty",
            ));
        }
        let org: Organization = sqlx::query_as(
            "INSERT INTO organizations (parent_id, name, created_at) VALUES ($1, $2, $3) RETURNING *",
        )
        .bind(parent_id.map(i64::from))
        .bind(name)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                ControlError::not_found("parent organization not found")
            }
            _ => ControlError::from(e),
        })?;
        tracing::info!(org_id = org.id, ?parent_id, "organization created");
        Ok(org)
    }

    /// Renames organization `org_id`.
    pub async fn rename_organization(&self, org_id: u32, name: &str) -> Result<Organization> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ControlError::validation(
                "organization name must not be empty",
            ));
        }
        sqlx::query_as("UPDATE organizations SET name = $1 WHERE id = $2 RETURNING *")
            .bind(name)
            .bind(i64::from(org_id))
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| ControlError::not_found(format!("organization {org_id} not found")))
    }

    /// Sets (or with `None` clears) the telemetry retention of organization `org_id`, in
    /// days (1 to 36,500); the store applies it within moments.
    pub async fn set_organization_retention(
        &self,
        org_id: u32,
        retention_days: Option<u32>,
    ) -> Result<Organization> {
        check_retention_days(retention_days)?;
        let org: Organization = sqlx::query_as(
            "UPDATE organizations SET retention_days = $1 WHERE id = $2 RETURNING *",
        )
        .bind(retention_days.map(i64::from))
        .bind(i64::from(org_id))
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| ControlError::not_found(format!("organization {org_id} not found")))?;
        tracing::info!(org_id, ?retention_days, "organization retention set");
        self.signals.retention_changed.notify_one();
        Ok(org)
    }

    /// `(org_id, days)` of every organization with a retention of its own.
    pub async fn retention_settings(&self) -> Result<Vec<(u32, u32)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, retention_days FROM organizations WHERE retention_days IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(super::db::u32_pairs(rows))
    }

    /// The organization `org_id`.
    pub async fn organization(&self, org_id: u32) -> Result<Option<Organization>> {
        Ok(sqlx::query_as("SELECT * FROM organizations WHERE id = $1")
            .bind(i64::from(org_id))
            .fetch_optional(&self.pool)
            .await?)
    }

    /// `root` and every organization below it, by id.
    pub async fn organization_subtree(&self, root: u32) -> Result<Vec<Organization>> {
        Ok(sqlx::query_as(
            "WITH RECURSIVE subtree(id) AS (
                 SELECT id FROM organizations WHERE id = $1
                 UNION ALL
                 SELECT o.id FROM organizations o JOIN subtree s ON o.parent_id = s.id
             )
             SELECT o.* FROM organizations o JOIN subtree s ON s.id = o.id ORDER BY o.id",
        )
        .bind(i64::from(root))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether `org_id` is `root` or lies below it.
    pub async fn org_is_within(&self, root: u32, org_id: u32) -> Result<bool> {
        if root == org_id {
            return Ok(true);
        }
        Ok(sqlx::query_scalar::<_, i64>(
            "WITH RECURSIVE ancestors(id) AS (
                 SELECT parent_id FROM organizations WHERE id = $1
                 UNION ALL
                 SELECT o.parent_id FROM organizations o JOIN ancestors a ON o.id = a.id
             )
             SELECT CASE WHEN EXISTS (SELECT 1 FROM ancestors WHERE id = $2) THEN 1 ELSE 0 END",
        )
        .bind(i64::from(org_id))
        .bind(i64::from(root))
        .fetch_one(&self.pool)
        .await?
            != 0)
    }

    /// On an empty database, creates the root organization and its admin user from
    /// `admin_email` (default [`DEFAULT_ADMIN_EMAIL`]) and `admin_password`. Without a password
    /// (or with an empty one) it generates one and returns it — the only time it is ever shown,
    /// so the caller should log it once. Does nothing and returns `None` when an organization
    /// exists already (a later change of the variables does not touch existing accounts).
    pub async fn bootstrap(
        &self,
        admin_email: Option<&str>,
        admin_password: Option<&str>,
    ) -> Result<Option<String>> {
        let initialized: bool = sqlx::query_scalar::<_, i64>(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM organizations) THEN 1 ELSE 0 END",
        )
        .fetch_one(&self.pool)
        .await?
            != 0;
        if initialized {
            tracing::debug!("control plane already initialized, bootstrap skipped");
            return Ok(None);
        }
        let email = admin_email
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .unwrap_or(DEFAULT_ADMIN_EMAIL)
            .to_owned();
        validate_email(&email)?;
        let (password, generated) = match admin_password.filter(|p| !p.is_empty()) {
            Some(p) => (p.to_owned(), None),
            None => {
                let p = secrets::generated_password();
                (p.clone(), Some(p))
            }
        };
        let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
            .await
            .map_err(|e| ControlError::internal(format!("password hash task: {e}")))??;

        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // Conditional insert: of two servers starting at once on one database, one wins.
        let org_id: Option<u32> = sqlx::query_scalar::<_, i64>(
            "INSERT INTO organizations (name, created_at)
             SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM organizations) RETURNING id",
        )
        .bind(DEFAULT_ORG_NAME)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .narrow()?;
        let Some(org_id) = org_id else {
            return Ok(None);
        };
        let user_id: u32 = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (org_id, email, name, password_hash, role, created_at)
             VALUES ($1, $2, 'Administrator', $3, $4, $5) RETURNING id",
        )
        .bind(i64::from(org_id))
        .bind(&email)
        .bind(hash)
        .bind(Role::Admin.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .narrow()?;
        tx.commit().await?;
        tracing::info!(
            org_id,
            user_id,
            email,
            generated_password = generated.is_some(),
            "control plane initialized: first organization and admin created"
        );
        Ok(generated)
    }
}
