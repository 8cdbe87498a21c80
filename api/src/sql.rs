//! `POST /api/v1/sql`: SQL over telemetry for data teams, scoped to the
//! caller's organization, streamed as JSON, CSV, Arrow IPC stream or Parquet.
//!
//! Queries run on the query runtime (its own threads, see
//! [`QueryRuntime`](crate::query_runtime::QueryRuntime)), never on the threads
//! that serve devices. Each query has a time limit; when it is reached, or the
//! client goes away, the query is dropped and stops.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use futures::StreamExt;
use pinhouse_query::{OrgScope, QueryError};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::control::{ErrorBody, Principal};
use crate::state::AppState;

/// Routes of the SQL endpoint, with their OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(run_sql))
}

/// A binary answer (Arrow IPC stream, Parquet) in the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // describes a raw body in the OpenAPI document only
struct BinaryResult(Vec<u8>);

/// Output format of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON array of row objects (default).
    Json,
    /// CSV with a header row.
    Csv,
    /// Arrow IPC streaming format.
    Arrow,
    /// A Parquet file.
    Parquet,
}

/// Media type of the Arrow IPC stream format.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
/// Media type of Parquet.
pub const PARQUET: &str = "application/vnd.apache.parquet";

impl Format {
    /// `json`, `csv`, `arrow`, `parquet`.
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "json" => Format::Json,
            "csv" => Format::Csv,
            "arrow" | "arrows" | "ipc" => Format::Arrow,
            "parquet" => Format::Parquet,
            _ => return None,
        })
    }

    /// From an `Accept` header: the first listed type we produce.
    pub fn from_accept(accept: &str) -> Option<Format> {
        accept.split(',').find_map(|item| {
            let media = item.split(';').next().unwrap_or("").trim();
            Some(match media {
                "application/json" => Format::Json,
                "text/csv" => Format::Csv,
                ARROW_STREAM => Format::Arrow,
                PARQUET | "application/x-parquet" => Format::Parquet,
                _ => return None,
            })
        })
    }

    /// `Content-Type` of the response.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => ARROW_STREAM,
            Format::Parquet => PARQUET,
        }
    }
}

/// `?format=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SqlParams {
    /// `json`, `csv`, `arrow` or `parquet`; without it the `Accept` header decides (default
    /// JSON).
    format: Option<String>,
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "code": code, "message": message.into() } });
    (status, axum::Json(body)).into_response()
}

fn query_error(err: QueryError) -> Response {
    match err {
        QueryError::Invalid(msg) => error(StatusCode::BAD_REQUEST, "invalid_query", msg),
        QueryError::NotAllowed(msg) => error(StatusCode::FORBIDDEN, "not_allowed", msg),
        QueryError::Execution(msg) if msg.contains("Resources exhausted") => {
            error(StatusCode::INSUFFICIENT_STORAGE, "memory_limit", msg)
        }
        err => {
            tracing::error!(%err, "query failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "query_failed",
                err.to_string(),
            )
        }
    }
}

/// Incremental serializer of one result.
pub enum Encoder {
    /// JSON array, rows as objects.
    Json { rows: usize },
    /// CSV, header before the first batch.
    Csv { header_done: bool },
    /// Arrow IPC stream.
    Arrow(Box<datafusion::arrow::ipc::writer::StreamWriter<Vec<u8>>>),
    /// Parquet (row groups leave as soon as they are full).
    Parquet(Box<datafusion::parquet::arrow::ArrowWriter<Vec<u8>>>),
}

