//! The legacy Blynk server's token-in-path HTTP API (`/{token}/update/{pin}`, `/{token}/get/{pin}`,
//! `/{token}/isHardwareConnected`), as old scripts and integrations call it.
//!
//! Errors are HTTP 400 with a `text/plain; charset=utf-8` body holding the message, as the
//! legacy server answered; values are JSON arrays of strings.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pinhouse_ingest::{PinKind, PinRef};
use pinhouse_storage::Point;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{INVALID_TOKEN, WRONG_PIN, check_datastream, pairs, value_text};
use crate::control::DeviceRecord;
use crate::state::AppState;

/// Routes of the legacy API, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(is_connected))
        .routes(routes!(get_pin))
        .routes(routes!(update, put_update))
        .routes(routes!(put_pin))
        .routes(routes!(put_history))
        .routes(routes!(super::export::legacy_data))
        .routes(routes!(super::export::legacy_csv))
}

/// A legacy error: 400 (or another status) with the message as plain text.
pub(super) struct LegacyError(StatusCode, String);

impl LegacyError {
    pub(super) fn bad_request(message: &str) -> Self {
        Self(StatusCode::BAD_REQUEST, message.to_owned())
    }

    pub(super) fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(%err, "legacy HTTP API failed");
        Self(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error.".into(),
        )
    }
}

impl From<super::BlynkError> for LegacyError {
    fn from(err: super::BlynkError) -> Self {
        Self(err.status, err.message)
    }
}

impl IntoResponse for LegacyError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.1,
        )
            .into_response()
    }
}

pub(super) async fn device(state: &AppState, token: &str) -> Result<DeviceRecord, LegacyError> {
    state
        .control
        .device_by_token(token.trim())
        .await
        .map_err(LegacyError::internal)?
        .ok_or_else(|| LegacyError::bad_request(INVALID_TOKEN))
}

pub(super) fn pin(text: &str) -> Result<PinRef, LegacyError> {
    PinRef::parse(text).ok_or_else(|| LegacyError::bad_request(WRONG_PIN))
}

/// `GET /{token}/isHardwareConnected` → `true` / `false`.
#[utoipa::path(
    get, path = "/{token}/isHardwareConnected", tag = "device-http-legacy", operation_id = "legacy_is_hardware_connected",
    params(("token" = String, Path, description = "Device auth token")),
    responses(
        (status = 200, description = "Whether the device is connected", body = bool, content_type = "application/json"),
        (status = 400, description = "`Invalid token.`", body = String, content_type = "text/plain"),
        (status = 500, description = "Server-side failure", body = String, content_type = "text/plain"),
    ),
)]
async fn is_connected(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, LegacyError> {
    let device = device(&state, &token).await?;
    Ok(axum::Json(state.ingest.is_online(device.id)).into_response())
}

/// `GET /{token}/get/{pin}` → `["value"]` (several for multi-value pins).
#[utoipa::path(
    get, path = "/{token}/get/{pin}", tag = "device-http-legacy", operation_id = "legacy_get_pin",
    params(
        ("token" = String, Path, description = "Device auth token"),
        ("pin" = String, Path, description = "The pin (`V1`, `D2`, `A0`)"),
    ),
    responses(
        (status = 200, description = "The pin's last value(s)", body = Vec<String>, example = json!(["23.5"])),
        (status = 400, description = "`Invalid token.`, `Wrong pin format.`, `Requested pin doesn't exist in the app.`", body = String, content_type = "text/plain"),
        (status = 500, description = "Server-side failure", body = String, content_type = "text/plain"),
    ),
)]
async fn get_pin(
    State(state): State<AppState>,
    Path((token, pin_text)): Path<(String, String)>,
) -> Result<Response, LegacyError> {
    let device = device(&state, &token).await?;
    let pin = pin(&pin_text)?;
    let last = state
        .ingest
        .storage()
        .last_value(device.org_id, device.id, pin.column())
        .ok_or_else(|| LegacyError::bad_request("Requested pin doesn't exist in the app."))?;
    let text = value_text(&last.value);
    let values: Vec<&str> = text.split('\0').collect();
    Ok(axum::Json(values).into_response())
}

