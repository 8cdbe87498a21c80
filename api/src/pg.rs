//! PostgreSQL wire protocol (`--pg ADDR`): `psql` and other PostgreSQL clients
//! run read-only SQL over telemetry as a pinhouse user.
//!
//! Authentication asks for a password: a user's e-mail with its password, or
//! any user name with an API token (or session token) as the password. Every
//! connection sees the organizations its user may read, like `/api/v1/sql`,
//! whatever the SQL says; statements are read-only. Queries run on the query
//! runtime with its time and memory limits. TLS is offered (`sslmode=require`)
//! with the server's certificate, so that passwords need not cross the network
//! in clear.
//!
//! Supported: the simple query protocol (what `psql` uses) and the extended
//! query protocol (Parse/Bind/Describe/Execute, what drivers such as psycopg,
//! JDBC and pgx use): `$1`, `$2`, … parameters in text or binary format (types
//! inferred by DataFusion when the client leaves them open), results in text or
//! binary format with PostgreSQL types for integers, floats, booleans, text and
//! timestamps. `information_schema` lists the tables and columns, and so does
//! `pg_catalog` (`pg_class`, `pg_namespace`, `pg_attribute`, `pg_type`, … with
//! PostgreSQL's catalog functions), so that `psql`'s `\d`, `\dt` and `\d table`
//! and Grafana's table and column pickers work: statements pass through a
//! rewriting parser that turns the PostgreSQL-only syntax of those catalog
//! queries into SQL DataFusion plans (`pinhouse_query::postgres`). `SET`,
//! `BEGIN`, `COMMIT`, `ROLLBACK` and `DISCARD` are accepted and do nothing.

use std::fmt::{Debug, Write};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ScalarValue;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, METADATA_USER, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pinhouse_query::{OrgScope, QueryEngine, QueryError, QueryResult, postgres};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::control::{Action, ControlPlane};
use crate::query_runtime::QueryRuntime;

/// PostgreSQL connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 256;
/// Longest accepted password or token.
const MAX_SECRET_LEN: usize = 1024;

/// What one authenticated connection may see.
#[derive(Debug)]
struct PgSession {
    user_id: u32,
    scope: OrgScope,
}

/// The handlers of every connection (one instance for all of them; the
/// per-connection state lives in the client's session extensions).
#[derive(Debug)]
pub struct PgHandlers(Shared);

impl PgHandlers {
    /// Handlers authenticating through `control` and querying `query` on `runtime`.
    pub fn new(
        control: ControlPlane,
        query: &QueryEngine,
        runtime: QueryRuntime,
    ) -> Result<Arc<Self>, QueryError> {
        Ok(Arc::new(Self(Shared {
            control,
            query: query.with_pg_catalog()?,
            runtime,
            pids: Arc::new(RandomPidSecretKeyGenerator::default()),
        })))
    }
}

impl PgWireServerHandlers for PgHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(Connection(self.0.clone()))
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(Connection(self.0.clone()))
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(Connection(self.0.clone()))
    }
}

#[derive(Clone)]
struct Shared {
    control: ControlPlane,
    query: QueryEngine,
    runtime: QueryRuntime,
    pids: Arc<RandomPidSecretKeyGenerator>,
}

impl Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// The handler objects of one connection.
#[derive(Debug)]
struct Connection(Shared);

fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message.into(),
    )))
}

