//! History export of the device HTTP APIs:
//!
//! - `GET /external/api/data/get?token=T&pin=V1&period=DAY&granularityType=HOURLY&sourceType=AVG&tzName=Europe/Kyiv&format=TS`
//!   → JSON `{"meta": [{"name": "ts", …}, {"name": "value", …}], "data": [{"ts": …, "value": …}],
//!   "rows": n, "rows_before_limit_at_least": n}`. `period` = `HOUR`, `DAY`, `WEEK`, `MONTH`
//!   (default), `THREE_MONTHS`; `granularityType` = `RAW_DATA` (default; not with three months),
//!   `MINUTE`, `HOURLY`, `DAILY`; `sourceType` = `AVG` (default), `MIN`, `MAX`, `SUM`, `COUNT`;
//!   `format` = `TS` (ms, default), `ISO_US` (`04/10/19 11:45:41 AM`), `ISO_SIMPLE`
//!   (`2018-06-07 22:01:20`), both in `tzName` (IANA, default UTC). Buckets are aligned to UTC
//!   minutes, hours and days. The cloud's `output=` (a zip link) is not offered: the answer is
//!   always inline.
//! - `GET /{token}/data/{pin}` (legacy) → 301 to `/{token}/data/{pin}/<device>_<pin>_<ms>.csv.gz`,
//!   a gzip CSV of `value,timestamp,deviceId` rows: minute averages of the last 30 days (at most
//!   43 200 rows), as the legacy server exported.