/// Writes `values` to `pin` of `device`: datastream check, storage, live push to the device.
async fn write(
    state: &AppState,
    device: &DeviceRecord,
    pin: PinRef,
    values: &[String],
) -> Result<(), LegacyError> {
    if values.is_empty() {
        return Err(LegacyError::bad_request("No pin for update provided."));
    }
    let streams = state
        .control
        .datastreams(&device.template_id)
        .await
        .map_err(LegacyError::internal)?;
    let values = check_datastream(&streams, pin, values)?;
    let text = values.join("\0");
    let point = Point::from_text(
        device.org_id,
        device.id,
        pin.column(),
        pinhouse_ingest::now_us(),
        &text,
    );
    state
        .ingest
        .write(vec![point])
        .await
        .map_err(LegacyError::internal)?;
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    state.ingest.push_write(device.id, pin, &values);
    Ok(())
}

/// `GET /{token}/update/{pin}?value=1[&value=2]` writes a value;
/// `GET /{token}/update/{pin}?color=%23FF0000` sets widget properties.
#[utoipa::path(
    get, path = "/{token}/update/{pin}", tag = "device-http-legacy", operation_id = "legacy_update",
    params(
        ("token" = String, Path, description = "Device auth token"),
        ("pin" = String, Path, description = "The pin (`V1`, `D2`, `A0`)"),
        ("value" = Option<Vec<String>>, Query, explode, description = "Value(s) to write (several: a multi-value write)"),
        ("properties" = Option<BTreeMap<String, String>>, Query, style = Form, explode, description = "Without `value`: widget properties of a virtual pin, `color=%23FF0000&label=Temp`"),
    ),
    responses(
        (status = 200, description = "Written (empty body)"),
        (status = 400, description = "`Invalid token.`, `Wrong pin format.`, `No pin for update provided.`, `Error setting widget property.`, a datastream mismatch", body = String, content_type = "text/plain"),
        (status = 500, description = "Server-side failure", body = String, content_type = "text/plain"),
    ),
)]
async fn update(
    State(state): State<AppState>,
    Path((token, pin_text)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, LegacyError> {
    let device = device(&state, &token).await?;
    let pin = pin(&pin_text)?;
    let pairs = pairs(raw).map_err(LegacyError::from)?;
    let values: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "value")
        .map(|(_, v)| v.clone())
        .collect();
    if !values.is_empty() {
        write(&state, &device, pin, &values).await?;
        return Ok(StatusCode::OK);
    }
    if pairs.is_empty() {
        return Err(LegacyError::bad_request("No pin for update provided."));
    }
    if pin.kind != PinKind::Virtual {
        return Err(LegacyError::bad_request(WRONG_PIN));
    }
    let mut properties: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (key, value) in &pairs {
        properties.entry(key.as_str()).or_default().push(value);
    }
    for (property, values) in properties {
        state
            .control
            .set_device_property(device.id, u16::from(pin.number), property, &values)
            .await
            .map_err(|e| {
                if e.status().is_client_error() {
                    LegacyError::bad_request("Error setting widget property.")
                } else {
                    LegacyError::internal(e)
                }
            })?;
    }
    Ok(StatusCode::OK)
}

/// A JSON request body as the legacy server took it: `Content-Type: application/json` (500
/// with its message otherwise), 400 `Wrong request format.` when it does not parse.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, LegacyError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(LegacyError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unexpected content type. Expecting application/json.".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|_| LegacyError::bad_request("Wrong request format."))
}

/// A JSON string or number as the text of a pin value.
fn json_value_text(value: serde_json::Value) -> Result<String, LegacyError> {
    match value {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => Err(LegacyError::bad_request("Wrong request format.")),
    }
}

/// One point of a legacy history import.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[schema(as = LegacyHistoryPoint)]
struct HistoryPoint {
    /// A number or a string.
    value: serde_json::Value,
    /// Unix ms.
    timestamp: i64,
}

