//! Dashboard reads of one device, for the web console and data teams:
//!
//! - `GET /api/v1/devices/{id}/values`: the newest value of every pin, from the
//!   storage last-value cache;
//! - `GET /api/v1/devices/{id}/history?pin=&from=&to=&points=&agg=`: one pin
//!   downsampled to at most `points` buckets, from rollup tiers and raw rows.
//!
//! Both are authenticated like the control-plane routes and scoped to the
//! caller's organization: a device of another organization is 404. JSON shapes
//! are documented in `docs/http-api.md`.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use pinhouse_ingest::PinRef;
use pinhouse_query::history::MAX_POINTS;
use pinhouse_query::{Agg, HistoryRequest, QueryError};
use pinhouse_storage::Value;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::control::{Action, ApiError, ApiPath, DeviceRecord, ErrorBody, Principal};
use crate::state::AppState;

/// Default number of buckets.
const DEFAULT_POINTS: u32 = 500;
/// Default range: the last 24 hours.
const DEFAULT_RANGE_MS: i64 = 24 * 3600 * 1000;
/// Largest timestamp accepted (year 2286), so bucket arithmetic cannot overflow.
const MAX_TS_MS: i64 = 10_000_000_000_000;

/// Routes of this module, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(values))
        .routes(routes!(history))
}

// The answers are built with `json!`; these types describe them in the OpenAPI document.

/// Answer of `GET /api/v1/devices/{id}/values`.
#[derive(ToSchema)]
#[allow(dead_code)] // describes a `json!` answer in the OpenAPI document only
struct DeviceValues {
    device_id: u32,
    /// Pin name (`V1`, `D13`, `A0`) → its newest value; `{}` before the device sent anything.
    values: BTreeMap<String, LastValue>,
}

/// The newest value of a pin.
#[derive(ToSchema)]
#[allow(dead_code)] // describes a `json!` answer in the OpenAPI document only
struct LastValue {
    /// A number when the device sent a number, a string otherwise, an array of strings for
    /// multi-value writes.
    value: serde_json::Value,
    /// Unix ms.
    ts: i64,
}

/// Answer of `GET /api/v1/devices/{id}/history`.
#[derive(ToSchema)]
#[allow(dead_code)] // describes a `json!` answer in the OpenAPI document only
struct PinHistory {
    device_id: u32,
    pin: String,
    /// The aggregate used (`avg`, `min`, `max`, `sum`, `count`, `first`, `last`, `minmax`).
    agg: String,
    /// Start of the range widened to whole buckets, Unix ms.
    from: i64,
    /// End of the range widened to whole buckets, Unix ms.
    to: i64,
    /// Bucket width.
    step_ms: i64,
    /// Where the buckets were read from: `raw`, `1h` or `1d`.
    tier: String,
    /// Buckets with values, oldest first (empty buckets are left out).
    points: Vec<HistoryBucket>,
}

/// One bucket: `value`, or `min` and `max` with `agg=minmax`.
#[derive(ToSchema)]
#[allow(dead_code)] // describes a `json!` answer in the OpenAPI document only
struct HistoryBucket {
    /// Start of the bucket, Unix ms.
    ts: i64,
    /// The aggregate (an integer with `agg=count`); absent with `agg=minmax`.
    value: Option<f64>,
    /// With `agg=minmax` only.
    min: Option<f64>,
    /// With `agg=minmax` only.
    max: Option<f64>,
}

/// The device `id` if the caller may read it (its organization or a sub-organization); 404
/// otherwise, also for ids that are not numbers.
async fn device(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<DeviceRecord, ApiError> {
    let device_id: u32 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("device {id:?} not found")))?;
    state
        .control
        .authorized_device(principal, device_id, Action::DeviceRead)
        .await
}

/// Name of a `pin` column value (`V1`, `D13`, `A0`), or the number itself.
fn pin_name(column: u16) -> String {
    PinRef::from_column(column).map_or_else(|| column.to_string(), |p| p.to_string())
}

/// A stored value as JSON: a number, a string, or an array for multi-value pins.
/// Non-finite numbers (never produced by ingest) become strings.
fn value_json(value: &Value) -> Json {
    match value {
        Value::Number(n) if n.is_finite() => json!(n),
        Value::Number(n) => json!(n.to_string()),
        Value::Text(t) if t.contains('\0') => json!(t.split('\0').collect::<Vec<_>>()),
        Value::Text(t) => json!(t),
    }
}

