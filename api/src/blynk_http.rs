//! The Blynk device HTTP API (`/external/api/…`), as devices and scripts
//! written for blynk.cloud call it.
//!
//! Errors are HTTP 400 with `{"error":{"message":"…"}}`, the messages being
//! the ones Blynk documents.
//!
//! Every route describes itself in the OpenAPI document (tags `device-http` and
//! `device-http-legacy`); the device's auth token is the credential, so no bearer scheme.

mod export;
mod legacy;

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pinhouse_ingest::{PinKind, PinRef};
use pinhouse_storage::{Point, Value};
use serde::Serialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::control::{Datastream, DeviceRecord};
use crate::state::AppState;

/// Routes of the device HTTP API (with the legacy token-in-path routes), with their OpenAPI
/// description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(update))
        .routes(routes!(update_slash))
        .routes(routes!(batch_update, import_timestamped))
        .routes(routes!(get_all))
        .routes(routes!(provision))
        .routes(routes!(export::data_get))
        .routes(routes!(get_values))
        .routes(routes!(is_connected))
        .routes(routes!(log_event))
        .routes(routes!(update_property))
        .routes(routes!(get_meta))
        .routes(routes!(update_meta))
        .merge(legacy::routes())
}

/// The JSON body of a device HTTP API error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlynkErrorBody {
    pub error: BlynkErrorMessage,
}

/// What went wrong, in Blynk's words.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlynkErrorMessage {
    #[schema(example = "Invalid token.")]
    pub message: String,
}

/// A Blynk-style error: 400 `{"error":{"message":…}}` unless stated otherwise.
#[derive(Debug)]
pub struct BlynkError {
    status: StatusCode,
    message: String,
}

impl BlynkError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(%err, "device HTTP API failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "Internal server error.".into(),
        }
    }
}