/// `PUT /{token}/extra/pin/{pin}` with `[{"value":"1","timestamp":1438022081332}, …]`: imports
/// history (the latest point becomes the last value) → 200.
#[utoipa::path(
    put, path = "/{token}/extra/pin/{pin}", tag = "device-http-legacy", operation_id = "legacy_put_history",
    params(
        ("token" = String, Path, description = "Device auth token"),
        ("pin" = String, Path, description = "The pin (`V1`, `D2`, `A0`)"),
    ),
    request_body(content = Vec<HistoryPoint>, description = "Points as measured (at most 10 000)", example = json!([{"value": "1", "timestamp": 1_438_022_081_332_i64}])),
    responses(
        (status = 200, description = "Imported (empty body)"),
        (status = 400, description = "`Invalid token.`, `Wrong pin format.`, `Wrong request format.`, too many points, bad timestamp or value", body = String, content_type = "text/plain"),
        (status = 500, description = "Not `application/json` (`Unexpected content type. Expecting application/json.`), or a server-side failure", body = String, content_type = "text/plain"),
    ),
)]
async fn put_history(
    State(state): State<AppState>,
    Path((token, pin_text)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, LegacyError> {
    let device = device(&state, &token).await?;
    let pin = pin(&pin_text)?;
    let rows: Vec<HistoryPoint> = json_body(&headers, &body)?;
    let points = rows
        .into_iter()
        .map(|p| json_value_text(p.value).map(|v| (p.timestamp, v)))
        .collect::<Result<Vec<_>, _>>()?;
    super::import_points(&state, &device, pin, &points).await?;
    Ok(StatusCode::OK)
}

/// `PUT /{token}/update/{pin}` with `["1"]` or `["1","2"]` (also `PUT /{token}/pin/{pin}`).
#[utoipa::path(
    put, path = "/{token}/update/{pin}", tag = "device-http-legacy", operation_id = "legacy_put_update",
    params(
        ("token" = String, Path, description = "Device auth token"),
        ("pin" = String, Path, description = "The pin (`V1`, `D2`, `A0`)"),
    ),
    request_body(content = Vec<serde_json::Value>, description = "The value(s), strings or numbers", example = json!(["1"])),
    responses(
        (status = 200, description = "Written (empty body)"),
        (status = 400, description = "`Invalid token.`, `Wrong pin format.`, `Wrong request format.`, `No pin for update provided.`, a datastream mismatch", body = String, content_type = "text/plain"),
        (status = 500, description = "Not `application/json` (`Unexpected content type. Expecting application/json.`), or a server-side failure", body = String, content_type = "text/plain"),
    ),
)]
async fn put_update(
    State(state): State<AppState>,
    Path((token, pin_text)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, LegacyError> {
    let device = device(&state, &token).await?;
    let pin = pin(&pin_text)?;
    let values: Vec<serde_json::Value> = json_body(&headers, &body)?;
    let values: Vec<String> = values
        .into_iter()
        .map(json_value_text)
        .collect::<Result<_, _>>()?;
    write(&state, &device, pin, &values).await?;
    Ok(StatusCode::OK)
}

/// `PUT /{token}/pin/{pin}`: [`put_update`] under its other name.
#[utoipa::path(
    put, path = "/{token}/pin/{pin}", tag = "device-http-legacy", operation_id = "legacy_put_pin",
    params(
        ("token" = String, Path, description = "Device auth token"),
        ("pin" = String, Path, description = "The pin (`V1`, `D2`, `A0`)"),
    ),
    request_body(content = Vec<serde_json::Value>, description = "The value(s), strings or numbers", example = json!(["1"])),
    responses(
        (status = 200, description = "Written (empty body)"),
        (status = 400, description = "As for `PUT /{token}/update/{pin}`", body = String, content_type = "text/plain"),
        (status = 500, description = "Not `application/json`, or a server-side failure", body = String, content_type = "text/plain"),
    ),
)]
async fn put_pin(
    state: State<AppState>,
    path: Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, LegacyError> {
    put_update(state, path, headers, body).await
}