#[async_trait]
impl StartupHandler for Connection {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?.password;
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let refused = || PgWireError::InvalidPassword(user.clone());
                if password.len() > MAX_SECRET_LEN {
                    return Err(refused());
                }
                let control = &self.0.control;
                let principal = match control.principal_for_credentials(&user, &password).await {
                    Ok(principal) => principal,
                    Err(err) => {
                        tracing::warn!(%user, peer = %client.socket_addr(), %err, "PostgreSQL login refused");
                        return Err(refused());
                    }
                };
                let orgs = control
                    .orgs_in_scope(&principal, Action::DeviceRead)
                    .await
                    .map_err(|err| user_error("42501", err.to_string()))?;
                tracing::info!(
                    user_id = principal.user_id,
                    peer = %client.socket_addr(),
                    tls = client.is_secure(),
                    "PostgreSQL client logged in"
                );
                client.session_extensions().insert(PgSession {
                    user_id: principal.user_id,
                    scope: OrgScope::many(orgs),
                });
                let (pid, secret) = self.0.pids.generate(client);
                client.set_pid_and_secret_key(pid, secret);
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.server_version =
                    format!("16.0 (pinhouse {})", env!("CARGO_PKG_VERSION"));
                finish_authentication(client, &parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(session) = client.session_extensions().get::<PgSession>() else {
            return Err(user_error("28000", "not authenticated"));
        };
        // One query string may hold several statements (`psql -c "SET …; SELECT …"`).
        let statements =
            postgres::statements(query).map_err(|err| user_error("42601", err.to_string()))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for sql in statements {
            if let Some(tag) = no_op_tag(&sql) {
                responses.push(Response::Execution(Tag::new(tag)));
                continue;
            }
            let result = run(&self.0, &session.scope, &sql).await.map_err(|err| {
                tracing::info!(user_id = session.user_id, %err, "PostgreSQL query failed");
                match err {
                    Failure::Query(QueryError::Invalid(msg)) => user_error("42601", msg),
                    Failure::Query(QueryError::NotAllowed(msg)) => user_error("42501", msg),
                    Failure::Query(other) => user_error("XX000", other.to_string()),
                    Failure::TimeLimit(secs) => user_error(
                        "57014",
                        format!("canceling statement: time limit of {secs} s reached"),
                    ),
                }
            })?;
            tracing::info!(
                user_id = session.user_id,
                rows = result
                    .batches
                    .iter()
                    .map(RecordBatch::num_rows)
                    .sum::<usize>(),
                "PostgreSQL query"
            );
            responses.push(Response::Query(encode_in(&result, None)?));
        }
        Ok(responses)
    }
}

/// Session statements clients send out of habit; accepted without effect.
fn no_op_tag(sql: &str) -> Option<&'static str> {
    let first = sql.split_whitespace().next()?.to_ascii_uppercase();
    Some(match first.as_str() {
        "SET" => "SET",
        "BEGIN" | "START" => "BEGIN",
        "COMMIT" | "END" => "COMMIT",
        "ROLLBACK" | "ABORT" => "ROLLBACK",
        "DISCARD" => "DISCARD ALL",
        _ => return None,
    })
}

enum Failure {
    Query(QueryError),
    TimeLimit(f64),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Query(err) => write!(f, "{err}"),
            Failure::TimeLimit(secs) => write!(f, "time limit of {secs} s reached"),
        }
    }
}

/// Plan and run `sql` on the query runtime, within the time limit.
async fn run(shared: &Shared, scope: &OrgScope, sql: &str) -> Result<QueryResult, Failure> {
    run_with(shared, scope, sql, Vec::new()).await
}

/// The PostgreSQL type a column is announced with (values go as text).
fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        _ => Type::TEXT,
    }
}

