//! `/api/v1/webhooks` and `/api/v1/notifications`: where notifications go, and what was sent.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{authorize_in, created, parse_id};
use crate::control::ControlPlane;
use crate::control::auth::Principal;
use crate::control::error::{ControlError, ErrorBody, Result};
use crate::control::extract::{ApiJson, ApiPath};
use crate::control::notifications::{NewWebhook, Notification, Webhook};
use crate::control::permissions::{Action, Target, require};

/// Most deliveries one list answer returns.
const MAX_LIST: u32 = 1000;

pub(super) fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(delete_webhook))
        .routes(routes!(ping_webhook))
        .routes(routes!(list_notifications))
}

/// The webhook `id` after checking `action` on it (404 when not visible, 403 when visible but
/// not allowed).
async fn authorized_webhook(
    control: &ControlPlane,
    principal: &Principal,
    id: &str,
    action: Action,
) -> Result<Webhook> {
    let what = format!("webhook {id:?}");
    let hook = control
        .webhook(parse_id(id, "webhook")?)
        .await?
        .ok_or_else(|| ControlError::not_found(format!("{what} not found")))?;
    let target = Target {
        org_id: hook.org_id,
        owner_user_id: None,
    };
    control.authorize(principal, action, target, &what).await?;
    Ok(hook)
}

/// Webhooks of the organizations the caller may read (secrets are never listed).
#[utoipa::path(
    get, path = "/api/v1/webhooks", tag = "notifications",
    responses((status = 200, description = "OK", body = Vec<Webhook>), (status = 403, description = "Forbidden", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn list_webhooks(
    State(control): State<ControlPlane>,
    principal: Principal,
) -> Result<Json<Vec<Webhook>>> {
    require(&principal, Action::NotificationRead)?;
    let orgs = control
        .orgs_in_scope(&principal, Action::NotificationRead)
        .await?;
    Ok(Json(control.webhooks(&orgs).await?))
}

/// Create a webhook. The answer carries its `secret` (shown once): the key of the
/// `X-Pinhouse-Signature` header, `sha256=<hex HMAC-SHA256 of "<X-Pinhouse-Timestamp>.<body>">`.
#[utoipa::path(
    post, path = "/api/v1/webhooks", tag = "notifications",
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Created", body = Webhook),
        (status = 403, description = "Forbidden", body = ErrorBody),
        (status = 400, description = "Bad name, URL or channels; too many webhooks", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_webhook(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiJson(body): ApiJson<NewWebhook>,
) -> Result<Response> {
    let org_id = body.org_id.unwrap_or(principal.org_id);
    authorize_in(&control, &principal, Action::NotificationManage, org_id).await?;
    let hook = control
        .create_webhook(org_id, principal.user_id, &body)
        .await?;
    tracing::info!(
        webhook_id = hook.id,
        org_id,
        user_id = principal.user_id,
        "webhook created"
    );
    Ok(created(format!("/api/v1/webhooks/{}", hook.id), hook))
}

/// Delete a webhook; its pending deliveries are dropped.
#[utoipa::path(
    delete, path = "/api/v1/webhooks/{id}", tag = "notifications",
    params(("id" = u32, Path, description = "Webhook id")),
    responses((status = 204, description = "No content"), (status = 403, description = "Forbidden", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn delete_webhook(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let hook = authorized_webhook(&control, &principal, &id, Action::NotificationManage).await?;
    control.delete_webhook(hook.id).await?;
    tracing::info!(
        webhook_id = hook.id,
        user_id = principal.user_id,
        "webhook deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Queue a signed test delivery (`{"type": "ping", …}`) to a webhook.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/ping", tag = "notifications",
    params(("id" = u32, Path, description = "Webhook id")),
    responses((status = 202, description = "Accepted", body = Notification), (status = 403, description = "Forbidden", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn ping_webhook(
    State(control): State<ControlPlane>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Notification>)> {
    let hook = authorized_webhook(&control, &principal, &id, Action::NotificationManage).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(control.ping_webhook(&hook).await?),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct NotificationQuery {
    /// Only deliveries in this status: `pending`, `delivered`, `failed`, `rate_limited`.
    status: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<u32>,
}

/// Notification deliveries of the organizations the caller may read, newest first: channel,
/// recipient or webhook, status, attempts and the last error.
#[utoipa::path(
    get, path = "/api/v1/notifications", tag = "notifications",
    params(NotificationQuery),
    responses((status = 200, description = "OK", body = Vec<Notification>), (status = 400, description = "Bad request", body = ErrorBody), (status = 403, description = "Forbidden", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn list_notifications(
    State(control): State<ControlPlane>,
    principal: Principal,
    query: std::result::Result<Query<NotificationQuery>, QueryRejection>,
) -> Result<Json<Vec<Notification>>> {
    let Query(query) = query.map_err(|e| ControlError::bad_request(e.body_text()))?;
    require(&principal, Action::NotificationRead)?;
    if let Some(status) = &query.status
        && !["pending", "delivered", "failed", "rate_limited"].contains(&status.as_str())
    {
        return Err(ControlError::bad_request(format!(
            "unknown status {status:?}"
        )));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIST);
    let orgs = control
        .orgs_in_scope(&principal, Action::NotificationRead)
        .await?;
    Ok(Json(
        control
            .notifications(&orgs, query.status.as_deref(), limit)
            .await?,
    ))
}
