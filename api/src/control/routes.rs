//! HTTP routes of the control plane under `/api/v1`, one file per resource in `routes/`.
//!
//! Every handler checks the caller against the rules table ([`super::permissions`],
//! `docs/permissions.md`): resources outside the caller's reach answer 404, actions the role
//! may not do on a visible resource answer 403.
//!
//! Every handler also describes itself (`#[utoipa::path]`) in the OpenAPI document served at
//! `GET /api/v1/openapi.json`; `tests/e2e/openapi.rs` reads the table below and fails when one
//! of its routes is missing from the document, so a new route goes into the table and the
//! document together.
//!
//! | method | path | action | answer |
//! |---|---|---|---|
//! | POST | `/api/v1/auth/login` `{"email","password"}` | – | 200 `{"token","expires_at","user"}` |
//! | POST | `/api/v1/auth/logout` | bearer | 204, the token stops working |
//! | GET | `/api/v1/auth/me` | bearer | 200 user |
//! | POST | `/api/v1/auth/password-reset` `{"token","password"}` | – | 204; sessions end |
//! | GET, POST | `/api/v1/auth/tokens` `{"name","expires_in_days"?,"scopes"?}` | token.manage | 200 own API tokens / 201 with `"token"` (shown once) |
//! | DELETE | `/api/v1/auth/tokens/{id}` | token.manage | 204 / 404 |
//! | GET, POST | `/api/v1/organizations` `{"name","parent_id"?}` | organization.read / .manage | 200 / 201 |
//! | GET, PATCH | `/api/v1/organizations/{id}` `{"name"}` | organization.read / .manage | 200 |
//! | GET, POST | `/api/v1/users` `{"email","password","role","name"?,"org_id"?}` | user.read / user.manage | 200 / 201 |
//! | GET | `/api/v1/users/{id}` | user.read | 200 / 404 |
//! | GET, PUT | `/api/v1/users/{id}/tags` `["a","b"]` | user.read / user.manage | 200 tags |
//! | POST | `/api/v1/users/{id}/transfer` `{"org_id"}` | user.transfer | 200 user |
//! | POST | `/api/v1/users/{id}/password-reset` | user.manage | 201 `{"token","expires_at"}` |
//! | GET, POST | `/api/v1/invitations` `{"email","role","org_id"?}` | user.invite | 200 open invitations / 201 with `"token"` |
//! | DELETE | `/api/v1/invitations/{id}` | user.invite | 204 |
//! | POST | `/api/v1/invitations/accept` `{"token","password","name"?}` | – | 201 user |
//! | GET, POST | `/api/v1/templates` | template.read / .manage | 200 / 201 |
//! | GET | `/api/v1/templates/{id}` | template.read | 200 / 404 |
//! | PUT | `/api/v1/templates/{id}` (the whole template, as for POST) | template.manage | 200 template; its devices follow |
//! | PUT | `/api/v1/templates/{id}/dashboard` `{"widgets":[…]}` | template.manage | 200 template |
//! | GET, POST | `/api/v1/devices?tag=` `{"name","template_id","org_id"?}` | device.read / .create | 200 / 201 |
//! | GET, DELETE | `/api/v1/devices/{id}` | device.read / .manage | 200 / 204 |
//! | POST | `/api/v1/devices/{id}/token` | device.manage | 200 device with a new token |
//! | GET, PUT | `/api/v1/devices/{id}/tags` | device.read / .manage | 200 tags |
//! | POST | `/api/v1/devices/{id}/transfer` `{"org_id","template_id"?}` | device.transfer | 200 device |
//! | GET | `/api/v1/devices/{id}/status` | device.read | 200 online state, last seen, reported info |
//! | GET | `/api/v1/devices/{id}/events?from=&to=&open=&limit=` | device.read | 200 timeline, newest first |
//! | POST | `/api/v1/devices/{id}/events/{event_id}/resolve` | device.manage | 200 resolved event |
//! | GET | `/api/v1/devices/{id}/properties` | device.read | 200 widget properties set by the device |
//! | POST | `/api/v1/provisioning` `{"template_id","name"?,"org_id"?}` | device.create | 201 `{"device_id","token","expires_at",…}` (dynamic token) |
//! | POST | `/api/v1/devices/static` `{"template_id","count","name_prefix"?,"org_id"?}` | device.batch_create | 201 `[{"device_id","token","claim_code"}]` |
//! | POST | `/api/v1/devices/claim` `{"claim_code","name"?}` | device.claim | 200 device, owned by the caller |
//! | GET, PUT | `/api/v1/devices/{id}/metadata` `{"<field>":"<value>"}` | device.read / .manage | 200 metadata values |
//! | GET | `/api/v1/audit?from=&to=&user_id=&limit=` | audit.read | 200 changing requests, newest first |
//! | GET, POST | `/api/v1/webhooks` `{"name","url","channels"?,"org_id"?}` | notification.read / .manage | 200 / 201 with `"secret"` (shown once) |
//! | DELETE | `/api/v1/webhooks/{id}` | notification.manage | 204 |
//! | POST | `/api/v1/webhooks/{id}/ping` | notification.manage | 202 queued delivery |
//! | GET | `/api/v1/notifications?status=&limit=` | notification.read | 200 deliveries, newest first |
//! | GET, POST | `/api/v1/automations` `{"name","trigger","actions","cooldown_secs"?,"enabled"?,"org_id"?}` | automation.read / .manage | 200 / 201 |
//! | GET, PUT, DELETE | `/api/v1/automations/{id}` | automation.read / .manage | 200 / 200 / 204 |