/// Rows of a result: text columns as PostgreSQL writes them (timestamps
/// `2026-11-26 03:04:05.123456+00:00`), binary columns (extended protocol, when
/// the client asks) in PostgreSQL's binary encoding.
fn encode_in(result: &QueryResult, format: Option<&Format>) -> PgWireResult<QueryResponse> {
    let schema = fields_in(&result.schema, format);
    let binary: Vec<bool> = schema
        .iter()
        .map(|f| f.format() == FieldFormat::Binary)
        .collect();
    let options = FormatOptions::default()
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.6f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.6f%:z"))
        .with_null("");
    let mut encoder = DataRowEncoder::new(Arc::clone(&schema));
    let mut rows = Vec::with_capacity(result.batches.iter().map(RecordBatch::num_rows).sum());
    let mut text = String::new();
    for batch in &result.batches {
        let columns: Vec<(&dyn Array, ArrayFormatter<'_>)> = batch
            .columns()
            .iter()
            .map(|c| {
                ArrayFormatter::try_new(c.as_ref(), &options)
                    .map(|f| (c.as_ref(), f))
                    .map_err(|e| user_error("XX000", e.to_string()))
            })
            .collect::<PgWireResult<_>>()?;
        for row in 0..batch.num_rows() {
            for (idx, (array, formatter)) in columns.iter().enumerate() {
                if array.is_null(row) {
                    encoder.encode_field(&None::<&str>)?;
                    continue;
                }
                text.clear();
                write!(text, "{}", formatter.value(row))
                    .map_err(|e| user_error("XX000", e.to_string()))?;
                if binary[idx] {
                    encode_binary(&mut encoder, *array, row, &text)?;
                } else {
                    encoder.encode_field(&Some(text.as_str()))?;
                }
            }
            rows.push(Ok(encoder.take_row()));
        }
    }
    Ok(QueryResponse::new(schema, futures::stream::iter(rows)))
}

/// Serve PostgreSQL clients on `listener` until `stop` turns true. With `tls`,
/// clients may (and should) switch to TLS (`sslmode=require`).
pub async fn serve(
    listener: TcpListener,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    handlers: Arc<PgHandlers>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.map_err(std::io::Error::other)?,
            _ = stopped(&mut stop) => return Ok(()),
        };
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "PostgreSQL accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return Ok(()),
        };
        let (tls, handlers, mut stop) = (tls.clone(), Arc::clone(&handlers), stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                done = pgwire::tokio::process_socket(socket, tls, handlers) => {
                    if let Err(err) = done {
                        tracing::debug!(%peer, %err, "PostgreSQL connection ended with an error");
                    }
                }
                _ = stopped(&mut stop) => {}
            }
        });
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A statement of the extended query protocol: planned at Parse time (so that Describe can
/// answer without running it).
#[derive(Debug, Clone)]
struct PgStatement {
    sql: String,
    /// Session statement accepted without effect (`SET …`): its command tag.
    no_op: Option<&'static str>,
    /// Output columns (empty for no-op statements).
    schema: Arc<Schema>,
    /// Types of `$1`, `$2`, … as the plan determines them.
    params: Vec<Option<DataType>>,
}

/// Parses and plans statements for the extended protocol.
#[derive(Debug)]
struct PgParser(Shared);

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let Some(session) = client.session_extensions().get::<PgSession>() else {
            return Err(user_error("28000", "not authenticated"));
        };
        let mut statements =
            postgres::statements(sql).map_err(|err| user_error("42601", err.to_string()))?;
        let statement = match statements.len() {
            0 => return Ok(None),
            1 => statements.remove(0),
            _ => {
                return Err(user_error(
                    "42601",
                    "cannot insert multiple commands into a prepared statement",
                ));
            }
        };
        if let Some(tag) = no_op_tag(&statement) {
            return Ok(Some(PgStatement {
                sql: statement,
                no_op: Some(tag),
                schema: Arc::new(Schema::empty()),
                params: Vec::new(),
            }));
        }
        let (engine, scope, text) = (
            self.0.query.clone(),
            session.scope.clone(),
            statement.clone(),
        );
        let (schema, params) = self
            .0
            .runtime
            .run(async move { engine.describe(&scope, &text).await })
            .await
            .ok_or_else(|| {
                query_error(Failure::TimeLimit(
                    self.0.runtime.time_limit().as_secs_f64(),
                ))
            })?
            .map_err(|err| query_error(Failure::Query(err)))?;
        Ok(Some(PgStatement {
            sql: statement,
            no_op: None,
            schema,
            params,
        }))
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .params
            .iter()
            .map(|ty| ty.as_ref().map_or(Type::TEXT, pg_type))
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &PgStatement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(fields_in(&stmt.schema, column_format).as_ref().clone())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        Arc::new(PgParser(self.0.clone()))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(session) = client.session_extensions().get::<PgSession>() else {
            return Err(user_error("28000", "not authenticated"));
        };
        let stmt = &portal.statement.statement;
        if let Some(tag) = stmt.no_op {
            return Ok(Response::Execution(Tag::new(tag)));
        }
        let mut params = Vec::with_capacity(portal.parameters.len());
        for (idx, raw) in portal.parameters.iter().enumerate() {
            let declared = portal.statement.parameter_types.get(idx).cloned().flatten();
            let target = stmt.params.get(idx).cloned().flatten();
            params.push(decode_param(
                raw.as_deref(),
                portal.parameter_format.format_for(idx),
                declared.as_ref(),
                target.as_ref(),
            )?);
        }
        let result = run_with(&self.0, &session.scope, &stmt.sql, params)
            .await
            .map_err(|err| {
                tracing::info!(user_id = session.user_id, %err, "PostgreSQL query failed");
                query_error(err)
            })?;
        tracing::info!(
            user_id = session.user_id,
            rows = result
                .batches
                .iter()
                .map(RecordBatch::num_rows)
                .sum::<usize>(),
            "PostgreSQL query (extended protocol)"
        );
        Ok(Response::Query(encode_in(
            &result,
            Some(&portal.result_column_format),
        )?))
    }
}

