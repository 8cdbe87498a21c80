//! HTTP routes of OTA.
//!
//! | method | path | auth | answer |
//! |---|---|---|---|
//! | POST | `/api/v1/firmware?template_id=&file_name=` raw binary body, optional `X-MD5` / `X-SHA256` | admin, staff | 201 firmware |
//! | GET | `/api/v1/firmware`, `/api/v1/firmware/{id}` | bearer | 200 |
//! | POST | `/api/v1/shipments` [`NewShipment`] | admin, staff | 201 shipment with progress |
//! | GET | `/api/v1/shipments`, `/api/v1/shipments/{id}` | bearer | 200 |
//! | GET | `/api/v1/shipments/{id}/devices` | bearer | 200 per-device status |
//! | POST | `/api/v1/shipments/{id}/{pause,resume,cancel}` | admin, staff | 200 shipment |
//! | GET | `/ota/download/{link}` | the link | 200/206 binary, 404 unknown, 410 expired |
//! | GET | `/ota/firmware/{id}?token=` | device auth token | 200/206 binary, 403 not shipped to it |

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRef, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::Ota;
use super::firmware::{Declared, FirmwareRecord};
use super::shipments::{NewShipment, ShipmentDeviceView, ShipmentView};
use crate::control::{ApiJson, ApiPath, ControlError, ControlPlane, Principal, Result};

/// OTA routes, generic over the application state. `max_firmware_bytes`
/// raises the body limit of the upload route only.
pub fn routes<S>(max_firmware_bytes: usize) -> Router<S>
where
    Ota: FromRef<S>,
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/api/v1/firmware",
            get(list_firmware)
                .post(upload_firmware)
                .layer(DefaultBodyLimit::max(max_firmware_bytes.saturating_add(1))),
        )
        .route("/api/v1/firmware/{id}", get(get_firmware))
        .route(
            "/api/v1/shipments",
            get(list_shipments).post(create_shipment),
        )
        .route("/api/v1/shipments/{id}", get(get_shipment))
        .route("/api/v1/shipments/{id}/devices", get(shipment_devices))
        .route("/api/v1/shipments/{id}/{action}", post(shipment_action))
        .route("/ota/download/{link}", get(download_link))
        .route("/ota/firmware/{id}", get(download_firmware))
}

fn query<T>(q: std::result::Result<Query<T>, QueryRejection>) -> Result<T> {
    q.map(|Query(v)| v)
        .map_err(|e| ControlError::bad_request(e.body_text()))
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    template_id: String,
    #[serde(default)]
    file_name: String,
}

async fn upload_firmware(
    State(ota): State<Ota>,
    principal: Principal,
    q: std::result::Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let q = query(q)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ControlError::http(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "firmware exceeds the limit of {} bytes",
                    ota.config().max_firmware_bytes
                ),
            )
        } else {
            tracing::warn!(error = %e.body_text(), "firmware upload body failed");
            ControlError::bad_request(format!(
                "the upload did not arrive whole (truncated?): {}",
                e.body_text()
            ))
        }
    })?;
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let declared = Declared {
        md5: header_text("x-md5"),
        sha256: header_text("x-sha256"),
    };
    let record = match ota
        .upload_firmware(&principal, &q.template_id, &q.file_name, body, &declared)
        .await
    {
        Ok(record) => record,
        Err(err) => {
            tracing::warn!(user_id = principal.user_id, template_id = %q.template_id, %err, "firmware upload refused");
            return Err(err);
        }
    };
    Ok(created(format!("/api/v1/firmware/{}", record.id), record))
}

fn created<T: serde::Serialize>(location: String, body: T) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

async fn list_firmware(
    State(ota): State<Ota>,
    principal: Principal,
) -> Result<Json<Vec<FirmwareRecord>>> {
    Ok(Json(ota.firmware_list(&principal).await?))
}

async fn get_firmware(
    State(ota): State<Ota>,
    principal: Principal,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<FirmwareRecord>> {
    Ok(Json(ota.firmware(principal.org_id, id).await?))
}

async fn create_shipment(
    State(ota): State<Ota>,
    principal: Principal,
    ApiJson(body): ApiJson<NewShipment>,
) -> Result<Response> {
    let view = ota.create_shipment(&principal, &body).await?;
    Ok(created(format!("/api/v1/shipments/{}", view.id), view))
}

async fn list_shipments(
    State(ota): State<Ota>,
    principal: Principal,
) -> Result<Json<Vec<ShipmentView>>> {
    Ok(Json(ota.shipments(principal.org_id).await?))
}

async fn get_shipment(
    State(ota): State<Ota>,
    principal: Principal,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<ShipmentView>> {
    Ok(Json(ota.shipment(principal.org_id, id).await?))
}

async fn shipment_devices(
    State(ota): State<Ota>,
    principal: Principal,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<Vec<ShipmentDeviceView>>> {
    Ok(Json(ota.shipment_devices(principal.org_id, id).await?))
}

async fn shipment_action(
    State(ota): State<Ota>,
    principal: Principal,
    ApiPath((id, action)): ApiPath<(u32, String)>,
) -> Result<Json<ShipmentView>> {
    Ok(Json(ota.set_shipment_state(&principal, id, &action).await?))
}

async fn download_link(
    State(ota): State<Ota>,
    ApiPath(link): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response> {
    ota.download_by_link(&link, &headers).await
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: String,
}

async fn download_firmware(
    State(ota): State<Ota>,
    ApiPath(id): ApiPath<u32>,
    q: std::result::Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let q = query(q)?;
    ota.download_by_token(id, &q.token, &headers).await
}
