//! `/api/v1/audit`: the audit log.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::control::ControlPlane;
use crate::control::audit::{AuditEntry, AuditQuery};
use crate::control::auth::Principal;
use crate::control::error::{ControlError, ErrorBody, Result};
use crate::control::permissions::{Action, require};

pub(super) fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// Changing requests (not GET) of authenticated callers in the organizations the caller may
/// audit, newest first.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "OK", body = Vec<AuditEntry>),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 403, description = "Forbidden", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
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
