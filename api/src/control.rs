//! Control plane: organizations, users, sessions, templates and devices, kept in SQLite through
//! sqlx (migrations in `api/migrations/`, applied at open), served as the REST API under
//! `/api/v1` ([`routes`]).
//!
//! Every read and write of the API is scoped to the caller's organization ([`Principal`]).
//! The device side (ingest, device HTTP API) uses [`ControlPlane::device_by_token`] and
//! [`ControlPlane::datastreams`]. Errors answer `{"error": {"code", "message"}}`
//! ([`ControlError`]).
//!
//! Depends on no other pinhouse crate.

mod api_tokens;
mod auth;
mod db;
mod devices;
mod error;
mod extract;
mod orgs;
mod routes;
mod secrets;
mod templates;
mod time;
mod users;

#[cfg(test)]
mod tests;

use sqlx::sqlite::SqlitePool;

pub use api_tokens::{ApiTokenView, CreatedApiToken, MAX_API_TOKEN_DAYS, NewApiToken};
pub use auth::{LoginResponse, Principal, Role, SESSION_TTL_MS};
pub use devices::{DeviceRecord, NewDevice};
pub use error::{ApiError, ControlError, Result};
pub use extract::{ApiJson, ApiPath};
pub use orgs::{DEFAULT_ADMIN_EMAIL, DEFAULT_ORG_NAME, Organization};
pub use routes::{method_not_allowed, not_found, routes};
pub use secrets::DEVICE_TOKEN_LEN;
pub use templates::{DATASTREAM_KINDS, Datastream, NewDatastream, NewTemplate, Template};
pub use users::{MIN_PASSWORD_LEN, NewUser, UserView};

/// Handle on the control plane; cheap to clone (a connection pool inside).
#[derive(Clone)]
pub struct ControlPlane {
    pool: SqlitePool,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Connects to `database_url` (e.g. `sqlite://./pinhouse-data/control.db?mode=rwc`, or
    /// `sqlite::memory:` for tests), turns on WAL and foreign keys, and applies migrations.
    pub async fn open(database_url: &str) -> Result<ControlPlane> {
        Ok(ControlPlane {
            pool: db::open(database_url).await?,
        })
    }

    /// The connection pool, for code that needs a query of its own.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool, waiting for connections in use (clean shutdown, WAL checkpoint).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