use std::io::Write;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{TimeZone, Utc};
use datafusion::arrow::array::{Array, Float64Array, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use flate2::Compression;
use flate2::write::GzEncoder;
use pinhouse_ingest::PinRef;
use pinhouse_query::{Agg, HistoryRequest, OrgScope};
use serde_json::{Value as Json, json};

use super::{BlynkError, BlynkErrorBody, WRONG_PIN, pairs};
use crate::state::AppState;

// The answers are built with `json!`; these types describe them in the OpenAPI document.

/// Answer of `GET /external/api/data/get`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes a `json!` answer in the OpenAPI document only
struct DataExport {
    /// The columns: `{"name": "ts", "type": "UInt64" | "String"}`, `{"name": "value", "type": …}`.
    meta: Vec<ExportColumn>,
    data: Vec<ExportRow>,
    rows: usize,
    rows_before_limit_at_least: usize,
}

/// A column of a `DataExport`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // describes a `json!` answer in the OpenAPI document only
struct ExportColumn {
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

/// A row of a `DataExport`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes a `json!` answer in the OpenAPI document only
struct ExportRow {
    /// Unix ms (`format=TS`) or a time text in `tzName`.
    ts: serde_json::Value,
    /// A number (the aggregate, or a raw number), a string (raw text), or `null`.
    value: serde_json::Value,
}

const INCORRECT: &str = "Request with incorrect parameters";

/// Most raw rows one export returns.
const MAX_RAW_ROWS: usize = 100_000;

/// Legacy CSV export: 30 days of minutes.
const LEGACY_MINUTES: i64 = 43_200;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Granularity {
    Raw,
    Minute,
    Hourly,
    Daily,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Ts,
    IsoUs,
    IsoSimple,
}

fn period_ms(text: &str) -> Option<i64> {
    const HOUR: i64 = 3_600_000;
    Some(match text {
        "HOUR" => HOUR,
        "DAY" => 24 * HOUR,
        "WEEK" => 7 * 24 * HOUR,
        "MONTH" => 30 * 24 * HOUR,
        "THREE_MONTHS" => 90 * 24 * HOUR,
        _ => return None,
    })
}

fn step_ms(g: Granularity) -> i64 {
    match g {
        Granularity::Raw => 0,
        Granularity::Minute => 60_000,
        Granularity::Hourly => 3_600_000,
        Granularity::Daily => 86_400_000,
    }
}

fn time_text(ts_ms: i64, format: Format, tz: chrono_tz::Tz) -> Json {
    let Some(at) = Utc.timestamp_millis_opt(ts_ms).single() else {
        return json!(ts_ms);
    };
    let local = at.with_timezone(&tz);
    match format {
        Format::Ts => json!(ts_ms),
        Format::IsoUs => json!(local.format("%m/%d/%y %I:%M:%S %p").to_string()),
        Format::IsoSimple => json!(local.format("%Y-%m-%d %H:%M:%S").to_string()),
    }
}

/// `GET /external/api/data/get?…`.
///
/// Export one pin's history: raw values or minute / hour / day aggregates over the last hour
/// … three months, timestamps in ms or as text in a time zone. Always inline (the cloud's
/// `output=` zip link is not offered).
#[utoipa::path(
    get, path = "/external/api/data/get", tag = "device-http",
    params(
        ("token" = String, Query, description = "Device auth token"),
        ("pin" = String, Query, description = "The pin (`V1`, `D2`, `A0`)"),
        ("period" = Option<String>, Query, description = "`HOUR`, `DAY`, `WEEK`, `MONTH` (default) or `THREE_MONTHS`"),
        ("granularityType" = Option<String>, Query, description = "`RAW_DATA` (default; not with `THREE_MONTHS`), `MINUTE`, `HOURLY` or `DAILY` (buckets aligned to UTC)"),
        ("sourceType" = Option<String>, Query, description = "Aggregate of a bucket: `AVG` (default), `MIN`, `MAX`, `SUM` or `COUNT`"),
        ("format" = Option<String>, Query, description = "`TS` (Unix ms, default), `ISO_US` (`04/10/19 11:45:41 AM`) or `ISO_SIMPLE` (`2018-06-07 22:01:20`)"),
        ("tzName" = Option<String>, Query, description = "IANA time zone of text timestamps (default `UTC`)"),
    ),
    responses(
        (status = 200, description = "The rows, oldest first", body = DataExport),
        (status = 400, description = "`No token provided.`, `Invalid token.`, `Wrong pin format.`, `Request with incorrect parameters`", body = BlynkErrorBody),
        (status = 500, description = "`No data` when the period holds no values; server-side failure", body = BlynkErrorBody),
    ),
)]
pub(super) async fn data_get(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, BlynkError> {
    let pairs = pairs(raw)?;
    let field = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    if field("token").is_none_or(str::is_empty) {
        return Err(BlynkError::bad_request("No token provided."));
    }
    let device = super::device_for(&state, &pairs).await?;
    let pin = field("pin")
        .and_then(PinRef::parse)
        .ok_or_else(|| BlynkError::bad_request(WRONG_PIN))?;
    let period = period_ms(field("period").unwrap_or("MONTH"))
        .ok_or_else(|| BlynkError::bad_request(INCORRECT))?;
    let granularity = match field("granularityType").unwrap_or("RAW_DATA") {
        "RAW_DATA" => Granularity::Raw,
        "MINUTE" => Granularity::Minute,
        "HOURLY" => Granularity::Hourly,
        "DAILY" => Granularity::Daily,
        _ => return Err(BlynkError::bad_request(INCORRECT)),
    };
    let agg = match field("sourceType").unwrap_or("AVG") {
        "AVG" => Agg::Avg,
        "MIN" => Agg::Min,
        "MAX" => Agg::Max,
        "SUM" => Agg::Sum,
        "COUNT" => Agg::Count,
        _ => return Err(BlynkError::bad_request(INCORRECT)),
    };
    let format = match field("format").unwrap_or("TS") {
        "TS" => Format::Ts,
        "ISO_US" => Format::IsoUs,
        "ISO_SIMPLE" => Format::IsoSimple,
        _ => return Err(BlynkError::bad_request(INCORRECT)),
    };
    let tz: chrono_tz::Tz = field("tzName")
        .unwrap_or("UTC")
        .parse()
        .map_err(|_| BlynkError::bad_request(INCORRECT))?;
    if granularity == Granularity::Raw && period > period_ms("MONTH").unwrap_or(0) {
        return Err(BlynkError::bad_request(INCORRECT));
    }
    let to_ms = pinhouse_ingest::now_us().div_euclid(1000);
    let from_ms = to_ms - period;
    let mut data = Vec::new();
    let value_type;
    if granularity == Granularity::Raw {
        value_type = "Float64 or String";
        let sql = format!(
            "SELECT CAST(ts AS BIGINT) AS ts_us, value, text FROM telemetry
             WHERE device_id = {device} AND pin = {pin}
               AND CAST(ts AS BIGINT) >= {from} AND CAST(ts AS BIGINT) < {to}
             ORDER BY ts LIMIT {limit}",
            device = device.id,
            pin = pin.column(),
            from = from_ms * 1000,
            to = to_ms * 1000,
            limit = MAX_RAW_ROWS,
        );
        let engine = state.query.clone();
        let scope = OrgScope::single(device.org_id);
        let result = state
            .query_runtime
            .run(async move { engine.sql(&scope, &sql).await })
            .await
            .ok_or_else(|| BlynkError::internal("the export exceeded the query time limit"))?
            .map_err(BlynkError::internal)?;
        for batch in &result.batches {
            let column =
                |i: usize, ty: &DataType| cast(batch.column(i), ty).map_err(BlynkError::internal);
            let (ts, values, texts) = (
                column(0, &DataType::Int64)?,
                column(1, &DataType::Float64)?,
                column(2, &DataType::Utf8)?,
            );
            let (Some(ts), Some(values), Some(texts)) = (
                ts.as_any().downcast_ref::<Int64Array>(),
                values.as_any().downcast_ref::<Float64Array>(),
                texts.as_any().downcast_ref::<StringArray>(),
            ) else {
                return Err(BlynkError::internal("unexpected export column types"));
            };
            for row in 0..batch.num_rows() {
                let ts_ms = ts.value(row).div_euclid(1000);
                let value = if values.is_valid(row) {
                    json!(values.value(row))
                } else if texts.is_valid(row) {
                    json!(texts.value(row))
                } else {
                    Json::Null
                };
                data.push(json!({"ts": time_text(ts_ms, format, tz), "value": value}));
            }
        }
    } else {
        value_type = if agg == Agg::Count {
            "UInt64"
        } else {
            "Float64"
        };
        let step = step_ms(granularity);
        let points = u32::try_from(period.div_euclid(step).max(1)).unwrap_or(u32::MAX);
        if points > pinhouse_query::history::MAX_POINTS {
            return Err(BlynkError::bad_request(INCORRECT));
        }
        let request = HistoryRequest {
            org_id: device.org_id,
            device_id: device.id,
            pin: pin.column(),
            from_us: from_ms * 1000,
            to_us: to_ms * 1000,
            points,
        };
        let engine = state.query.clone();
        let history = state
            .query_runtime
            .run(async move { engine.history(&request).await })
            .await
            .ok_or_else(|| BlynkError::internal("the export exceeded the query time limit"))?
            .map_err(BlynkError::internal)?;
        for (bucket_us, stats) in &history.points {
            let ts_ms = bucket_us.div_euclid(1000);
            let value = if agg == Agg::Count {
                json!(stats.count)
            } else {
                json!(stats.value(agg))
            };
            data.push(json!({"ts": time_text(ts_ms, format, tz), "value": value}));
        }
    }
    if data.is_empty() {
        return Err(BlynkError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "No data".into(),
        });
    }
    let ts_type = if format == Format::Ts {
        "UInt64"
    } else {
        "String"
    };
    let rows = data.len();
    Ok(axum::Json(json!({
        "meta": [{"name": "ts", "type": ts_type}, {"name": "value", "type": value_type}],
        "data": data,
        "rows": rows,
        "rows_before_limit_at_least": rows,
    }))
    .into_response())
}