impl Encoder {
    /// An encoder of `format` for rows of `schema`.
    pub fn new(format: Format, schema: &SchemaRef) -> Result<Encoder, ArrowError> {
        Ok(match format {
            Format::Json => Encoder::Json { rows: 0 },
            Format::Csv => Encoder::Csv { header_done: false },
            Format::Arrow => Encoder::Arrow(Box::new(
                datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), schema)?,
            )),
            Format::Parquet => Encoder::Parquet(Box::new(
                datafusion::parquet::arrow::ArrowWriter::try_new(Vec::new(), schema.clone(), None)
                    .map_err(|e| ArrowError::ExternalError(Box::new(e)))?,
            )),
        })
    }

    /// Bytes for one batch (possibly empty while a format buffers).
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        match self {
            Encoder::Json { rows } => {
                if batch.num_rows() == 0 {
                    return Ok(Vec::new());
                }
                let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
                writer.write(batch)?;
                writer.finish()?;
                let mut bytes = writer.into_inner();
                // "[…]" → "[…" for the first batch, ",…" afterwards.
                bytes.pop();
                if *rows > 0 {
                    bytes[0] = b',';
                }
                *rows += batch.num_rows();
                Ok(bytes)
            }
            Encoder::Csv { header_done } => {
                let mut out = Vec::new();
                datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(!*header_done)
                    .build(&mut out)
                    .write(batch)?;
                *header_done = true;
                Ok(out)
            }
            Encoder::Arrow(writer) => {
                writer.write(batch)?;
                Ok(std::mem::take(writer.get_mut()))
            }
            Encoder::Parquet(writer) => {
                writer
                    .write(batch)
                    .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
                Ok(std::mem::take(writer.inner_mut()))
            }
        }
    }

    /// The closing bytes.
    pub fn finish(&mut self, schema: &SchemaRef) -> Result<Vec<u8>, ArrowError> {
        match self {
            Encoder::Json { rows } => Ok(if *rows == 0 {
                b"[]".to_vec()
            } else {
                b"]".to_vec()
            }),
            Encoder::Csv { header_done } => {
                if *header_done {
                    return Ok(Vec::new());
                }
                self.batch(&RecordBatch::new_empty(schema.clone()))
            }
            Encoder::Arrow(writer) => {
                writer.finish()?;
                Ok(std::mem::take(writer.get_mut()))
            }
            Encoder::Parquet(writer) => {
                writer
                    .finish()
                    .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
                Ok(std::mem::take(writer.inner_mut()))
            }
        }
    }
}

/// Serialize a whole result in `format` (tests, small answers).
pub fn encode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
) -> Result<Vec<u8>, ArrowError> {
    let mut encoder = Encoder::new(format, schema)?;
    let mut out = Vec::new();
    for batch in batches {
        out.extend(encoder.batch(batch)?);
    }
    out.extend(encoder.finish(schema)?);
    Ok(out)
}

type Chunk = Result<Bytes, std::io::Error>;

/// How a query started, as the HTTP status must say it.
enum Start {
    /// The first bytes are ready: 200.
    Streaming,
    /// Planning or execution failed before any output.
    Failed(QueryError),
    /// Time limit or another stop before any output.
    Stopped(String),
}