mod audit;
mod auth;
mod automations;
mod devices;
mod invitations;
mod metadata;
mod notifications;
mod orgs;
mod provisioning;
mod templates;
mod users;

use axum::Json;
use axum::extract::FromRef;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;

use super::ControlPlane;
use super::error::{ControlError, Result};

/// All control-plane routes, generic over the application state, with their OpenAPI
/// description (`#[utoipa::path]` on every handler). Wrong methods on a known path answer the
/// JSON 405 of [`method_not_allowed`]; changing requests are recorded by the audit layer.
pub fn routes<S>() -> OpenApiRouter<S>
where
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    let (router, doc) = OpenApiRouter::new()
        .merge(auth::routes())
        .merge(orgs::routes())
        .merge(users::routes())
        .merge(invitations::routes())
        .merge(templates::routes())
        .merge(devices::routes())
        .merge(audit::routes())
        .merge(notifications::routes())
        .merge(automations::routes())
        .merge(metadata::routes())
        .merge(provisioning::routes())
        .split_for_parts();
    // `OpenApiRouter` has no `method_not_allowed_fallback`: install it on the axum router, which
    // then goes back into an `OpenApiRouter` with the same document.
    let router = router
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(super::audit::audit_layer));
    let mut documented = OpenApiRouter::from(router);
    *documented.get_openapi_mut() = doc;
    documented
}

/// Checks that the caller may do `action` in organization `org_id` (creating something there):
/// 404 when the organization is out of its reach, 403 when it is in reach without the right.
pub(super) async fn authorize_in(
    control: &ControlPlane,
    principal: &super::auth::Principal,
    action: super::permissions::Action,
    org_id: u32,
) -> Result<()> {
    let target = super::permissions::Target {
        org_id,
        owner_user_id: None,
    };
    control
        .authorize(principal, action, target, &format!("organization {org_id}"))
        .await
}

/// Fallback for unknown paths, in the JSON error shape: `router.fallback(control::not_found)`.
pub async fn not_found() -> ControlError {
    ControlError::not_found("no such endpoint")
}

/// 405 in the JSON error shape (installed on every control-plane route).
pub async fn method_not_allowed() -> ControlError {
    ControlError::http(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

/// A numeric id from the path; anything else is an unknown resource (404).
fn parse_id(id: &str, what: &str) -> Result<u32> {
    id.parse()
        .map_err(|_| ControlError::not_found(format!("{what} {id:?} not found")))
}

/// 201 with a `Location` header and the JSON body.
fn created<T: serde::Serialize>(location: String, body: T) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
