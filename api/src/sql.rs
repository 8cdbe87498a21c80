//! `POST /api/v1/sql`: SQL over telemetry for data teams, scoped to the
//! caller's organization.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use datafusion::arrow::array::RecordBatch;
use pinhouse_query::{OrgScope, QueryError, QueryResult};
use serde::Deserialize;
use serde_json::json;

use crate::control::Principal;
use crate::state::AppState;

/// Routes of the SQL endpoint.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/sql", post(run_sql))
}

/// Output format of a query.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON array of row objects (default).
    #[default]
    Json,
    /// CSV with a header row.
    Csv,
}

/// `?format=`.
#[derive(Debug, Deserialize)]
pub struct SqlParams {
    format: Option<String>,
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "code": code, "message": message.into() } });
    (status, axum::Json(body)).into_response()
}

async fn run_sql(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<SqlParams>,
    body: String,
) -> Response {
    let format = match params.format.as_deref() {
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("unknown format `{other}`; use json or csv"),
            );
        }
    };
    let sql = body.trim();
    if sql.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request body must hold one SQL statement",
        );
    }
    let scope = OrgScope::single(principal.org_id);
    let started = std::time::Instant::now();
    let result = match state.query.sql(&scope, sql).await {
        Ok(result) => result,
        Err(QueryError::Invalid(msg)) => {
            return error(StatusCode::BAD_REQUEST, "invalid_query", msg);
        }
        Err(QueryError::NotAllowed(msg)) => {
            return error(StatusCode::FORBIDDEN, "not_allowed", msg);
        }
        Err(err) => {
            tracing::error!(%err, "query failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "query_failed",
                err.to_string(),
            );
        }
    };
    tracing::info!(
        user_id = principal.user_id,
        rows = result.num_rows(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sql query"
    );
    match encode(&result, format) {
        Ok((content_type, bytes)) => {
            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        Err(err) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encode_failed",
            err.to_string(),
        ),
    }
}

/// Serialize a result in `format`.
pub fn encode(
    result: &QueryResult,
    format: Format,
) -> Result<(&'static str, Vec<u8>), datafusion::arrow::error::ArrowError> {
    let batches: Vec<&RecordBatch> = result.batches.iter().collect();
    match format {
        Format::Json => {
            let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
            writer.write_batches(&batches)?;
            writer.finish()?;
            let mut bytes = writer.into_inner();
            if bytes.is_empty() {
                bytes = b"[]".to_vec();
            }
            Ok(("application/json", bytes))
        }
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                if batches.is_empty() {
                    writer.write(&RecordBatch::new_empty(result.schema.clone()))?;
                }
                for batch in batches {
                    writer.write(batch)?;
                }
            }
            Ok(("text/csv; charset=utf-8", out))
        }
    }
}
