//! The OpenAPI document of the REST API, served at `GET /api/v1/openapi.json`.
//!
//! Generated from the handlers themselves (`#[utoipa::path]` on each handler, collected by
//! `utoipa_axum`'s `OpenApiRouter`), so a documented route is a registered route and the other
//! way round. Every REST route under `/api/v1`, the OTA download routes and the Blynk device
//! HTTP API (current and legacy) are built that way; only `/healthz`, `/metrics`, the device
//! WebSocket and the console stay out (`tests/e2e/openapi.rs` checks both). Request and
//! response shapes come from the same Rust types that (de)serialize them, except for a few
//! answers built with `json!`, described by documentation-only types next to their handlers.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Path of the document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Name of the bearer security scheme; handlers say `security(("bearer" = []))` (the macro
/// takes a literal).
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pinhouse",
        description = "REST API of pinhouse, a self-hosted IoT platform for devices running the Blynk library. \
                       Errors are JSON: `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(crate::control::ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Login, logout, the caller, password reset and API tokens"),
        (name = "organizations", description = "The organization tree"),
        (name = "users", description = "Users, their tags, transfer between organizations and password reset"),
        (name = "invitations", description = "Invitations of e-mails into an organization"),
        (name = "templates", description = "Templates: datastreams, events, metadata fields and the dashboard"),
        (name = "devices", description = "Devices: tokens, tags, transfer, status, timeline, properties, metadata, provisioning and claiming"),
        (name = "history", description = "Dashboard reads of one device: last values and downsampled history"),
        (name = "sql", description = "SQL over telemetry, as JSON, CSV, Arrow or Parquet"),
        (name = "live", description = "Values as they arrive, over a WebSocket"),
        (name = "audit", description = "The audit log of changing requests"),
        (name = "automations", description = "Triggers (datastream, device status, event, schedule) and actions (write, e-mail, webhook)"),
        (name = "notifications", description = "Webhooks and notification deliveries (e-mail, webhook, push)"),
        (name = "ota", description = "Firmware and health-gated OTA shipments (Blynk.Air-style)"),
        (name = "devices-ota", description = "What devices fetch during an OTA update"),
        (name = "device-http", description = "The Blynk device HTTP API (`/external/api/…`), authenticated by the device's auth token in the query; errors are `{\"error\": {\"message\": \"…\"}}`"),
        (name = "device-http-legacy", description = "The legacy Blynk server's token-in-path HTTP API (`/{token}/…`); errors are plain text"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A console session token (POST /api/v1/auth/login) or an API token",
                    ))
                    .build(),
            ),
        );
    }
}

/// The base document (info, security scheme, shared schemas) that routers add their paths to.
pub fn base() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The route serving `doc` (serialized once).
pub fn route<S: Clone + Send + Sync + 'static>(doc: &Document) -> Router<S> {
    let body: Arc<str> = doc
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize the OpenAPI document: {e}\"}}"))
        .into();
    Router::new().route(
        OPENAPI_PATH,
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response()
            }
        }),
    )
}