impl std::fmt::Display for BlynkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl IntoResponse for BlynkError {
    fn into_response(self) -> Response {
        let body = BlynkErrorBody {
            error: BlynkErrorMessage {
                message: self.message,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

const INVALID_TOKEN: &str = "Invalid token.";
const WRONG_PIN: &str = "Wrong pin format.";

/// Query pairs in order; keys without `=` get an empty value.
fn pairs(raw: Option<String>) -> Result<Vec<(String, String)>, BlynkError> {
    let raw = raw.unwrap_or_default();
    serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
        .map_err(|_| BlynkError::bad_request("Wrong request format."))
}

/// The device owning the `token` parameter.
async fn device_for(
    state: &AppState,
    pairs: &[(String, String)],
) -> Result<DeviceRecord, BlynkError> {
    let token = pairs
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| BlynkError::bad_request(INVALID_TOKEN))?;
    state
        .control
        .device_by_token(token)
        .await
        .map_err(BlynkError::internal)?
        .ok_or_else(|| BlynkError::bad_request(INVALID_TOKEN))
}

/// Pin → values to write, from `V1=…` keys or the `pin=V1&value=…` form.
fn writes(pairs: &[(String, String)]) -> Result<BTreeMap<u16, (PinRef, Vec<String>)>, BlynkError> {
    let mut out: BTreeMap<u16, (PinRef, Vec<String>)> = BTreeMap::new();
    let mut add = |pin: PinRef, value: &str| {
        out.entry(pin.column())
            .or_insert_with(|| (pin, Vec::new()))
            .1
            .push(value.to_owned());
    };
    let named_pin = pairs
        .iter()
        .find(|(k, _)| k == "pin")
        .map(|(_, v)| v.as_str());
    if let Some(name) = named_pin {
        let pin = PinRef::parse(name).ok_or_else(|| BlynkError::bad_request(WRONG_PIN))?;
        for (_, value) in pairs.iter().filter(|(k, _)| k == "value") {
            add(pin, value);
        }
    }
    for (key, value) in pairs {
        if matches!(key.as_str(), "token" | "pin" | "value") {
            continue;
        }
        let pin = PinRef::parse(key).ok_or_else(|| BlynkError::bad_request(WRONG_PIN))?;
        add(pin, value);
    }
    if out.is_empty() {
        return Err(BlynkError::bad_request("No pin for update provided."));
    }
    Ok(out)
}

/// Checks a value against the pin's datastream, as Blynk does, and returns the values to
/// store: numbers outside the datastream's min/max are clamped to it.
fn check_datastream(
    streams: &[Datastream],
    pin: PinRef,
    values: &[String],
) -> Result<Vec<String>, BlynkError> {
    if pin.kind != PinKind::Virtual {
        return Ok(values.to_vec());
    }
    let stream = streams
        .iter()
        .find(|d| d.pin == u16::from(pin.number))
        .ok_or_else(|| BlynkError::bad_request("No datastream setup for that pin."))?;
    let numeric = matches!(stream.kind.as_str(), "integer" | "double");
    let mismatch = || BlynkError::bad_request("Value doesn't match the Datastream data type.");
    if numeric {
        if values.len() != 1 {
            return Err(mismatch());
        }
        let number: f64 = values[0].trim().parse().map_err(|_| mismatch())?;
        if !number.is_finite() || (stream.kind == "integer" && number.fract() != 0.0) {
            return Err(mismatch());
        }
        let clamped = number
            .max(stream.min.unwrap_or(f64::NEG_INFINITY))
            .min(stream.max.unwrap_or(f64::INFINITY));
        if clamped != number {
            return Ok(vec![pinhouse_ingest::session::format_number(clamped)]);
        }
    }
    Ok(values.to_vec())
}

/// `GET /external/api/update?token=T&V1=23.5[&V2=…]` (also `batch/update`).
///
/// Write values to the device's pins, as the cloud does: checked against the template's
/// datastreams (type; numbers clamped to min/max), stored, sent to the connected device and to
/// live subscribers. Pins are `V1=23.5&V2=a&V2=b` keys (a repeated pin is a multi-value write)
/// or `pin=V1&value=…`.
#[utoipa::path(
    get, path = "/external/api/update", tag = "device-http",
    params(
        ("token" = String, Query, description = "Device auth token"),
        ("pin" = Option<String>, Query, description = "Pin of the `value`s (`V1`, `D2`, `A0`)"),
        ("value" = Option<Vec<String>>, Query, explode, description = "Value(s) for `pin`"),
        ("pins" = Option<BTreeMap<String, String>>, Query, style = Form, explode, description = "Pin writes as `V1=23.5&V2=on` (each key a pin)"),
    ),
    responses(
        (status = 200, description = "Written (empty body)"),
        (status = 400, description = "`Invalid token.`, `Wrong pin format.`, `No pin for update provided.`, `No datastream setup for that pin.`, `Value doesn't match the Datastream data type.`", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn update(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, BlynkError> {
    let pairs = pairs(raw)?;
    let device = device_for(&state, &pairs).await?;
    let writes: Vec<(PinRef, Vec<String>)> = writes(&pairs)?.into_values().collect();
    write_device(&state, &device, &writes).await?;
    Ok(StatusCode::OK)
}

/// `GET /external/api/update/`: [`update`] with a trailing slash, as some clients call it.
#[utoipa::path(
    get, path = "/external/api/update/", tag = "device-http",
    params(
        ("token" = String, Query, description = "Device auth token"),
        ("pin" = Option<String>, Query, description = "Pin of the `value`s (`V1`, `D2`, `A0`)"),
        ("value" = Option<Vec<String>>, Query, explode, description = "Value(s) for `pin`"),
        ("pins" = Option<BTreeMap<String, String>>, Query, style = Form, explode, description = "Pin writes as `V1=23.5&V2=on` (each key a pin)"),
    ),
    responses(
        (status = 200, description = "Written (empty body)"),
        (status = 400, description = "As for `/external/api/update`", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn update_slash(state: State<AppState>, raw: RawQuery) -> Result<StatusCode, BlynkError> {
    update(state, raw).await
}

/// `GET /external/api/batch/update?token=T&V1=…&V2=…`: [`update`] of several pins at once.
#[utoipa::path(
    get, path = "/external/api/batch/update", tag = "device-http",
    params(
        ("token" = String, Query, description = "Device auth token"),
        ("pins" = BTreeMap<String, String>, Query, style = Form, explode, description = "Pin writes as `V1=23.5&V2=on` (each key a pin)"),
    ),
    responses(
        (status = 200, description = "Written (empty body)"),
        (status = 400, description = "As for `/external/api/update`", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn batch_update(state: State<AppState>, raw: RawQuery) -> Result<StatusCode, BlynkError> {
    update(state, raw).await
}

/// Writes values to a device's pins as the cloud does (HTTP API, automations): checked against
/// the template's datastreams (type, clamped to min/max), stored (durable when this returns),
/// sent to the connected device as `hardware vw` frames and to live subscribers.
pub(crate) async fn write_device(
    state: &AppState,
    device: &DeviceRecord,
    writes: &[(PinRef, Vec<String>)],
) -> Result<(), BlynkError> {
    let streams = state
        .control
        .datastreams(&device.template_id)
        .await
        .map_err(BlynkError::internal)?;
    let ts_us = pinhouse_ingest::now_us();
    let mut points = Vec::with_capacity(writes.len());
    let mut checked = Vec::with_capacity(writes.len());
    for (pin, values) in writes {
        checked.push((*pin, check_datastream(&streams, *pin, values)?));
    }
    for (pin, values) in &checked {
        // Multi-value pins are stored NUL-joined, as the device sends them.
        let text = values.join("\0");
        points.push(Point::from_text(
            device.org_id,
            device.id,
            pin.column(),
            ts_us,
            &text,
        ));
    }
    state
        .ingest
        .write(points)
        .await
        .map_err(BlynkError::internal)?;
    for (pin, values) in &checked {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        state.ingest.push_write(device.id, *pin, &values);
    }
    Ok(())
}

/// Most points one timestamped import may carry (Blynk's limit).
pub const MAX_IMPORT_POINTS: usize = 10_000;

/// Latest accepted timestamp of an import, ahead of the server clock (ms).
const MAX_IMPORT_AHEAD_MS: i64 = 24 * 3_600_000;

/// Stores `(timestamp ms, value)` points of one pin as they were measured (late data lands in
/// its own time partition; a point sent twice is stored once). Values are checked against the
/// datastream like live writes. Not pushed to the device: this is history, not a command.
pub(crate) async fn import_points(
    state: &AppState,
    device: &DeviceRecord,
    pin: PinRef,
    points: &[(i64, String)],
) -> Result<(), BlynkError> {
    if points.len() > MAX_IMPORT_POINTS {
        return Err(BlynkError::bad_request(
            "Too much data in batch. Maximum batch size is 10000 points.",
        ));
    }
    let streams = state
        .control
        .datastreams(&device.template_id)
        .await
        .map_err(BlynkError::internal)?;
    let latest = pinhouse_ingest::now_us().div_euclid(1000) + MAX_IMPORT_AHEAD_MS;
    let mut out = Vec::with_capacity(points.len());
    for (ts_ms, value) in points {
        if !(0..=latest).contains(ts_ms) {
            return Err(BlynkError::bad_request(format!(
                "Wrong timestamp {ts_ms}: milliseconds since 1970, at most a day ahead."
            )));
        }
        let checked = check_datastream(&streams, pin, std::slice::from_ref(value))?;
        out.push(Point::from_text(
            device.org_id,
            device.id,
            pin.column(),
            ts_ms * 1000,
            &checked.join("\0"),
        ));
    }
    state.ingest.write(out).await.map_err(BlynkError::internal)
}

/// `POST /external/api/batch/update?token=T&pin=V1` with `Content-Type: application/json` and
/// `[[ts_ms, value], …]` → 200 `OK`.
///
/// Import timestamped values of one pin (at most 10 000 points, at most a day ahead), stored
/// as measured; not sent to the device.
#[utoipa::path(
    post, path = "/external/api/batch/update", tag = "device-http",
    params(
        ("token" = String, Query, description = "Device auth token"),
        ("pin" = String, Query, description = "The pin (`V1`)"),
    ),
    request_body(
        content = Vec<Vec<serde_json::Value>>,
        description = "`[[timestamp ms, value], …]`; values are numbers or strings",
        example = json!([[1_700_000_000_000_i64, 21.5], [1_700_000_060_000_i64, "22"]]),
    ),
    responses(
        (status = 200, description = "Imported", body = String, content_type = "text/plain", example = "OK"),
        (status = 400, description = "`Invalid token.`, `Wrong pin format.`, `Unknown content type.`, `Wrong request format.`, too many points, bad timestamp or value", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn import_timestamped(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, BlynkError> {
    let pairs = pairs(raw)?;
    let device = device_for(&state, &pairs).await?;
    let pin = pairs
        .iter()
        .find(|(k, _)| k == "pin")
        .and_then(|(_, v)| PinRef::parse(v))
        .ok_or_else(|| BlynkError::bad_request(WRONG_PIN))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(BlynkError::bad_request("Unknown content type."));
    }
    let rows: Vec<(i64, serde_json::Value)> = serde_json::from_slice(&body)
        .map_err(|_| BlynkError::bad_request("Wrong request format."))?;
    let points = rows
        .into_iter()
        .map(|(ts, v)| match v {
            serde_json::Value::String(s) => Ok((ts, s)),
            serde_json::Value::Number(n) => Ok((ts, n.to_string())),
            _ => Err(BlynkError::bad_request("Wrong request format.")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    import_points(&state, &device, pin, &points).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK").into_response())
}

/// `GET /external/api/getAll?token=T` → every pin's last value keyed `v1`, `d2`, `a0`: numbers,
/// strings, or arrays for multi-value pins.
#[utoipa::path(
    get, path = "/external/api/getAll", tag = "device-http",
    params(("token" = String, Query, description = "Device auth token")),
    responses(
        (status = 200, description = "Pin (lower case) → last value", body = BTreeMap<String, serde_json::Value>, example = json!({"v1": 23.5, "v2": "on", "v3": ["1", "2"]})),
        (status = 400, description = "`Invalid token.`", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn get_all(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BlynkError> {
    let pairs = pairs(raw)?;
    let device = device_for(&state, &pairs).await?;
    let mut object = serde_json::Map::new();
    for (column, last) in state.ingest.storage().last_values(device.org_id, device.id) {
        let Some(pin) = PinRef::from_column(column) else {
            continue;
        };
        let value = match last.value {
            Value::Number(n) => json!(n),
            Value::Text(t) if t.contains('\0') => json!(t.split('\0').collect::<Vec<_>>()),
            Value::Text(t) => json!(t),
        };
        object.insert(pin.to_string().to_ascii_lowercase(), value);
    }
    Ok(axum::Json(object).into_response())
}

/// `GET /external/api/provision?token=T&templateId=TMPL…[&ver=&build=&type=&fwType=&blVer=&boType=]`
/// → 200: an HTTP-only device finishes its provisioning (a dynamic token stops expiring) and
/// reports its firmware, as a native device does after login.
#[utoipa::path(
    get, path = "/external/api/provision", tag = "device-http", operation_id = "device_http_provision",
    params(
        ("token" = String, Query, description = "Device auth token (the dynamic token of `POST /api/v1/provisioning`)"),
        ("templateId" = String, Query, description = "The device's template id"),
        ("ver" = Option<String>, Query, description = "Firmware version"),
        ("build" = Option<String>, Query, description = "Firmware build"),
        ("type" = Option<String>, Query, description = "Connection type"),
        ("fwType" = Option<String>, Query, description = "Firmware type"),
        ("blVer" = Option<String>, Query, description = "Blynk library version"),
        ("boType" = Option<String>, Query, description = "Board type"),
    ),
    responses(
        (status = 200, description = "Provisioned (empty body)"),
        (status = 400, description = "`Invalid token.`, `Template id is not provided.`, or another template", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn provision(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, BlynkError> {
    let pairs = pairs(raw)?;
    let device = device_for(&state, &pairs).await?;
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let template = field("templateId")
        .ok_or_else(|| BlynkError::bad_request("Template id is not provided."))?;
    if template != device.template_id {
        return Err(BlynkError::bad_request(
            "The device's template is not this template id.",
        ));
    }
    let now = pinhouse_ingest::now_us().div_euclid(1000);
    state
        .control
        .activate_device(device.id, now)
        .await
        .map_err(BlynkError::internal)?;
    let info = pinhouse_protocol::body::DeviceInfo {
        firmware: field("ver"),
        build: field("build"),
        fw_type: field("fwType"),
        library: field("blVer"),
        board: field("boType"),
        connection: field("type"),
        template_id: Some(template),
        ..Default::default()
    };
    state
        .control
        .record_device_info(device.id, &info, now)
        .await
        .map_err(BlynkError::internal)?;
    Ok(StatusCode::OK)
}

/// Text of a stored value as Blynk returns it.
fn value_text(value: &Value) -> String {
    match value {
        Value::Number(n) => pinhouse_ingest::session::format_number(*n),
        Value::Text(t) => t.clone(),
    }
}

/// `GET /external/api/get?token=T&V1[&V2…]`: one pin → its value as plain
/// text (a multi-value pin → JSON array); several pins → a JSON object keyed by
/// the pin names as given.
#[utoipa::path(
    get, path = "/external/api/get", tag = "device-http",
    params(
        ("token" = String, Query, description = "Device auth token"),
        ("pins" = BTreeMap<String, String>, Query, style = Form, explode, description = "The pins to read as keys without values: `V1&V2`"),
    ),
    responses(
        (status = 200, description = "One pin: its value as plain text (a multi-value pin: a JSON array); several pins: a JSON object keyed by the pin names as given (`null` for pins without data)", content(
            (String = "text/plain"),
            (serde_json::Value = "application/json"),
        )),
        (status = 400, description = "`Invalid token.`, `Wrong pin format.`, `No data.`", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn get_values(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BlynkError> {
    let pairs = pairs(raw)?;
    let device = device_for(&state, &pairs).await?;
    let mut pins = Vec::new();
    for (key, _) in pairs.iter().filter(|(k, _)| k != "token") {
        let pin = PinRef::parse(key).ok_or_else(|| BlynkError::bad_request(WRONG_PIN))?;
        pins.push((key.clone(), pin));
    }
    if pins.is_empty() {
        return Err(BlynkError::bad_request(WRONG_PIN));
    }
    let storage = state.ingest.storage();
    let lookup = |pin: PinRef| storage.last_value(device.org_id, device.id, pin.column());
    if let [(_, pin)] = pins.as_slice() {
        let last = lookup(*pin).ok_or_else(|| BlynkError::bad_request("No data."))?;
        let text = value_text(&last.value);
        if text.contains('\0') {
            let parts: Vec<&str> = text.split('\0').collect();
            return Ok(axum::Json(parts).into_response());
        }
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    let mut object = serde_json::Map::new();
    for (name, pin) in pins {
        let value = match lookup(pin) {
            None => serde_json::Value::Null,
            Some(last) => match last.value {
                Value::Number(n) => json!(n),
                Value::Text(t) if t.contains('\0') => json!(t.split('\0').collect::<Vec<_>>()),
                Value::Text(t) => json!(t),
            },
        };
        object.insert(name, value);
    }
    Ok(axum::Json(object).into_response())
}

/// `GET /external/api/isHardwareConnected?token=T` → `true` / `false`.
#[utoipa::path(
    get, path = "/external/api/isHardwareConnected", tag = "device-http", operation_id = "is_hardware_connected",
    params(("token" = String, Query, description = "Device auth token")),
    responses(
        (status = 200, description = "Whether the device is connected", body = bool, content_type = "application/json"),
        (status = 400, description = "`Invalid token.`", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn is_connected(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BlynkError> {
    let pairs = pairs(raw)?;
    let device = device_for(&state, &pairs).await?;
    let online = state.ingest.is_online(device.id);
    Ok(axum::Json(online).into_response())
}

/// A control-plane refusal as a Blynk error: client errors keep their message with status
/// 400, server errors stay 500.
fn control_refusal(err: crate::control::ControlError) -> BlynkError {
    if err.status().is_client_error() {
        BlynkError::bad_request(err.to_string())
    } else {
        BlynkError::internal(err)
    }
}

/// `GET /external/api/logEvent?token=T&code=C[&description=D]` → 200, empty body.
///
/// Log an event of the device's template on its timeline (notifications follow the event's
/// settings).
#[utoipa::path(
    get, path = "/external/api/logEvent", tag = "device-http",
    params(
        ("token" = String, Query, description = "Device auth token"),
        ("code" = String, Query, description = "Event code of the template"),
        ("description" = Option<String>, Query, description = "Text of this occurrence"),
    ),
    responses(
        (status = 200, description = "Logged (empty body)"),
        (status = 400, description = "`Invalid token.`, unknown event code, or too many events", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn log_event(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, BlynkError> {
    let pairs = pairs(raw)?;
    let device = device_for(&state, &pairs).await?;
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let code = field("code").unwrap_or("");
    state
        .control
        .log_device_event(device.id, code, field("description"))
        .await
        .map_err(control_refusal)?;
    Ok(StatusCode::OK)
}

/// The metadata field a device HTTP request names: `metaFieldId=<n>` (the template field's id)
/// or `metaFieldName=<name>` (any field, system fields included).
async fn meta_field_name(
    state: &AppState,
    device: &DeviceRecord,
    pairs: &[(String, String)],
) -> Result<String, BlynkError> {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(name) = field("metaFieldName")
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        return Ok(name.to_owned());
    }
    let id: u32 = field("metaFieldId")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| BlynkError::bad_request("Wrong metaField format."))?;
    state
        .control
        .meta_field_name(device.id, id)
        .await
        .map_err(meta_refusal)
}

/// A metadata refusal in Blynk's words.
fn meta_refusal(err: crate::control::ControlError) -> BlynkError {
    match err.status() {
        StatusCode::NOT_FOUND => BlynkError::bad_request("MetaField doesn't exist."),
        s if s.is_client_error() => BlynkError::bad_request("Wrong value"),
        _ => BlynkError::internal(err),
    }
}

/// `GET /external/api/device/meta?token=T&metaFieldId=ID` (or `metaFieldName=`) → the value as
/// plain text (empty when unset).
#[utoipa::path(
    get, path = "/external/api/device/meta", tag = "device-http",
    params(
        ("token" = String, Query, description = "Device auth token"),
        ("metaFieldId" = Option<u32>, Query, description = "The template field's id"),
        ("metaFieldName" = Option<String>, Query, description = "The field's name (system fields too); instead of `metaFieldId`"),
    ),
    responses(
        (status = 200, description = "The value (empty when unset)", body = String, content_type = "text/plain"),
        (status = 400, description = "`Invalid token.`, `Wrong metaField format.`, `MetaField doesn't exist.`", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn get_meta(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BlynkError> {
    let pairs = pairs(raw)?;
    let device = device_for(&state, &pairs).await?;
    let name = meta_field_name(&state, &device, &pairs).await?;
    let value = state
        .control
        .device_meta_value(device.id, &name)
        .await
        .map_err(meta_refusal)?
        .unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], value).into_response())
}

/// `GET /external/api/device/meta/update?token=T&metaFieldId=ID&value=V` (or `metaFieldName=`)
/// → 200, empty body.
#[utoipa::path(
    get, path = "/external/api/device/meta/update", tag = "device-http",
    params(
        ("token" = String, Query, description = "Device auth token"),
        ("metaFieldId" = Option<u32>, Query, description = "The template field's id"),
        ("metaFieldName" = Option<String>, Query, description = "The field's name (system fields too); instead of `metaFieldId`"),
        ("value" = String, Query, description = "The new value, checked against the field's type"),
    ),
    responses(
        (status = 200, description = "Stored (empty body)"),
        (status = 400, description = "`Invalid token.`, `Wrong metaField format.`, `MetaField doesn't exist.`, `Wrong value`", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn update_meta(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, BlynkError> {
    let pairs = pairs(raw)?;
    let device = device_for(&state, &pairs).await?;
    let name = meta_field_name(&state, &device, &pairs).await?;
    let value = pairs
        .iter()
        .find(|(k, _)| k == "value")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| BlynkError::bad_request("Wrong value"))?;
    state
        .control
        .set_device_metadata(device.id, &name, value, crate::control::MetaWriter::Device)
        .await
        .map_err(meta_refusal)?;
    Ok(StatusCode::OK)
}

/// `GET /external/api/update/property?token=T&pin=V1&color=%23FF0000[&labels=a&labels=b]` →
/// 200, empty body. Each other key is a property; a repeated key gives a list value.
#[utoipa::path(
    get, path = "/external/api/update/property", tag = "device-http",
    params(
        ("token" = String, Query, description = "Device auth token"),
        ("pin" = String, Query, description = "A virtual pin (`V1`)"),
        ("properties" = BTreeMap<String, String>, Query, style = Form, explode, description = "Widget properties: `color=%23FF0000&label=Temp` (a repeated key gives a list, e.g. `labels`)"),
    ),
    responses(
        (status = 200, description = "Set (empty body)"),
        (status = 400, description = "`Invalid token.`, `Wrong pin format.`, `No properties for update provided.`, bad property name or value", body = BlynkErrorBody),
        (status = 500, description = "Server-side failure", body = BlynkErrorBody),
    ),
)]
async fn update_property(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, BlynkError> {
    let pairs = pairs(raw)?;
    let device = device_for(&state, &pairs).await?;
    let pin = pairs
        .iter()
        .find(|(k, _)| k == "pin")
        .and_then(|(_, v)| PinRef::parse(v))
        .filter(|p| p.kind == PinKind::Virtual)
        .ok_or_else(|| BlynkError::bad_request(WRONG_PIN))?;
    let mut properties: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, value) in &pairs {
        if key != "token" && key != "pin" {
            properties.entry(key.as_str()).or_default().push(value);
        }
    }
    if properties.is_empty() {
        return Err(BlynkError::bad_request(
            "No properties for update provided.",
        ));
    }
    for (property, values) in properties {
        state
            .control
            .set_device_property(device.id, u16::from(pin.number), property, &values)
            .await
            .map_err(control_refusal)?;
    }
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        pairs(Some(s.to_owned())).unwrap()
    }

    #[test]
    fn parses_pin_writes() {
        let w = writes(&q("token=x&V1=23.5&v2=a&V2=b&D3=1")).unwrap();
        assert_eq!(w[&1].1, vec!["23.5"]);
        assert_eq!(w[&2].1, vec!["a", "b"]);
        assert_eq!(w[&(256 + 3)].1, vec!["1"]);
        let w = writes(&q("token=x&pin=V7&value=1&value=2")).unwrap();
        assert_eq!(w[&7].1, vec!["1", "2"]);
    }

    #[test]
    fn rejects_bad_pins() {
        for bad in ["token=x&V256=1", "token=x&foo=1", "token=x&pin=Q1&value=1"] {
            let err = writes(&q(bad)).unwrap_err();
            assert_eq!(err.message, WRONG_PIN, "{bad}");
        }
        assert_eq!(
            writes(&q("token=x")).unwrap_err().message,
            "No pin for update provided."
        );
    }

    #[test]
    fn datastream_types_are_checked() {
        let ds = |kind: &str| Datastream {
            pin: 1,
            name: "t".into(),
            kind: kind.into(),
            min: None,
            max: None,
            units: None,
            decimals: None,
            default_value: None,
            sync_on_reconnect: false,
        };
        let v1 = PinRef::virtual_pin(1);
        assert!(check_datastream(&[ds("double")], v1, &["21.5000000".into()]).is_ok());
        assert!(check_datastream(&[ds("integer")], v1, &["2.5".into()]).is_err());
        assert!(check_datastream(&[ds("double")], v1, &["warm".into()]).is_err());
        assert!(check_datastream(&[ds("string")], v1, &["warm".into()]).is_ok());
        assert!(check_datastream(&[ds("string")], PinRef::virtual_pin(2), &["x".into()]).is_err());
        let mut bounded = ds("double");
        bounded.min = Some(-40.0);
        bounded.max = Some(85.0);
        let clamp = |v: &str| check_datastream(std::slice::from_ref(&bounded), v1, &[v.into()]);
        assert_eq!(clamp("120").unwrap(), ["85"]);
        assert_eq!(clamp("-50.5").unwrap(), ["-40"]);
        assert_eq!(clamp("21.5").unwrap(), ["21.5"]);
    }
}
