//! Control plane: organizations, users, sessions, templates and devices, kept in SQLite through
//! sqlx (migrations in `api/migrations/`, applied at open), served as the REST API under
//! `/api/v1` ([`routes`]).
//!
//! Every read and write of the API is scoped to the caller's organization ([`Principal`]).
//! The device side (ingest, device HTTP API) uses [`ControlPlane::device_by_token`],
//! [`ControlPlane::datastreams`], and reports runtime state back:
//! [`ControlPlane::device_online`] / [`ControlPlane::device_offline`] /
//! [`ControlPlane::device_seen`], [`ControlPlane::record_device_info`],
//! [`ControlPlane::log_device_event`] / [`ControlPlane::resolve_device_event`],
//! [`ControlPlane::set_device_property`]. Errors answer `{"error": {"code", "message"}}`
//! ([`ControlError`]).
//!
//! Uses only the types of `pinhouse-protocol` (the parsed info message) of the other crates.

mod activity;
mod api_tokens;
mod audit;
mod auth;
mod automations;
mod db;
mod device_events;
mod device_properties;
mod device_status;
mod devices;
mod error;
mod extract;
mod invitations;
mod metadata;
mod notifications;
mod orgs;
mod password_reset;
mod permissions;
mod provisioning;
mod routes;
mod secrets;
mod tags;
mod template_events;
mod templates;
mod time;
mod transfer;
mod users;

#[cfg(test)]
mod tests;

use sqlx::AnyPool;

pub use db::Backend;
pub(crate) use db::{Flag, Narrow, NullableInt};

pub use activity::Activity;
pub use api_tokens::{ApiTokenView, CreatedApiToken, MAX_API_TOKEN_DAYS, NewApiToken};
pub use audit::{AuditEntry, AuditQuery, MAX_AUDIT_PAGE, audit_layer};
pub(crate) use auth::bearer_from_headers;
pub use auth::{LoginResponse, Principal, Role, SESSION_TTL_MS};
pub use automations::{
    Automation, AutomationAction, Comparison, MAX_ACTIONS, NewAutomation, StatusChange, Trigger,
    parse_at, virtual_pin,
};
pub use device_events::{
    DeviceEvent, MAX_EVENT_DESCRIPTION, MAX_EVENTS_PER_DAY, MIN_EVENT_INTERVAL_MS, SystemEvent,
    TimelineQuery,
};
pub use device_properties::{DeviceProperty, MAX_PROPERTY_VALUE_BYTES};
pub use device_status::{DeviceStatus, ReportedInfo};
pub use devices::{DeviceRecord, NewDevice};
pub use error::{ApiError, ControlError, ErrorBody, ErrorDetail, Result};
pub use extract::{ApiJson, ApiPath};
pub use invitations::{
    AcceptInvitation, CreatedInvitation, INVITATION_TTL_MS, Invitation, NewInvitation,
};
pub use metadata::{
    MAX_META_FIELDS, META_KINDS, MetaField, MetaValue, MetaWriter, NewMetaField, check_meta_value,
};
pub use notifications::{
    DeliveryOutcome, DueDelivery, MAX_WEBHOOKS_PER_ORG, NewWebhook, Notification, NotifyLimits,
    WEBHOOK_CHANNELS, Webhook,
};
pub use orgs::{
    DEFAULT_ADMIN_EMAIL, DEFAULT_ORG_NAME, MAX_RETENTION_DAYS, Organization, check_retention_days,
};
pub use password_reset::{PASSWORD_RESET_TTL_MS, PasswordResetToken, ResetPassword};
pub use permissions::{Action, RULES, Rule, Scope, Target, require, scope_of};
pub use provisioning::{
    CLAIM_CODE_LEN, ClaimRequest, MAX_STATIC_BATCH, PROVISION_TTL_MS, ProvisionRequest,
    Provisioned, StaticBatch, StaticDevice,
};
pub use routes::{method_not_allowed, not_found, routes};
pub use secrets::DEVICE_TOKEN_LEN;
pub use tags::{MAX_TAG_LEN, MAX_TAGS, normalize_tags};
pub use template_events::{
    EVENT_SEVERITIES, EventNotifications, NewTemplateEvent, SYSTEM_EVENT_CODES, TemplateEvent,
};
pub use templates::{DATASTREAM_KINDS, Datastream, NewDatastream, NewTemplate, Template};
pub use users::{MIN_PASSWORD_LEN, NewUser, UserView};

pub(crate) use time::{now_ms, rfc3339};

/// Handle on the control plane; cheap to clone (a connection pool inside).
#[derive(Clone)]
pub struct ControlPlane {
    pool: AnyPool,
    backend: Backend,
    outbox: notifications::SharedOutbox,
    signals: std::sync::Arc<activity::Signals>,
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
        let (pool, backend) = db::open(database_url).await?;
        Ok(ControlPlane {
            pool,
            backend,
            outbox: Default::default(),
            signals: Default::default(),
        })
    }

    /// A write transaction that takes the database's write lock at once (`BEGIN IMMEDIATE`,
    /// waiting up to the busy timeout for it). A deferred transaction that reads first and writes
    /// later fails with "database is locked" when another connection commits in between (SQLite
    /// cannot upgrade a stale read snapshot); every read-then-write transaction uses this.
    ///
    /// On PostgreSQL the same holds through an advisory lock taken first in the transaction.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let (begin, then) = db::begin_write_sql(self.backend);
        let mut tx = self.pool.begin_with(begin).await?;
        if let Some(then) = then {
            sqlx::query(sqlx::AssertSqlSafe(then))
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// The database the control plane runs on (for the few SQL fragments that differ).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for code that needs a query of its own.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections in use (clean shutdown, WAL checkpoint).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