/// `GET /{token}/data/{pin}` → 301 to the gzip CSV.
#[utoipa::path(
    get, path = "/{token}/data/{pin}", tag = "device-http-legacy",
    params(
        ("token" = String, Path, description = "Device auth token"),
        ("pin" = String, Path, description = "The pin (`V1`, `D2`, `A0`)"),
    ),
    responses(
        (status = 301, description = "Moved to `/{token}/data/{pin}/<device>_<pin>_<ms>.csv.gz`, the CSV export", headers(("location" = String, description = "The CSV file"))),
        (status = 400, description = "`Invalid token.`, `Wrong pin format.`", body = String, content_type = "text/plain"),
        (status = 500, description = "Server-side failure", body = String, content_type = "text/plain"),
    ),
)]
pub(super) async fn legacy_data(
    State(state): State<AppState>,
    Path((token, pin_text)): Path<(String, String)>,
) -> Result<Response, super::legacy::LegacyError> {
    let device = super::legacy::device(&state, &token).await?;
    let pin = super::legacy::pin(&pin_text)?;
    let name = format!(
        "{}_{}_{}.csv.gz",
        device.id,
        pin.to_string().to_ascii_lowercase(),
        pinhouse_ingest::now_us().div_euclid(1000)
    );
    let location = format!("/{}/data/{pin_text}/{name}", token.trim());
    Ok((
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, location)],
    )
        .into_response())
}