/// The PostgreSQL error of a failed query.
fn query_error(err: Failure) -> PgWireError {
    match err {
        Failure::Query(QueryError::Invalid(msg)) => user_error("42601", msg),
        Failure::Query(QueryError::NotAllowed(msg)) => user_error("42501", msg),
        Failure::Query(other) => user_error("XX000", other.to_string()),
        Failure::TimeLimit(secs) => user_error(
            "57014",
            format!("canceling statement: time limit of {secs} s reached"),
        ),
    }
}

/// Plan and run `sql` with parameter values on the query runtime, within the time limit.
async fn run_with(
    shared: &Shared,
    scope: &OrgScope,
    sql: &str,
    params: Vec<ScalarValue>,
) -> Result<QueryResult, Failure> {
    let (engine, scope, sql) = (shared.query.clone(), scope.clone(), sql.to_owned());
    shared
        .runtime
        .run(async move { engine.sql_with_params(&scope, &sql, params).await })
        .await
        .ok_or_else(|| Failure::TimeLimit(shared.runtime.time_limit().as_secs_f64()))?
        .map_err(Failure::Query)
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// One parameter value: text (parsed as the plan's type) or binary (decoded by the type the
/// client declared, or the plan's), then cast to the plan's type.
fn decode_param(
    raw: Option<&[u8]>,
    format: FieldFormat,
    declared: Option<&Type>,
    target: Option<&DataType>,
) -> PgWireResult<ScalarValue> {
    let target = target.cloned().unwrap_or(DataType::Utf8);
    let bad = |what: &str| user_error("22P02", format!("invalid parameter: {what}"));
    let Some(raw) = raw else {
        return ScalarValue::try_from(&target).map_err(|e| bad(&e.to_string()));
    };
    let value = match format {
        FieldFormat::Text => {
            let text = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
            return ScalarValue::try_from_string(text.to_owned(), &target)
                .map_err(|e| bad(&format!("{text:?} as {target}: {e}")));
        }
        FieldFormat::Binary => {
            let ty = declared.cloned().unwrap_or_else(|| pg_type(&target));
            let fixed = |n: usize| -> PgWireResult<&[u8]> {
                (raw.len() == n)
                    .then_some(raw)
                    .ok_or_else(|| bad(&format!("{} bytes for {ty}", raw.len())))
            };
            if ty == Type::BOOL {
                ScalarValue::Boolean(Some(fixed(1)?[0] != 0))
            } else if ty == Type::INT2 {
                ScalarValue::Int16(Some(i16::from_be_bytes(
                    fixed(2)?.try_into().unwrap_or_default(),
                )))
            } else if ty == Type::INT4 {
                ScalarValue::Int32(Some(i32::from_be_bytes(
                    fixed(4)?.try_into().unwrap_or_default(),
                )))
            } else if ty == Type::INT8 {
                ScalarValue::Int64(Some(i64::from_be_bytes(
                    fixed(8)?.try_into().unwrap_or_default(),
                )))
            } else if ty == Type::FLOAT4 {
                ScalarValue::Float32(Some(f32::from_be_bytes(
                    fixed(4)?.try_into().unwrap_or_default(),
                )))
            } else if ty == Type::FLOAT8 {
                ScalarValue::Float64(Some(f64::from_be_bytes(
                    fixed(8)?.try_into().unwrap_or_default(),
                )))
            } else if ty == Type::TIMESTAMP || ty == Type::TIMESTAMPTZ {
                let us = i64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default());
                ScalarValue::TimestampMicrosecond(
                    Some(us.saturating_add(PG_EPOCH_US)),
                    (ty == Type::TIMESTAMPTZ).then(|| "UTC".into()),
                )
            } else if ty == Type::TEXT || ty == Type::VARCHAR || ty == Type::UNKNOWN {
                let text = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
                ScalarValue::Utf8(Some(text.to_owned()))
            } else {
                return Err(bad(&format!(
                    "binary {ty} is not supported; send it as text"
                )));
            }
        }
    };
    value
        .cast_to(&target)
        .map_err(|e| bad(&format!("cannot use {value} as {target}: {e}")))
}