/// The newest value of every pin of the device, from the last-value cache (no query runs).
#[utoipa::path(
    get, path = "/api/v1/devices/{id}/values", tag = "history", operation_id = "device_values",
    params(("id" = u32, Path, description = "Device id")),
    responses(
        (status = 200, description = "OK", body = DeviceValues),
        (status = 404, description = "Not found (also for devices out of the caller's reach)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn values(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<Json>, ApiError> {
    let device = device(&state, &principal, &id).await?;
    let mut pins = Map::new();
    for (pin, last) in state.query.storage().last_values(device.org_id, device.id) {
        pins.insert(
            pin_name(pin),
            json!({ "value": value_json(&last.value), "ts": last.ts_us.div_euclid(1000) }),
        );
    }
    Ok(axum::Json(
        json!({ "device_id": device.id, "values": pins }),
    ))
}

/// Query of `GET …/history`. Numbers arrive as strings so that errors are ours.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryParams {
    /// The pin: `V1`, `D13`, `A0` (required).
    #[param(required = true)]
    pin: Option<String>,
    /// Start, Unix ms, inclusive (default `to` − 24 h).
    #[param(value_type = Option<i64>)]
    from: Option<String>,
    /// End, Unix ms, exclusive (default now).
    #[param(value_type = Option<i64>)]
    to: Option<String>,
    /// Most buckets wanted, 1–10000 (default 500).
    #[param(value_type = Option<u32>)]
    points: Option<String>,
    /// `avg` (default), `min`, `max`, `sum`, `count`, `first`, `last` or `minmax`.
    agg: Option<String>,
}

fn parse_ms(name: &str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    match text.trim().parse::<i64>() {
        Ok(ms) if (0..=MAX_TS_MS).contains(&ms) => Ok(Some(ms)),
        _ => Err(ApiError::bad_request(format!(
            "`{name}` must be a Unix time in milliseconds between 0 and {MAX_TS_MS}"
        ))),
    }
}

/// One pin downsampled to at most `points` buckets of equal width.
///
/// Read from rollup tiers and raw rows; only numeric values are aggregated.
#[utoipa::path(
    get, path = "/api/v1/devices/{id}/history", tag = "history", operation_id = "device_history",
    params(("id" = u32, Path, description = "Device id"), HistoryParams),
    responses(
        (status = 200, description = "OK", body = PinHistory),
        (status = 400, description = "Missing or unknown pin, bad range, points or agg", body = ErrorBody),
        (status = 404, description = "Not found (also for devices out of the caller's reach)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn history(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    params: Result<Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Json>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let device = device(&state, &principal, &id).await?;
    let pin_text = params
        .pin
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("`pin` is required (V0–V255, D0–D255, A0–A255)"))?;
    let pin = PinRef::parse(pin_text.trim())
        .ok_or_else(|| ApiError::bad_request(format!("unknown pin {pin_text:?}")))?;
    let now_ms = pinhouse_ingest::now_us().div_euclid(1000);
    let to = parse_ms("to", params.to.as_deref())?.unwrap_or(now_ms);
    let from =
        parse_ms("from", params.from.as_deref())?.unwrap_or_else(|| (to - DEFAULT_RANGE_MS).max(0));
    if from >= to {
        return Err(ApiError::bad_request("`from` must be before `to`"));
    }
    let points = match params.points.as_deref() {
        None => DEFAULT_POINTS,
        Some(p) => match p.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_POINTS).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "`points` must be between 1 and {MAX_POINTS}"
                )));
            }
        },
    };
    let agg_text = params.agg.as_deref().unwrap_or("avg");
    let agg = Agg::parse(agg_text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown agg {agg_text:?}; use avg, min, max, sum, count, first, last or minmax"
        ))
    })?;
    let request = HistoryRequest {
        org_id: device.org_id,
        device_id: device.id,
        pin: pin.column(),
        from_us: from * 1000,
        to_us: to * 1000,
        points,
    };
    let started = std::time::Instant::now();
    // Not on the query threads: a history read is a direct read of one series (no DataFusion
    // plan) on a blocking thread (`QueryEngine::history`), and must not wait in line behind
    // the full scans of SQL clients.
    let engine = state.query.clone();
    let limit = state.query_runtime.time_limit();
    let history = tokio::time::timeout(limit, engine.history(&request))
        .await
        .map_err(|_| {
            ApiError::Internal(format!(
                "history read exceeded the query time limit of {} s",
                limit.as_secs()
            ))
        })?
        .map_err(|err| match err {
            QueryError::Invalid(msg) | QueryError::NotAllowed(msg) => ApiError::bad_request(msg),
            QueryError::Execution(msg) => ApiError::Internal(msg),
        })?;
    tracing::debug!(
        device_id = device.id,
        pin = %pin,
        tier = history.tier.as_str(),
        buckets = history.points.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "history"
    );
    let data: Vec<Json> = history
        .points
        .iter()
        .map(|(bucket, stats)| {
            let ts = bucket.div_euclid(1000);
            match agg {
                Agg::MinMax => json!({ "ts": ts, "min": stats.min, "max": stats.max }),
                Agg::Count => json!({ "ts": ts, "value": stats.count }),
                _ => json!({ "ts": ts, "value": stats.value(agg) }),
            }
        })
        .collect();
    Ok(axum::Json(json!({
        "device_id": device.id,
        "pin": pin.to_string(),
        "agg": agg.as_str(),
        "from": history.buckets.from_us.div_euclid(1000),
        "to": history.buckets.to_us.div_euclid(1000),
        "step_ms": history.buckets.step_us / 1000,
        "tier": history.tier.as_str(),
        "points": data,
    })))
}