/// `GET /{token}/data/{pin}/{file}.csv.gz` → `value,timestamp,deviceId` rows, gzip.
///
/// Minute averages of the last 30 days (at most 43 200 rows), as the legacy server exported.
#[utoipa::path(
    get, path = "/{token}/data/{pin}/{file}", tag = "device-http-legacy",
    params(
        ("token" = String, Path, description = "Device auth token"),
        ("pin" = String, Path, description = "The pin (`V1`, `D2`, `A0`)"),
        ("file" = String, Path, description = "Any file name (the redirect of `/{token}/data/{pin}` names one)"),
    ),
    responses(
        (status = 200, description = "Gzip-compressed CSV of `value,timestamp,deviceId` rows", body = Vec<u8>, content_type = "application/gzip"),
        (status = 400, description = "`Invalid token.`, `Wrong pin format.`, `No data.`", body = String, content_type = "text/plain"),
        (status = 500, description = "Server-side failure", body = String, content_type = "text/plain"),
    ),
)]
pub(super) async fn legacy_csv(
    State(state): State<AppState>,
    Path((token, pin_text, _file)): Path<(String, String, String)>,
) -> Result<Response, super::legacy::LegacyError> {
    use super::legacy::LegacyError;
    let device = super::legacy::device(&state, &token).await?;
    let pin = super::legacy::pin(&pin_text)?;
    let to_ms = pinhouse_ingest::now_us().div_euclid(1000);
    let request = HistoryRequest {
        org_id: device.org_id,
        device_id: device.id,
        pin: pin.column(),
        from_us: (to_ms - LEGACY_MINUTES * 60_000) * 1000,
        to_us: to_ms * 1000,
        points: pinhouse_query::history::MAX_POINTS,
    };
    // Minute buckets: 43 200 of them are more than one history request holds, so the range is
    // read in slices of at most MAX_POINTS minutes.
    let mut csv = String::new();
    let slice_us = i64::from(pinhouse_query::history::MAX_POINTS) * 60_000_000;
    let mut from_us = request.from_us - request.from_us.rem_euclid(60_000_000);
    while from_us < request.to_us {
        let slice = HistoryRequest {
            from_us,
            to_us: (from_us + slice_us).min(request.to_us),
            ..request
        };
        let engine = state.query.clone();
        let history = state
            .query_runtime
            .run(async move { engine.history(&slice).await })
            .await
            .ok_or_else(|| LegacyError::internal("the export exceeded the query time limit"))?
            .map_err(LegacyError::internal)?;
        for (bucket_us, stats) in &history.points {
            csv.push_str(&format!(
                "{},{},{}\n",
                stats.value(Agg::Avg),
                bucket_us.div_euclid(1000),
                device.id
            ));
        }
        from_us += slice_us;
    }
    if csv.is_empty() {
        return Err(LegacyError::bad_request("No data."));
    }
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(csv.as_bytes())
        .and_then(|()| gz.try_finish())
        .map_err(LegacyError::internal)?;
    let body = gz.finish().map_err(LegacyError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip"),
            (header::CONTENT_DISPOSITION, "attachment"),
        ],
        body,
    )
        .into_response())
}