/// Fields of a result in the formats the client asked for (text when not said).
fn fields_in(schema: &Schema, format: Option<&Format>) -> Arc<Vec<FieldInfo>> {
    Arc::new(
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(idx, f)| {
                FieldInfo::new(
                    f.name().clone(),
                    None,
                    None,
                    pg_type(f.data_type()),
                    format.map_or(FieldFormat::Text, |fmt| fmt.format_for(idx)),
                )
            })
            .collect(),
    )
}

/// A column's value as a typed Rust value for binary encoding.
fn encode_binary(
    encoder: &mut DataRowEncoder,
    array: &dyn Array,
    row: usize,
    text: &str,
) -> PgWireResult<()> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{
        Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit, UInt8Type,
        UInt16Type, UInt32Type, UInt64Type,
    };
    if array.is_null(row) {
        return encoder.encode_field(&None::<i64>);
    }
    match array.data_type() {
        DataType::Boolean => encoder.encode_field(&array.as_boolean().value(row)),
        DataType::Int8 => {
            encoder.encode_field(&i16::from(array.as_primitive::<Int8Type>().value(row)))
        }
        DataType::Int16 => encoder.encode_field(&array.as_primitive::<Int16Type>().value(row)),
        DataType::UInt8 => {
            encoder.encode_field(&i16::from(array.as_primitive::<UInt8Type>().value(row)))
        }
        DataType::Int32 => encoder.encode_field(&array.as_primitive::<Int32Type>().value(row)),
        DataType::UInt16 => {
            encoder.encode_field(&i32::from(array.as_primitive::<UInt16Type>().value(row)))
        }
        DataType::Int64 => encoder.encode_field(&array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt32 => {
            encoder.encode_field(&i64::from(array.as_primitive::<UInt32Type>().value(row)))
        }
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            let v = i64::try_from(v)
                .map_err(|_| user_error("22003", format!("{v} is out of range for bigint")))?;
            encoder.encode_field(&v)
        }
        DataType::Float32 => encoder.encode_field(&array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => encoder.encode_field(&array.as_primitive::<Float64Type>().value(row)),
        DataType::Timestamp(unit, _) => {
            let raw = datafusion::arrow::compute::cast(
                &array.slice(row, 1),
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )
            .map_err(|e| user_error("XX000", e.to_string()))?;
            let us = raw
                .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                .value(0);
            let _ = unit;
            encoder.encode_field(&PgTimestamp(us))
        }
        DataType::Date32 | DataType::Date64 => Err(user_error(
            "0A000",
            "binary format for DATE is not supported; ask for text",
        )),
        // Everything else travels as text, whose binary form is its UTF-8 bytes.
        _ => encoder.encode_field(&text),
    }
}

/// A timestamp (µs since the Unix epoch) in PostgreSQL's binary form: µs since 2000-01-01 as a
/// big-endian i64, for `timestamp` and `timestamptz` columns.
#[derive(Debug, Clone, Copy)]
struct PgTimestamp(i64);

impl postgres_types::ToSql for PgTimestamp {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&(self.0 - PG_EPOCH_US).to_be_bytes());
        Ok(postgres_types::IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ
    }

    postgres_types::to_sql_checked!();
}

impl pgwire::types::ToSqlText for PgTimestamp {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
        _format_options: &pgwire::types::format::FormatOptions,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.to_string().as_bytes());
        Ok(postgres_types::IsNull::No)
    }
}
