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

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRef, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::Ota;
use super::firmware::{Declared, FirmwareRecord};
use super::shipments::{NewShipment, ShipmentDeviceView, ShipmentView};
use crate::control::{ApiJson, ApiPath, ControlError, ControlPlane, ErrorBody, Principal, Result};

/// OTA routes, generic over the application state, with their OpenAPI description.
/// `max_firmware_bytes` raises the body limit of the upload route only.
pub fn routes<S>(max_firmware_bytes: usize) -> OpenApiRouter<S>
where
    Ota: FromRef<S>,
    ControlPlane: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(
            routes!(list_firmware, upload_firmware)
                .layer(DefaultBodyLimit::max(max_firmware_bytes.saturating_add(1))),
        )
        .routes(routes!(get_firmware))
        .routes(routes!(list_shipments, create_shipment))
        .routes(routes!(get_shipment))
        .routes(routes!(shipment_devices))
        .routes(routes!(shipment_action))
        .routes(routes!(download_link))
        .routes(routes!(download_firmware))
}

/// A firmware binary in a request or response body.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // describes a raw body in the OpenAPI document only
struct Binary(Vec<u8>);

fn query<T>(q: std::result::Result<Query<T>, QueryRejection>) -> Result<T> {
    q.map(|Query(v)| v)
        .map_err(|e| ControlError::bad_request(e.body_text()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UploadQuery {
    /// Template the firmware is for; the binary's info tag must name it (`fw-type`).
    template_id: String,
    /// Name to show for the binary (default `firmware.bin`).
    #[serde(default)]
    file_name: String,
}

/// Upload a firmware binary (raw body). Its Blynk info tag (`mcu`, `fw-type`, `build`) is parsed
/// and must match the template; declared checksums are verified. Binaries are stored in the
/// object store by SHA-256.
#[utoipa::path(
    post, path = "/api/v1/firmware", tag = "ota",
    params(
        UploadQuery,
        ("x-md5" = Option<String>, Header, description = "Expected MD5 (hex); 400 `checksum_mismatch` otherwise"),
        ("x-sha256" = Option<String>, Header, description = "Expected SHA-256 (hex)"),
    ),
    request_body(content = Binary, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored; `Location` names it", body = FirmwareRecord),
        (status = 400, description = "Empty or truncated body, checksum mismatch, no or wrong info tag (`firmware_tag`, `firmware_type_mismatch`), unknown template", body = ErrorBody),
        (status = 403, description = "Only admins and staff upload firmware", body = ErrorBody),
        (status = 413, description = "Larger than the configured limit", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
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

/// Firmware of the caller's organization, newest first.
#[utoipa::path(
    get, path = "/api/v1/firmware", tag = "ota",
    responses((status = 200, description = "OK", body = Vec<FirmwareRecord>), (status = 401, description = "Not logged in", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn list_firmware(
    State(ota): State<Ota>,
    principal: Principal,
) -> Result<Json<Vec<FirmwareRecord>>> {
    Ok(Json(ota.firmware_list(&principal).await?))
}

/// One firmware.
#[utoipa::path(
    get, path = "/api/v1/firmware/{id}", tag = "ota",
    params(("id" = u32, Path, description = "Firmware id")),
    responses((status = 200, description = "OK", body = FirmwareRecord), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn get_firmware(
    State(ota): State<Ota>,
    principal: Principal,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<FirmwareRecord>> {
    Ok(Json(ota.firmware(principal.org_id, id).await?))
}

/// Start a shipment: target (template, devices, tag or organization), filter by reported
/// version/build, cumulative cohorts gated by health, attempt limits and a daily window.
#[utoipa::path(
    post, path = "/api/v1/shipments", tag = "ota",
    request_body = NewShipment,
    responses(
        (status = 201, description = "Running; `Location` names it", body = ShipmentView),
        (status = 400, description = "Malformed body; bad target, cohorts, limits or window; no device matches", body = ErrorBody),
        (status = 403, description = "Only admins and staff ship firmware", body = ErrorBody),
        (status = 404, description = "Unknown firmware", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_shipment(
    State(ota): State<Ota>,
    principal: Principal,
    ApiJson(body): ApiJson<NewShipment>,
) -> Result<Response> {
    let view = ota.create_shipment(&principal, &body).await?;
    Ok(created(format!("/api/v1/shipments/{}", view.id), view))
}

/// Shipments of the caller's organization, newest first, with progress counts.
#[utoipa::path(
    get, path = "/api/v1/shipments", tag = "ota",
    responses((status = 200, description = "OK", body = Vec<ShipmentView>), (status = 401, description = "Not logged in", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn list_shipments(
    State(ota): State<Ota>,
    principal: Principal,
) -> Result<Json<Vec<ShipmentView>>> {
    Ok(Json(ota.shipments(principal.org_id).await?))
}

/// One shipment with its progress.
#[utoipa::path(
    get, path = "/api/v1/shipments/{id}", tag = "ota",
    params(("id" = u32, Path, description = "Shipment id")),
    responses((status = 200, description = "OK", body = ShipmentView), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn get_shipment(
    State(ota): State<Ota>,
    principal: Principal,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<ShipmentView>> {
    Ok(Json(ota.shipment(principal.org_id, id).await?))
}

/// Each device of a shipment: status with timestamps, attempts, downloads, bytes sent and the
/// reason of a failure.
#[utoipa::path(
    get, path = "/api/v1/shipments/{id}/devices", tag = "ota",
    params(("id" = u32, Path, description = "Shipment id")),
    responses((status = 200, description = "OK", body = Vec<ShipmentDeviceView>), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn shipment_devices(
    State(ota): State<Ota>,
    principal: Principal,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<Vec<ShipmentDeviceView>>> {
    Ok(Json(ota.shipment_devices(principal.org_id, id).await?))
}

/// Pause, resume or cancel a shipment.
#[utoipa::path(
    post, path = "/api/v1/shipments/{id}/{action}", tag = "ota",
    params(
        ("id" = u32, Path, description = "Shipment id"),
        ("action" = String, Path, description = "`pause`, `resume` or `cancel`"),
    ),
    responses(
        (status = 200, description = "OK", body = ShipmentView),
        (status = 403, description = "Only admins and staff", body = ErrorBody),
        (status = 404, description = "Unknown shipment or action", body = ErrorBody),
        (status = 409, description = "Not possible in the shipment's state", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn shipment_action(
    State(ota): State<Ota>,
    principal: Principal,
    ApiPath((id, action)): ApiPath<(u32, String)>,
) -> Result<Json<ShipmentView>> {
    Ok(Json(ota.set_shipment_state(&principal, id, &action).await?))
}

/// Download through the per-device, expiring link of the `ota` signal. Sends `Content-Length`,
/// `x-MD5` (checked by the Blynk library), `x-fw-type`/`x-fw-ver`/`x-fw-build`; a single
/// `Range` resumes an interrupted download.
#[utoipa::path(
    get, path = "/ota/download/{link}", tag = "devices-ota",
    params(
        ("link" = String, Path, description = "The link's secret"),
        ("range" = Option<String>, Header, description = "`bytes=<start>-[<end>]`"),
    ),
    responses(
        (status = 200, description = "OK", body = Binary, content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", body = Binary, content_type = "application/octet-stream"),
        (status = 404, description = "Unknown link", body = ErrorBody),
        (status = 410, description = "Expired link, finished update or closed shipment", body = ErrorBody),
        (status = 416, description = "Range outside the binary"),
    ),
)]
async fn download_link(
    State(ota): State<Ota>,
    ApiPath(link): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response> {
    ota.download_by_link(&link, &headers).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TokenQuery {
    /// The device's auth token.
    token: String,
}

/// The same binary, authorised by the device's auth token while a shipment offers it to the
/// device.
#[utoipa::path(
    get, path = "/ota/firmware/{id}", tag = "devices-ota",
    params(
        ("id" = u32, Path, description = "Firmware id"),
        TokenQuery,
        ("range" = Option<String>, Header, description = "`bytes=<start>-[<end>]`"),
    ),
    responses(
        (status = 200, description = "OK", body = Binary, content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", body = Binary, content_type = "application/octet-stream"),
        (status = 403, description = "Not shipped to this device", body = ErrorBody),
        (status = 404, description = "Unknown token or firmware", body = ErrorBody),
    ),
)]
async fn download_firmware(
    State(ota): State<Ota>,
    ApiPath(id): ApiPath<u32>,
    q: std::result::Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let q = query(q)?;
    ota.download_by_token(id, &q.token, &headers).await
}