/// Run one SQL statement over telemetry.
///
/// The statement reads table `telemetry` of the organizations whose devices the caller may
/// read; the result is streamed as JSON (an array of row objects), CSV, Arrow IPC stream or
/// Parquet. Queries run on their own threads with a time limit; the status waits for the first
/// bytes, so errors before any output get a proper status.
#[utoipa::path(
    post, path = "/api/v1/sql", tag = "sql",
    params(
        SqlParams,
        ("accept" = Option<String>, Header, description = "`application/json`, `text/csv`, `application/vnd.apache.arrow.stream` or `application/vnd.apache.parquet`, when `format` is not given"),
    ),
    request_body(content = String, content_type = "text/plain", description = "One SQL statement, e.g. `SELECT device_id, pin, avg(value) FROM telemetry GROUP BY 1, 2`"),
    responses(
        (status = 200, description = "The result, streamed", content(
            (Vec<serde_json::Value> = "application/json"),
            (String = "text/csv"),
            (BinaryResult = "application/vnd.apache.arrow.stream"),
            (BinaryResult = "application/vnd.apache.parquet"),
        )),
        (status = 400, description = "Empty body, unknown format, or invalid query (`invalid_query`)", body = ErrorBody),
        (status = 403, description = "Statement kind not allowed (`not_allowed`): DDL, DML, COPY, SET…; queries only read", body = ErrorBody),
        (status = 408, description = "Time limit reached before any output (`query_stopped`)", body = ErrorBody),
        (status = 500, description = "The query failed (`query_failed`)", body = ErrorBody),
        (status = 507, description = "Memory limit reached (`memory_limit`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn run_sql(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<SqlParams>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let format = match params.format.as_deref() {
        Some(name) => match Format::parse(name) {
            Some(f) => f,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("unknown format `{name}`; use json, csv, arrow or parquet"),
                );
            }
        },
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .and_then(Format::from_accept)
            .unwrap_or(Format::Json),
    };
    let sql = body.trim().to_owned();
    if sql.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request body must hold one SQL statement",
        );
    }
    let orgs = match state
        .control
        .orgs_in_scope(&principal, crate::control::Action::DeviceRead)
        .await
    {
        Ok(orgs) => orgs,
        Err(err) => return err.into_response(),
    };
    let scope = OrgScope::many(orgs);
    let limit = state.query_runtime.time_limit();
    let engine = state.query.clone();
    let (ready_tx, ready_rx) = oneshot::channel::<Start>();
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    let user_id = principal.user_id;
    // Planning and execution on the query runtime; dropping the task (time
    // limit) or the receiver (client gone) drops the DataFusion stream. The
    // answer's status waits for the first bytes, so that a query failing or
    // running out of time before it produces anything gets a proper error.
    state.query_runtime.spawn(async move {
        let started = std::time::Instant::now();
        let mut ready = Some(ready_tx);
        let work = async {
            let (schema, mut stream) = match engine.sql_stream(&scope, &sql).await {
                Ok(s) => s,
                Err(err) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Start::Failed(err));
                    }
                    return Ok::<_, String>(0usize);
                }
            };
            let mut encoder = Encoder::new(format, &schema).map_err(|e| e.to_string())?;
            let mut rows = 0usize;
            while let Some(batch) = stream.next().await {
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(err) => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(Start::Failed(err.into()));
                            return Ok(0);
                        }
                        return Err(err.to_string());
                    }
                };
                rows += batch.num_rows();
                let bytes = encoder.batch(&batch).map_err(|e| e.to_string())?;
                if bytes.is_empty() {
                    continue;
                }
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Start::Streaming);
                }
                if tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                    return Err("client went away".to_owned());
                }
            }
            let tail = encoder.finish(&schema).map_err(|e| e.to_string())?;
            if let Some(ready) = ready.take() {
                let _ = ready.send(Start::Streaming);
            }
            let _ = tx.send(Ok(Bytes::from(tail))).await;
            Ok(rows)
        };
        let outcome = match tokio::time::timeout(limit, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("time limit of {} s reached", limit.as_secs_f64())),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(rows) => tracing::info!(user_id, rows, elapsed_ms, "sql query"),
            Err(reason) => {
                tracing::warn!(user_id, elapsed_ms, %reason, "sql query stopped");
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(Start::Stopped(reason));
                    }
                    // The status is out: cut the body short, the client sees
                    // an incomplete response rather than a truncated result.
                    None => {
                        let _ = tx.try_send(Err(std::io::Error::other(reason)));
                    }
                }
            }
        }
    });
    match ready_rx.await {
        Ok(Start::Streaming) => {}
        Ok(Start::Failed(err)) => return query_error(err),
        Ok(Start::Stopped(reason)) => {
            return error(StatusCode::REQUEST_TIMEOUT, "query_stopped", reason);
        }
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "query_failed",
                "the query task ended without an answer",
            );
        }
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    (
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Time limit of a query when none is configured.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(60);
