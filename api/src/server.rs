//! Wiring of all tiers into one process: `pinhouse serve`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use pinhouse_ingest::{HttpConn, Ingest, Prefixed, TlsIdentity};
use pinhouse_query::QueryEngine;
use pinhouse_storage::{Storage, StorageConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use utoipa_axum::router::OpenApiRouter;

use crate::config::ServerConfig;
use crate::control::ControlPlane;
use crate::directory::ControlDirectory;
use crate::ota::{Ota, OtaConfig};
use crate::pg::PgHandlers;
use crate::query_runtime::QueryRuntime;
use crate::state::AppState;
use crate::{blynk_http, history, sql};

/// Largest HTTP request accepted (headers excluded), like Blynk's 2 MB limit.
const MAX_HTTP_BODY: usize = 2 * 1024 * 1024;

/// Failure to start or run the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Data directory, sockets.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The telemetry store failed to open.
    #[error("storage: {0}")]
    Storage(#[from] pinhouse_storage::StorageError),
    /// The control-plane database failed.
    #[error("control plane: {0}")]
    Control(#[from] crate::control::ControlError),
    /// The ingest tier failed to start (certificate, QUIC endpoint).
    #[error("ingest: {0}")]
    Ingest(#[from] pinhouse_ingest::IngestError),
    /// The query engine failed to start (rollup directory).
    #[error("query engine: {0}")]
    Query(#[from] pinhouse_query::QueryError),
    /// The notification worker cannot start (SMTP URL, sender address).
    #[error("notifications: {0}")]
    Notifier(#[from] crate::notifier::NotifierError),
    /// A background task failed.
    #[error("task failed: {0}")]
    Task(String),
}

/// Connections waiting between a shared port's sniffer and the HTTP server.
const HTTP_HANDOFF_QUEUE: usize = 1024;

/// Connections that a shared port recognised as HTTP, as an axum listener.
struct HandoffListener<S> {
    rx: mpsc::Receiver<HttpConn<S>>,
    addr: SocketAddr,
}

impl<S> axum::serve::Listener for HandoffListener<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = Prefixed<S>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The port's accept loop ended (shutdown): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let context = context.into();
    move |source| ServeError::Io { context, source }
}

/// The HTTP router with every route of the server, and the OpenAPI document of the REST and
/// device HTTP routes, which describe themselves (served at [`crate::openapi::OPENAPI_PATH`]).
/// Only `/healthz`, `/metrics`, the device WebSocket and the console stay out of it.
pub fn router(state: AppState) -> Router {
    let (documented, doc) = OpenApiRouter::with_openapi(crate::openapi::base())
        .merge(crate::control::routes::<AppState>())
        .merge(crate::ota::routes::<AppState>(
            state.ota.config().max_firmware_bytes,
        ))
        .merge(history::routes())
        .merge(sql::routes())
        .merge(crate::live::routes())
        .merge(blynk_http::routes())
        .split_for_parts();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::openapi::route(&doc))
        .merge(documented)
        .merge(crate::device_ws::routes())
        .merge(crate::metrics::routes())
        // Console files and pages for GET/HEAD; the JSON 404 for everything else.
        .fallback(crate::console::fallback)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_HTTP_BODY))
        .with_state(state)
}

/// Run until SIGINT/SIGTERM, then shut down cleanly (WAL flushed).
pub async fn serve(config: ServerConfig) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(io(format!(
        "cannot create data dir {}",
        config.data_dir.display()
    )))?;
    tracing::info!(data_dir = %config.data_dir.display(), "starting pinhouse");

    let control = ControlPlane::open(&config.database_url).await?;
    if let Some(password) = control
        .bootstrap(
            config.admin_email.as_deref(),
            config.admin_password.as_deref(),
        )
        .await?
    {
        tracing::warn!(
            email = config.admin_email.as_deref().unwrap_or(crate::control::DEFAULT_ADMIN_EMAIL),
            %password,
            "created the first admin with a generated password; it is shown only once"
        );
    }

    let stale = control.mark_all_offline().await?;
    if stale > 0 {
        tracing::info!(
            devices = stale,
            "marked devices offline that were online at the last stop"
        );
    }

    let mut storage_config = StorageConfig::new(config.data_dir.join("telemetry"));
    storage_config.fsync = config.fsync;
    storage_config.memtable_max_age = config.flush_interval;
    storage_config.background_nice = i32::from(config.background_nice);
    if let Some(location) = &config.parquet_store {
        let objects = pinhouse_storage::objects::Objects::open(location)?;
        // The store's threads (and `open`, on a blocking thread) run the bucket's requests on
        // this runtime.
        let runtime = tokio::runtime::Handle::current();
        let block_on: pinhouse_storage::BlockOn = Arc::new(move |fut| runtime.block_on(fut));
        storage_config.parquet_remote =
            Some(pinhouse_storage::ParquetRemote::new(objects, block_on));
        tracing::info!(%location, "telemetry Parquet files also kept in a bucket");
    }
    let storage = tokio::task::spawn_blocking(move || Storage::open(storage_config))
        .await
        .map_err(|e| ServeError::Task(e.to_string()))??;

    let (directory, recorder) = ControlDirectory::start(control.clone());
    let ingest = Ingest::new(
        storage.clone(),
        Arc::new(directory.clone()),
        config.ingest.clone(),
    );
    let query = QueryEngine::with_rollup_dir(storage.clone(), config.data_dir.join("rollups"))?;
    let query = query
        .with_memory_limit(config.sql_memory_limit)?
        .with_catalog(Arc::new(crate::sql_catalog::ControlCatalog::new(
            control.clone(),
        )));
    query.spawn_rollup_maintenance()?;
    let (query_runtime, _query_threads) =
        QueryRuntime::start(config.query_threads, config.sql_time_limit)
            .map_err(io("cannot start the query threads"))?;

    let identity = TlsIdentity::load(&config.cert)?;
    let bind = |addr: SocketAddr, flag: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .map_err(io(format!("cannot listen on {addr} (--{flag})")))
    };
    let http = bind(config.http, "http").await?;
    let hardware = bind(config.hardware, "hardware").await?;
    let tls = bind(config.tls, "tls").await?;
    let pg = match config.pg {
        Some(addr) => Some(bind(addr, "pg").await?),
        None => None,
    };
    let quic = ingest
        .quic_endpoint(config.quic, identity.quic_config()?)
        .map_err(|err| match err {
            pinhouse_ingest::IngestError::Io(source) => ServeError::Io {
                context: format!("cannot listen on {} (--quic)", config.quic),
                source,
            },
            other => other.into(),
        })?;
    let public_url = match &config.public_url {
        Some(url) => url.clone(),
        None => {
            let bound = http.local_addr().map_err(io("http address"))?;
            if bound.ip().is_unspecified() {
                tracing::warn!(
                    "OTA links will point at 127.0.0.1:{}; set --public-url for devices on other hosts",
                    bound.port()
                );
                format!("http://127.0.0.1:{}", bound.port())
            } else {
                format!("http://{bound}")
            }
        }
    };
    let mut ota_config = OtaConfig::new(public_url);
    ota_config.link_ttl = config.ota_link_ttl;
    let objects = pinhouse_storage::objects::Objects::open(&config.object_store)?;
    control.set_notify_limits(config.notify_limits);
    let notifier = crate::notifier::Notifier::new(control.clone(), &config.notifier)?;
    tracing::info!(location = %config.object_store, "object store for firmware");
    let ota = Ota::new(control.clone(), ingest.clone(), objects, ota_config);
    let state = AppState {
        control,
        ingest: ingest.clone(),
        query,
        ota: ota.clone(),
        query_runtime,
    };
    let automation_engine = crate::automations::Engine::new(state.clone());
    let lifecycle = crate::telemetry_lifecycle::TelemetryLifecycle::new(
        state.control.clone(),
        ingest.clone(),
        storage.clone(),
        config.default_retention,
    );
    let http_addr: SocketAddr = http.local_addr().map_err(io("http address"))?;
    let tls_addr: SocketAddr = tls.local_addr().map_err(io("tls address"))?;
    tracing::info!(addr = %http_addr, "HTTP API ready (devices accepted on this port too)");
    tracing::info!(addr = %tls_addr, "HTTPS and Blynk TLS ready");

    let (stop_tx, stop_rx) = watch::channel(false);
    let (plain_tx, plain_rx) = mpsc::channel(HTTP_HANDOFF_QUEUE);
    let (tls_tx, tls_rx) = mpsc::channel(HTTP_HANDOFF_QUEUE);
    let mut listeners = tokio::task::JoinSet::new();
    {
        let (ingest, stop) = (ingest.clone(), stop_rx.clone());
        listeners.spawn(async move { ("hardware", ingest.serve_tcp(hardware, stop).await) });
    }
    {
        let (ingest, stop) = (ingest.clone(), stop_rx.clone());
        listeners.spawn(async move { ("http", ingest.serve_shared(http, plain_tx, stop).await) });
    }
    {
        let (ingest, stop) = (ingest.clone(), stop_rx.clone());
        let tls_config = identity.tcp_config()?;
        listeners.spawn(async move {
            (
                "tls",
                ingest.serve_tls(tls, tls_config, Some(tls_tx), stop).await,
            )
        });
    }
    {
        let (ingest, stop) = (ingest.clone(), stop_rx.clone());
        listeners.spawn(async move { ("quic", ingest.serve_quic(quic, stop).await) });
    }
    let pg_task = match pg {
        Some(listener) => {
            let addr = listener.local_addr().map_err(io("pg address"))?;
            let handlers = PgHandlers::new(
                state.control.clone(),
                &state.query,
                state.query_runtime.clone(),
            )?;
            let tls = pgwire::tokio::TlsAcceptor::from(identity.tcp_config()?);
            tracing::info!(%addr, "PostgreSQL wire protocol ready (TLS offered)");
            Some(tokio::spawn(crate::pg::serve(
                listener,
                Some(tls),
                handlers,
                stop_rx.clone(),
            )))
        }
        None => None,
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let mut http_servers = tokio::task::JoinSet::new();
    {
        let mut stop = stop_rx.clone();
        // `tap_io` gives the listener axum's `ConnectInfo<SocketAddr>` support.
        let listener = HandoffListener {
            rx: plain_rx,
            addr: http_addr,
        }
        .tap_io(|_| {});
        let app = app.clone();
        http_servers.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
                .await
        });
    }
    {
        let mut stop = stop_rx.clone();
        let listener = HandoffListener {
            rx: tls_rx,
            addr: tls_addr,
        }
        .tap_io(|_| {});
        http_servers.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
                .await
        });
    }
    let ota_task = tokio::spawn(ota.run_engine(stop_rx.clone()));
    let notifier_task = tokio::spawn(notifier.run(stop_rx.clone()));
    let automation_task = tokio::spawn(automation_engine.run(stop_rx.clone()));
    let lifecycle_task = tokio::spawn(lifecycle.run(stop_rx.clone()));

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    ingest.stop();
    while let Some(done) = listeners.join_next().await {
        match done {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(err))) => tracing::error!(%err, "{name} listener failed"),
            Err(err) => tracing::error!(%err, "listener panicked"),
        }
    }
    while let Some(done) = http_servers.join_next().await {
        if let Ok(Err(err)) = done {
            tracing::error!(%err, "HTTP server failed");
        }
    }
    if let Some(pg_task) = pg_task
        && let Ok(Err(err)) = pg_task.await
    {
        tracing::error!(%err, "PostgreSQL listener failed");
    }
    if let Err(err) = ota_task.await {
        tracing::error!(%err, "OTA engine panicked");
    }
    if let Err(err) = notifier_task.await {
        tracing::error!(%err, "notification worker panicked");
    }
    if let Err(err) = automation_task.await {
        tracing::error!(%err, "automation engine panicked");
    }
    if let Err(err) = lifecycle_task.await {
        tracing::error!(%err, "telemetry lifecycle worker panicked");
    }
    // Sessions are closed: record their offline state before stopping.
    if !directory.flush(Duration::from_secs(5)).await {
        tracing::warn!("device activity not fully recorded at shutdown");
    }
    drop(directory);
    recorder.abort();
    tokio::task::spawn_blocking(move || storage.close())
        .await
        .map_err(|e| ServeError::Task(e.to_string()))??;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
