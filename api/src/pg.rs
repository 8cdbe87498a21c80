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
//! Supported: the simple query protocol (what `psql` uses), results in text
//! format with PostgreSQL types for integers, floats, booleans, text and
//! timestamps. `SET`, `BEGIN`, `COMMIT`, `ROLLBACK` and `DISCARD` are accepted
//! and do nothing. Not yet: the extended query protocol and the `pg_catalog`
//! tables (so `\d` in psql and Grafana's pickers do not work).

use std::fmt::{Debug, Write};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::sql::parser::DFParser;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, METADATA_USER, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pinhouse_query::{OrgScope, QueryEngine, QueryError, QueryResult};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};

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
    pub fn new(control: ControlPlane, query: QueryEngine, runtime: QueryRuntime) -> Arc<Self> {
        Arc::new(Self(Shared {
            control,
            query,
            runtime,
            pids: Arc::new(RandomPidSecretKeyGenerator::default()),
        }))
    }
}

impl PgWireServerHandlers for PgHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(Connection(self.0.clone()))
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
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
        let statements = DFParser::parse_sql(query)
            .map_err(|err| user_error("42601", format!("syntax error: {err}")))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let sql = statement.to_string();
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
            responses.push(Response::Query(encode(&result)?));
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
    let (tx, rx) = oneshot::channel();
    let (engine, scope, sql) = (shared.query.clone(), scope.clone(), sql.to_owned());
    let limit = shared.runtime.time_limit();
    shared.runtime.spawn(async move {
        let outcome = tokio::time::timeout(limit, engine.sql(&scope, &sql)).await;
        let _ = tx.send(outcome);
    });
    match rx.await {
        Ok(Ok(result)) => result.map_err(Failure::Query),
        Ok(Err(_)) | Err(_) => Err(Failure::TimeLimit(limit.as_secs_f64())),
    }
}

/// The PostgreSQL type a column is announced with (values go as text).
fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        _ => Type::TEXT,
    }
}

fn fields(schema: &Schema) -> Arc<Vec<FieldInfo>> {
    Arc::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                FieldInfo::new(
                    f.name().clone(),
                    None,
                    None,
                    pg_type(f.data_type()),
                    FieldFormat::Text,
                )
            })
            .collect(),
    )
}

/// Text-format rows of a result (timestamps as PostgreSQL writes them).
fn encode(result: &QueryResult) -> PgWireResult<QueryResponse> {
    let schema = fields(&result.schema);
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
            for (array, formatter) in &columns {
                if array.is_null(row) {
                    encoder.encode_field(&None::<&str>)?;
                } else {
                    text.clear();
                    write!(text, "{}", formatter.value(row))
                        .map_err(|e| user_error("XX000", e.to_string()))?;
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
