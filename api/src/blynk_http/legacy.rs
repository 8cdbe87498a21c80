//! The legacy Blynk server's token-in-path HTTP API (`/{token}/update/{pin}`, `/{token}/get/{pin}`,
//! `/{token}/isHardwareConnected`), as old scripts and integrations call it.
//!
//! Errors are HTTP 400 with a `text/plain; charset=utf-8` body holding the message, as the
//! legacy server answered; values are JSON arrays of strings.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pinhouse_ingest::{PinKind, PinRef};
use pinhouse_storage::Point;

use super::{INVALID_TOKEN, WRONG_PIN, check_datastream, pairs, value_text};
use crate::control::DeviceRecord;
use crate::state::AppState;

/// Routes of the legacy API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{token}/isHardwareConnected", get(is_connected))
        .route("/{token}/get/{pin}", get(get_pin))
        .route("/{token}/update/{pin}", get(update).put(put_update))
        .route("/{token}/pin/{pin}", axum::routing::put(put_update))
        .route("/{token}/extra/pin/{pin}", axum::routing::put(put_history))
        .route("/{token}/data/{pin}", get(super::export::legacy_data))
        .route("/{token}/data/{pin}/{file}", get(super::export::legacy_csv))
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
async fn is_connected(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, LegacyError> {
    let device = device(&state, &token).await?;
    Ok(axum::Json(state.ingest.is_online(device.id)).into_response())
}

/// `GET /{token}/get/{pin}` → `["value"]` (several for multi-value pins).
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

/// `PUT /{token}/update/{pin}` with `["1"]` or `["1","2"]` (also `PUT /{token}/pin/{pin}`).
/// One point of a legacy history import.
#[derive(serde::Deserialize)]
struct HistoryPoint {
    value: serde_json::Value,
    timestamp: i64,
}

/// `PUT /{token}/extra/pin/{pin}` with `[{"value":"1","timestamp":1438022081332}, …]`: imports
/// history (the latest point becomes the last value) → 200.
async fn put_history(
    State(state): State<AppState>,
    Path((token, pin_text)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, LegacyError> {
    let device = device(&state, &token).await?;
    let pin = pin(&pin_text)?;
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
    let rows: Vec<HistoryPoint> = serde_json::from_slice(&body)
        .map_err(|_| LegacyError::bad_request("Wrong request format."))?;
    let points = rows
        .into_iter()
        .map(|p| match p.value {
            serde_json::Value::String(s) => Ok((p.timestamp, s)),
            serde_json::Value::Number(n) => Ok((p.timestamp, n.to_string())),
            _ => Err(LegacyError::bad_request("Wrong request format.")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    super::import_points(&state, &device, pin, &points).await?;
    Ok(StatusCode::OK)
}

async fn put_update(
    State(state): State<AppState>,
    Path((token, pin_text)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, LegacyError> {
    let device = device(&state, &token).await?;
    let pin = pin(&pin_text)?;
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
    let values: Vec<serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|_| LegacyError::bad_request("Wrong request format."))?;
    let values: Vec<String> = values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            _ => Err(LegacyError::bad_request("Wrong request format.")),
        })
        .collect::<Result<_, _>>()?;
    write(&state, &device, pin, &values).await?;
    Ok(StatusCode::OK)
}
