//! The OpenAPI document of the REST API, served at `GET /api/v1/openapi.json`.
//!
//! Generated from the handlers themselves (`#[utoipa::path]` on each handler, collected by
//! `utoipa_axum`'s `OpenApiRouter`), so a documented route is a registered route and the other
//! way round for every module that builds its router with [`OpenApiRouter`]. Request and
//! response shapes come from the same Rust types that (de)serialize them.

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
        (name = "automations", description = "Triggers (datastream, device status, event, schedule) and actions (write, e-mail, webhook)"),
        (name = "devices", description = "Devices (the documented part: metadata)"),
        (name = "notifications", description = "Webhooks and notification deliveries (e-mail, webhook, push)"),
        (name = "ota", description = "Firmware and health-gated OTA shipments (Blynk.Air-style)"),
        (name = "devices-ota", description = "What devices fetch during an OTA update"),
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
