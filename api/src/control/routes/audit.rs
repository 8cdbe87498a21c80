//! `/api/v1/audit`: the audit log.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use axum::routing::get;
use axum::{Json, Router};

use crate::control::ControlPlane;
use crate::control::audit::{AuditEntry, AuditQuery};
use crate::control::auth::Principal;
use crate::control::error::{ControlError, Result};
use crate::control::permissions::{Action, require};

pub(super) fn routes<S>() -> Router<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route("/api/v1/audit", get(list_audit))
}

async fn list_audit(
    State(control): State<ControlPlane>,
    principal: Principal,
    query: std::result::Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>> {
    let Query(query) = query.map_err(|e| ControlError::bad_request(e.body_text()))?;
    require(&principal, Action::AuditRead)?;
    let orgs = control.orgs_in_scope(&principal, Action::AuditRead).await?;
    Ok(Json(control.audit_entries(&orgs, &query).await?))
}
