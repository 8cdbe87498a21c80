//! Audit log: every authenticated request that changes something (any method but GET, HEAD and
//! OPTIONS) is recorded with who, when, what and the answer's status — refused attempts too.
//!
//! [`audit_layer`] wraps the control-plane routes; the [`Principal`] extractor fills the
//! request's [`AuditSlot`] when it authenticates, and the layer writes the row after the handler
//! answered (before the response leaves, so no action goes unrecorded). Anonymous requests
//! (login, invitation accept, password reset) are not in the log; they are in the server logs.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::ControlPlane;
use super::auth::Principal;
use super::error::{ControlError, Result};
use super::time::{now_ms, rfc3339};

/// Longest path kept in the log.
const MAX_PATH: usize = 512;

/// Most entries one request returns.
pub const MAX_AUDIT_PAGE: u32 = 1_000;

/// Filled by the [`Principal`] extractor: who made the request, and where to record it.
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Option<(Principal, ControlPlane)>>>);

impl AuditSlot {
    pub(crate) fn fill(&self, principal: &Principal, control: &ControlPlane) {
        *self.0.lock() = Some((principal.clone(), control.clone()));
    }
}

/// Middleware recording changing requests of authenticated callers.
pub async fn audit_layer(mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let mut path = request.uri().path().to_owned();
    if path.len() > MAX_PATH {
        let mut end = MAX_PATH;
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        path.truncate(end);
    }
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let filled = slot.0.lock().take();
    if let Some((principal, control)) = filled {
        let status = response.status().as_u16();
        if let Err(err) = control
            .record_audit(&principal, method.as_str(), &path, status)
            .await
        {
            tracing::error!(%err, user_id = principal.user_id, %path, "audit log write failed");
        }
    }
    response
}

/// An entry of the audit log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339.
    #[sqlx(skip)]
    pub at: String,
    #[sqlx(try_from = "i64")]
    pub user_id: u32,
    pub email: String,
    #[sqlx(try_from = "i64")]
    pub org_id: u32,
    pub method: String,
    pub path: String,
    #[sqlx(try_from = "i64")]
    pub status: u16,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    #[sqlx(flatten)]
    entry: AuditEntry,
    at_ms: i64,
}

/// Filter of `GET /api/v1/audit?from=&to=&user_id=&limit=`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Unix ms, inclusive.
    pub from: Option<i64>,
    /// Unix ms, exclusive.
    pub to: Option<i64>,
    /// Only requests made by this user.
    pub user_id: Option<u32>,
    /// Page size, default and maximum [`MAX_AUDIT_PAGE`] (1000).
    pub limit: Option<u32>,
}

impl ControlPlane {
    /// Records one action.
    pub async fn record_audit(
        &self,
        principal: &Principal,
        method: &str,
        path: &str,
        status: u16,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at_ms, user_id, email, org_id, method, path, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now_ms())
        .bind(i64::from(principal.user_id))
        .bind(&principal.email)
        .bind(i64::from(principal.org_id))
        .bind(method)
        .bind(path)
        .bind(i64::from(status))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Entries of actions by users of the given organizations, newest first.
    pub async fn audit_entries(
        &self,
        org_ids: &[u32],
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>> {
        let ids =
            serde_json::to_string(org_ids).map_err(|e| ControlError::internal(e.to_string()))?;
        let limit = query
            .limit
            .unwrap_or(MAX_AUDIT_PAGE)
            .clamp(1, MAX_AUDIT_PAGE);
        let rows: Vec<AuditRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, at_ms, user_id, email, org_id, method, path, status FROM audit_log
             WHERE org_id IN ({}) AND at_ms >= $2 AND at_ms < $3
               AND ($4 IS NULL OR user_id = $5)
             ORDER BY id DESC LIMIT $6",
            self.backend.json_ids("$1")
        )))
        .bind(ids)
        .bind(query.from.unwrap_or(i64::MIN))
        .bind(query.to.unwrap_or(i64::MAX))
        .bind(query.user_id.map(i64::from))
        .bind(query.user_id.map(i64::from))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| AuditEntry {
                at: rfc3339(row.at_ms),
                ..row.entry
            })
            .collect())
    }
}
